"""Who may do what: the users every deployment has, and the application roles.

Plain Python. Passwords are never held here: the backends pass them in (from Pulumi
secrets) only inside `Output.apply`, and the ACL files carry nothing but their sha256.

Every user's allowlist, the exact set of commands and subcommands (`get`,
`client|setname`) it may run, comes from the same declarations as its `user` line:

- a system user (replica, sentinel, exporter, and on the Sentinel port the Sentinel
  peers, sentinel-client and sentinel-exporter) is declared as a literal tuple of commands, and its rules
  are `-@all` followed by exactly those grants;
- an application role grants ACL categories, so its exact set depends on the command
  table of the Redis version it runs on: `allowed_commands` evaluates the role's rules,
  in order, against a server's table (COMMAND INFO), as Redis evaluates them.

`allowlists` publishes the rules per server kind and user in the stack outputs;
tests/verify/acl_sweep.py evaluates them on every deployed node and checks with
ACL DRYRUN that each user may run exactly that set, nothing more and nothing less.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis_ha.components.settings import AppRole, Settings
from redis_ha.components.settings_roles import APP_ROLE_DENIALS


@dataclass(frozen=True)
class AclUser:
    """One `user` line, without its password."""

    name: str
    rules: str
    description: str


# docs/redis-notes.md#least-privilege-allowlists: Redis runs the commands flagged
# `no_auth` without checking the user's command permissions: AUTH and HELLO must work
# before anyone is authenticated, QUIT and RESET only end or reset the caller's own
# connection. `-auth` in a rule changes nothing, so
# they belong to every allowlist. A Sentinel's command table has only AUTH and HELLO.
ALWAYS_ALLOWED = ("auth", "hello", "quit", "reset")


def _grant(commands: Iterable[str]) -> str:
    return " ".join(f"+{c}" for c in commands)


# docs/redis-notes.md#replica-user: all a replica needs from its master; every node may
# become a replica after a failover, so every node carries it. PSYNC is a full copy of
# every key: the `replica` password (masterauth in redis.conf) is as good as the data,
# which is why no other user may read the configuration (CONFIG GET masterauth).
REPLICA_COMMANDS = ("psync", "replconf", "ping")
REPLICA = AclUser("replica", f"resetchannels -@all {_grant(REPLICA_COMMANDS)}", "replication between Redis nodes")

# docs/redis-notes.md#sentinel-user: the minimal set of the Sentinel documentation:
# SLAVEOF, CONFIG REWRITE and CLIENT KILL inside MULTI/EXEC are the failover itself
# (Sentinel kills the clients of a demoted master so that they reconnect to the new
# one), SCRIPT KILL unblocks a BUSY master, PUBLISH/SUBSCRIBE on the hello channel is
# how Sentinels find each other.
SENTINEL_COMMANDS = (
    "multi",
    "slaveof",
    "ping",
    "exec",
    "subscribe",
    "config|rewrite",
    "role",
    "publish",
    "info",
    "client|setname",
    "client|kill",
    "script|kill",
)
SENTINEL = AclUser(
    "sentinel",
    f"resetchannels &__sentinel__:hello -@all {_grant(SENTINEL_COMMANDS)}",
    "Sentinel's monitoring and failover connections",
)

# docs/redis-notes.md#exporter-user-and-image: what redis_exporter (1.45 to 1.62) sends
# on a scrape with its defaults: CLIENT SETNAME (set-client-name), INFO ALL, CLUSTER
# INFO on a cluster node, LATENCY LATEST and HISTOGRAM, SLOWLOG LEN and GET 1; PING for
# operators checking the credential. No CONFIG: its GET * returns masterauth, the
# replica password (ACL cannot restrict CONFIG GET's argument), so the exporter runs
# with EXPORTER_ENVIRONMENT; maxmemory still comes from INFO memory. No key commands, no
# SCAN (its check-keys options are not used; SCAN would list every key whatever the key
# patterns), no CLIENT LIST, KILL or PAUSE. SLOWLOG GET shows the arguments of slow
# commands, with AUTH, HELLO, ACL SETUSER and CONFIG SET secrets redacted by Redis.
EXPORTER_COMMANDS = (
    "ping",
    "info",
    "client|setname",
    "cluster|info",
    "latency|latest",
    "latency|histogram",
    "slowlog|len",
    "slowlog|get",
)
EXPORTER = AclUser(
    "exporter", f"resetchannels -@all {_grant(EXPORTER_COMMANDS)}", "Prometheus redis_exporter, read-only"
)

# The exporter's environment in both backends: `-` skips its `CONFIG GET *` (1.61 and
# later; 1.45 sends the unknown command `-` and ignores the error). The same as the
# flag --config-command=-.
EXPORTER_ENVIRONMENT: Mapping[str, str] = {"REDIS_EXPORTER_CONFIG_COMMAND": "-"}

# docs/redis-notes.md#backup-user: the backup worker (redis_ha/backup) reads roles, link
# state and offsets from INFO, the cluster's shards from CLUSTER SHARDS, and takes a
# snapshot the way `redis-cli --rdb` does (REPLCONF rdb-only, then SYNC); PING for
# operators checking the credential. Like `replica`, its password is as good as the
# data; unlike it, it cannot become anyone's replica (no PSYNC), and it is the only
# Redis credential the backup worker holds.
BACKUP_COMMANDS = ("sync", "replconf", "ping", "info")
BACKUP_CLUSTER_COMMANDS = (*BACKUP_COMMANDS, "cluster|shards")
BACKUP = AclUser("backup", f"resetchannels -@all {_grant(BACKUP_COMMANDS)}", "scheduled and on-demand backups")
CLUSTER_BACKUP = AclUser(
    "backup", f"resetchannels -@all {_grant(BACKUP_CLUSTER_COMMANDS)}", "scheduled and on-demand backups"
)

ADMIN = AclUser("admin", "~* &* +@all", "operators; the only user with every command")

# docs/redis-notes.md#define-the-default-user: an aclfile without a `default` line
# recreates `default nopass +@all`.
DEFAULT_OFF = "user default off resetpass resetkeys resetchannels -@all"

# The Sentinel port has its own users (in sentinel.conf). Peers authenticate to each
# other as `sentinel` and send a peer only PING, CLIENT SETNAME, the hello PUBLISH and
# SENTINEL IS-MASTER-DOWN-BY-ADDR (the failure agreement and the leader vote).
SENTINEL_PEER_COMMANDS = ("ping", "publish", "client|setname", "sentinel|is-master-down-by-addr")
SENTINEL_PEER = AclUser(
    "sentinel",
    f"resetchannels &__sentinel__:hello -@all {_grant(SENTINEL_PEER_COMMANDS)}",
    "Sentinel-to-Sentinel links",
)
# Applications discover the master as `sentinel-client` (redis-py's Sentinel, and with
# it kombu's sentinel transport and Celery: SENTINEL MASTERS and SLAVES; other clients
# ask GET-MASTER-ADDR-BY-NAME, MASTER, REPLICAS, SENTINELS and subscribe to the events;
# the verification suite checks CKQUORUM). Connection setup needs only AUTH or HELLO,
# CLIENT SETNAME when a client name is set, and PING; redis-py's CLIENT SETINFO (7.2)
# is refused and redis-py ignores that. Read-only: no SENTINEL FAILOVER, SET, RESET,
# REMOVE, MONITOR, CONFIG, no IS-MASTER-DOWN-BY-ADDR (a vote in the leader election),
# no CLIENT KILL or PAUSE.
SENTINEL_CLIENT_COMMANDS = (
    "ping",
    "client|setname",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "sentinel|get-master-addr-by-name",
    "sentinel|master",
    "sentinel|masters",
    "sentinel|replicas",
    "sentinel|slaves",
    "sentinel|sentinels",
    "sentinel|ckquorum",
)
SENTINEL_CLIENT = AclUser(
    "sentinel-client",
    f"resetchannels &* -@all {_grant(SENTINEL_CLIENT_COMMANDS)}",
    "applications and the verification suite: master discovery only",
)

# docs/redis-notes.md#sentinel-exporter-user: redis_exporter in front of a Sentinel
# (1.45 to 1.62, and later without --include-config-metrics) sends CLIENT SETNAME, INFO
# ALL (INFO when that fails), PING when asked to, and for every monitored master SENTINEL
# MASTERS, CKQUORUM, SENTINELS and SLAVES (REPLICAS is the same reply under its newer
# name). Its LATENCY and SLOWLOG requests are unknown commands to a Sentinel. No
# SENTINEL CONFIG: its GET returns sentinel-pass, the peers' password, as CONFIG GET
# returns masterauth on a Redis node. A user of its own with its own password: the
# Redis-port exporter's password never opens a Sentinel, nor the other way round.
SENTINEL_EXPORTER_COMMANDS = (
    "ping",
    "info",
    "client|setname",
    "sentinel|masters",
    "sentinel|ckquorum",
    "sentinel|sentinels",
    "sentinel|slaves",
    "sentinel|replicas",
)
SENTINEL_EXPORTER = AclUser(
    "sentinel-exporter",
    f"resetchannels -@all {_grant(SENTINEL_EXPORTER_COMMANDS)}",
    "Prometheus redis_exporter in front of the Sentinels, read-only",
)

SYSTEM_USERS = (ADMIN, REPLICA, SENTINEL, EXPORTER, BACKUP)
SENTINEL_PORT_USERS = (ADMIN, SENTINEL_PEER, SENTINEL_CLIENT, SENTINEL_EXPORTER)

# The declared allowlist of each system user, by server kind; ALWAYS_ALLOWED comes on
# top. None: every command (admin).
SYSTEM_ALLOWLISTS: Mapping[str, Mapping[str, tuple[str, ...] | None]] = {
    "redis": {
        "admin": None,
        "replica": REPLICA_COMMANDS,
        "sentinel": SENTINEL_COMMANDS,
        "exporter": EXPORTER_COMMANDS,
        "backup": BACKUP_COMMANDS,
    },
    "sentinel": {
        "admin": None,
        "sentinel": SENTINEL_PEER_COMMANDS,
        "sentinel-client": SENTINEL_CLIENT_COMMANDS,
        "sentinel-exporter": SENTINEL_EXPORTER_COMMANDS,
    },
    "cluster": {
        "admin": None,
        "replica": REPLICA_COMMANDS,
        "exporter": EXPORTER_COMMANDS,
        "backup": BACKUP_CLUSTER_COMMANDS,
    },
}


def app_role_rules(role: AppRole) -> str:
    """ACL rules for an application role.

    The denials always come last, so no granted category can bring them back. SCAN
    walks the whole keyspace whatever the key patterns (MATCH is only a filter the
    client chooses), so it is granted to roles that declare `scan` and denied to the
    others (docs/redis-notes.md#key-listing-commands). `~prefix:*` does not limit
    commands that take no key (docs/redis-notes.md#roles-match-what-clients-use). Since
    7.0 a user has no channels unless granted.
    """
    parts = ["resetkeys", "resetchannels", "-@all"]
    parts += [f"~{k}" for k in role.keys]
    parts += [f"&{c}" for c in role.channels]
    parts += list(role.commands)
    if role.scan:
        parts.append("+scan")
    parts += APP_ROLE_DENIALS
    if not role.scan:
        parts.append("-scan")
    return " ".join(parts)


def redis_users(settings: Settings) -> tuple[AclUser, ...]:
    """Every user of a Redis node's aclfile, system users first."""
    apps = tuple(AclUser(r.name, app_role_rules(r), r.description) for r in settings.roles)
    return SYSTEM_USERS + apps


# Cluster-aware clients read the slot map with these; none of @connection, @read or
# @write grants them (ACL DRYRUN on 7.0), so without them an application user cannot
# even start a cluster client. All read-only.
CLUSTER_DISCOVERY = "+cluster|slots +cluster|shards +cluster|nodes +cluster|info +cluster|myid +cluster|keyslot"


def cluster_redis_users(settings: Settings) -> tuple[AclUser, ...]:
    """Every user of a Redis Cluster node's aclfile: no Sentinel user (nothing
    monitors a cluster node), application roles may also read the slot map. Cluster
    replicas authenticate to their master as `replica` (masteruser/masterauth), and
    `redis-cli --cluster` runs as `admin`."""
    apps = tuple(AclUser(r.name, f"{app_role_rules(r)} {CLUSTER_DISCOVERY}", r.description) for r in settings.roles)
    return (ADMIN, REPLICA, EXPORTER, CLUSTER_BACKUP, *apps)


def user_names(settings: Settings) -> tuple[str, ...]:
    """Everyone who gets a password: Redis users plus the Sentinel-port client and
    exporter users."""
    return tuple(u.name for u in redis_users(settings)) + (SENTINEL_CLIENT.name, SENTINEL_EXPORTER.name)


def password_hash(password: str) -> str:
    """The form an ACL file stores: `#` followed by the sha256 in hex."""
    if not password:
        raise ValueError("empty password")
    return "#" + hashlib.sha256(password.encode()).hexdigest()


# During phase 1 of a rotation the backends get a user's previous password under this
# key next to its current one (components/credentials.py): its `user` lines then carry
# both hashes, the new one first, and both passwords log in.
PREVIOUS = "previous:"


def previous_of(user: str) -> str:
    return PREVIOUS + user


def password_hashes(name: str, passwords: Mapping[str, str]) -> str:
    """`#<new>` or, during phase 1 of a rotation, `#<new> #<old>`."""
    hashes = [password_hash(passwords[name])]
    if previous_of(name) in passwords:
        hashes.append(password_hash(passwords[previous_of(name)]))
    return " ".join(hashes)


def acl_line(user: AclUser, passwords: Mapping[str, str]) -> str:
    return f"user {user.name} on {password_hashes(user.name, passwords)} {user.rules}"


def without_secrets(passwords: Iterable[str]) -> dict[str, str]:
    """Stand-in passwords, one per user, the same whatever the real ones are and
    whether a rotation is in phase 1: files rendered with them differ only where a
    setting differs, which is what a pod template checksum or a container label may
    follow (a rotation must change neither)."""
    return {u: f"redis-ha-placeholder-{u}" for u in passwords if not u.startswith(PREVIOUS)}


# --- allowlists
# ------------------------------------------------------------------------

SERVER_KINDS = ("redis", "sentinel", "cluster")


def server_users(settings: Settings, kind: str) -> tuple[AclUser, ...]:
    """The users of one server kind: a Redis node of the Sentinel group, a Sentinel, a
    Redis Cluster node."""
    if kind == "redis":
        return redis_users(settings)
    if kind == "sentinel":
        return SENTINEL_PORT_USERS
    if kind == "cluster":
        return cluster_redis_users(settings)
    raise ValueError(f"unknown server kind {kind!r}; one of {', '.join(SERVER_KINDS)}")


def command_rules(rules: str) -> tuple[str, ...]:
    """The command rules of a user's ACL rules, in order (`+@read`, `-scan`,
    `+client|setname`); `allcommands`/`nocommands` as `+@all`/`-@all`."""
    aliases = {"allcommands": "+@all", "nocommands": "-@all"}
    return tuple(aliases.get(t, t) for t in rules.split() if t in aliases or (len(t) > 1 and t[0] in "+-"))


def _patterns(rules: str, sigil: str, everything: str, reset: str) -> tuple[str, ...]:
    """Key (`~`) or channel (`&`) patterns of ACL rules, `*` for allkeys/allchannels."""
    found: list[str] = []
    for token in rules.split():
        if token == reset:
            found = []
        elif token == everything:
            found = ["*"]
        elif token.startswith(sigil):
            found.append(token[1:])
    return tuple(found)


def allowlists(settings: Settings) -> dict[str, Any]:
    """For the stack outputs: per server kind and user, the command rules of its user
    line (in order) and its key and channel patterns, plus ALWAYS_ALLOWED. Evaluated
    against a server's command table they give the user's exact allowlist there."""
    return {
        "alwaysAllowed": list(ALWAYS_ALLOWED),
        "servers": {
            kind: {
                user.name: {
                    "commands": list(command_rules(user.rules)),
                    "keys": list(_patterns(user.rules, "~", "allkeys", "resetkeys")),
                    "channels": list(_patterns(user.rules, "&", "allchannels", "resetchannels")),
                }
                for user in server_users(settings, kind)
            }
            for kind in SERVER_KINDS
        },
    }


class ServerCommand(Protocol):
    """One command a server can run (a command without subcommands, or a subcommand
    `parent|sub`) and its ACL categories (without `@`), as COMMAND INFO reports them;
    tests/verify/acl_sweep.py reads them from a live server."""

    @property
    def name(self) -> str: ...

    @property
    def categories(self) -> frozenset[str]: ...


def allowed_commands(rules: Sequence[str], table: Iterable[ServerCommand]) -> frozenset[str]:
    """The exact allowlist the command rules give on a server with this command table.

    The rules apply in order, as Redis applies them: `+@cat`/`-@cat` set or clear every
    command and subcommand of the category (`@all`: all of them), `+cmd` a command with
    all its subcommands, `+cmd|sub` one subcommand. ALWAYS_ALLOWED is on top.
    """
    commands = {c.name: c for c in table}
    allowed: set[str] = set()
    for rule in rules:
        sign, target = rule[0], rule[1:]
        if target.startswith("@"):
            category = target[1:]
            selected = {n for n, c in commands.items() if category == "all" or category in c.categories}
        elif target in commands or "|" in target:
            if target not in commands:
                raise ValueError(f"rule {rule}: the server has no command {target}")
            selected = {target}
        else:
            selected = {n for n in commands if n.startswith(f"{target}|")}
            if not selected:
                raise ValueError(f"rule {rule}: the server has no command {target}")
        if sign == "+":
            allowed |= selected
        else:
            allowed -= selected
    return frozenset(allowed | (set(ALWAYS_ALLOWED) & set(commands)))


def declared_allowlist(kind: str, user: str, table: Iterable[ServerCommand]) -> frozenset[str] | None:
    """A system user's declared allowlist on a server with this command table (its
    commands plus ALWAYS_ALLOWED, `None` for an application role); admin: everything."""
    names = {c.name for c in table}
    declared = SYSTEM_ALLOWLISTS[kind]
    if user not in declared:
        return None
    commands = declared[user]
    if commands is None:
        return frozenset(names)
    return frozenset(commands) | (frozenset(ALWAYS_ALLOWED) & names)
