"""Who may do what: the users every deployment has, and the application roles.

Plain Python. Passwords are never held here: the backends pass them in (from Pulumi
secrets) only inside `Output.apply`, and the ACL files carry nothing but their sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from components.settings import AppRole, Settings


@dataclass(frozen=True)
class AclUser:
    """One `user` line, without its password."""

    name: str
    rules: str
    description: str


# docs/redis-notes.md#replica-user: all a replica needs from its master (and every node may become a
# replica after a failover, so every node carries it).
REPLICA = AclUser("replica", "resetchannels -@all +psync +replconf +ping", "replication between Redis nodes")

# docs/redis-notes.md#sentinel-user: the minimal set from the Sentinel documentation. SLAVEOF, CONFIG
# REWRITE and CLIENT KILL inside MULTI/EXEC are the failover itself.
SENTINEL = AclUser(
    "sentinel",
    "resetchannels &__sentinel__:hello -@all +multi +slaveof +ping +exec +subscribe "
    "+config|rewrite +role +publish +info +client|setname +client|kill +script|kill",
    "Sentinel's monitoring and failover connections",
)

# docs/redis-notes.md#exporter-user-and-image: redis_exporter's read-only set (its README), restricted to commands
# Redis 7.0 knows, with `+client` narrowed to what the exporter calls (the README's
# `+client` would allow CLIENT PAUSE and CLIENT KILL).
EXPORTER = AclUser(
    "exporter",
    "resetchannels -@all +@connection +memory -readonly +strlen +config|get +xinfo +pfcount "
    "-quit +zcard +type +xlen -readwrite -command +client|list +client|info +client|setname "
    "-wait +scard +llen +hlen +get "
    "+eval +slowlog +cluster|info +cluster|slots +cluster|nodes -hello -echo +info "
    "+latency +scan -reset -auth -asking",
    "Prometheus redis_exporter, read-only",
)

ADMIN = AclUser("admin", "~* &* +@all", "operators; the only user with every command")

# docs/redis-notes.md#define-the-default-user: an aclfile without a `default` line recreates `default nopass +@all`.
DEFAULT_OFF = "user default off resetpass resetkeys resetchannels -@all"

# The Sentinel port has its own users (in sentinel.conf). Peers authenticate to each
# other as `sentinel`; applications discover the master as `sentinel-client`, which
# may read the Sentinel state and subscribe to its events but change nothing.
SENTINEL_PEER = AclUser("sentinel", "~* &* +@all", "Sentinel-to-Sentinel links")
SENTINEL_CLIENT = AclUser(
    "sentinel-client",
    "&* -@all +@connection +ping +role +subscribe +psubscribe +unsubscribe +punsubscribe "
    "+sentinel|get-master-addr-by-name +sentinel|master +sentinel|masters "
    "+sentinel|replicas +sentinel|slaves +sentinel|sentinels +sentinel|ckquorum "
    "+sentinel|myid",
    "applications and the verification suite: master discovery only",
)

SYSTEM_USERS = (ADMIN, REPLICA, SENTINEL, EXPORTER)
SENTINEL_PORT_USERS = (ADMIN, SENTINEL_PEER, SENTINEL_CLIENT)


# Server-wide commands outside @dangerous: one application must not be able to flush
# or replace the Lua functions and scripts of another.
_SERVER_WIDE_WRITES = (
    "-function|flush",
    "-function|delete",
    "-function|load",
    "-function|restore",
    "-script|flush",
)
# Appended after every application role's own rules (components/settings_roles.py
# refuses role grants these would take away again).
APP_ROLE_DENIALS = ("-@dangerous", *_SERVER_WIDE_WRITES)


def app_role_rules(role: AppRole) -> str:
    """ACL rules for an application role.

    `-@dangerous` and the server-wide function/script writes always come last, so no
    granted category can bring back FLUSHALL, FLUSHDB, KEYS, CONFIG, DEBUG, FUNCTION
    FLUSH and friends: `~prefix:*` does not limit commands that take no key
    (docs/redis-notes.md#roles-match-what-clients-use). Since 7.0 a user has no channels unless granted.
    """
    parts = ["resetkeys", "resetchannels", "-@all"]
    parts += [f"~{k}" for k in role.keys]
    parts += [f"&{c}" for c in role.channels]
    parts += list(role.commands)
    parts += APP_ROLE_DENIALS
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
    return (ADMIN, REPLICA, EXPORTER, *apps)


def user_names(settings: Settings) -> tuple[str, ...]:
    """Everyone who gets a password: Redis users plus the Sentinel-port client user."""
    return tuple(u.name for u in redis_users(settings)) + (SENTINEL_CLIENT.name,)


def password_hash(password: str) -> str:
    """The form an ACL file stores: `#` followed by the sha256 in hex."""
    if not password:
        raise ValueError("empty password")
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def acl_line(user: AclUser, passwords: Mapping[str, str]) -> str:
    return f"user {user.name} on {password_hash(passwords[user.name])} {user.rules}"
