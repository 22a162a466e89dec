"""ACL users and the files that carry them: hashes only, nothing Redis 7 rejects."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from redis_ha.components import rendering, security
from redis_ha.components.program import naming_for
from redis_ha.components.settings import DEFAULT_ROLES, AppRole, Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_sentinel_topology

from tests.verify import acl_sweep

HASH_RE = re.compile(r"^#[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def settings():
    return load_settings({"backend": "docker", "redisVersion": "7.0"})


def test_password_hash_is_sha256_hex_with_a_hash_sign() -> None:
    digest = security.password_hash("s3cret")
    assert HASH_RE.match(digest)
    assert digest == "#" + hashlib.sha256(b"s3cret").hexdigest()
    assert security.password_hash("s3cret ") != digest


def test_password_hash_refuses_an_empty_password() -> None:
    with pytest.raises(ValueError):
        security.password_hash("")


CUSTOM_ROLES = (
    AppRole("jobs", ("jobs:*",), ("jobs.events",), ("+@read", "+@write")),
    # A role that asks for dangerous commands still does not get them.
    AppRole("greedy", ("g:*",), (), ("+@all", "+@dangerous", "+flushall")),
    AppRole("listener", (), ("news:*",), ("+@pubsub",)),
    # A role that says it needs SCAN, and one that asks for it without saying so.
    AppRole("indexer", ("idx:*",), (), ("+@read", "+@keyspace"), scan=True),
    AppRole("lister", ("l:*",), (), ("+@read", "+scan", "+randomkey", "+client|tracking")),
)


@pytest.mark.parametrize("role", DEFAULT_ROLES + CUSTOM_ROLES, ids=lambda r: r.name)
def test_app_role_rules_reset_first_and_drop_dangerous_last(role: AppRole) -> None:
    rules = security.app_role_rules(role).split()
    assert rules[:3] == ["resetkeys", "resetchannels", "-@all"]
    # Only removals follow the granted commands: -@dangerous, the server-wide
    # function/script writes that @dangerous does not cover, the commands that report
    # other roles' keys; SCAN is granted before them or denied with them.
    tail = [
        "-@dangerous",
        "-function|flush",
        "-function|delete",
        "-function|load",
        "-function|restore",
        "-script|flush",
        "-script|debug",
        "-randomkey",
        "-cluster|getkeysinslot",
        "-client|tracking",
    ]
    grants = [*role.commands, "+scan"] if role.scan else list(role.commands)
    tail = tail if role.scan else [*tail, "-scan"]
    assert rules[-len(tail) :] == tail
    assert rules.count("-@dangerous") == 1
    assert [r[1:] for r in rules if r.startswith("~")] == list(role.keys)
    assert [r[1:] for r in rules if r.startswith("&")] == list(role.channels)
    assert rules[3 + len(role.keys) + len(role.channels) : -len(tail)] == grants
    # No blanket access sneaks in.
    assert "~*" not in rules
    assert "&*" not in rules
    assert "allkeys" not in rules
    assert "allchannels" not in rules


def test_redis_users_are_system_users_then_roles(settings) -> None:
    names = [u.name for u in security.redis_users(settings)]
    assert names == ["admin", "replica", "sentinel", "exporter", "backup"] + [r.name for r in settings.roles]
    assert security.user_names(settings) == (*names, "sentinel-client", "sentinel-exporter")


def test_users_acl_has_hashes_only(settings, passwords) -> None:
    content = rendering.render_users_acl(security.redis_users(settings), passwords)
    for user, password in passwords.items():
        assert password not in content, user
    for user in security.redis_users(settings):
        assert f"user {user.name} on {security.password_hash(passwords[user.name])} " in content


def test_users_acl_has_only_user_lines(settings, passwords) -> None:
    # docs/redis-notes.md#acl-file-format: Redis 7.0/7.2 refuse comment lines in an aclfile.
    lines = rendering.render_users_acl(security.redis_users(settings), passwords).splitlines()
    assert lines, "empty users.acl"
    assert all(line.startswith("user ") for line in lines), lines
    assert not any(line.lstrip().startswith("#") for line in lines)
    names = [line.split()[1] for line in lines]
    assert names == ["default"] + [u.name for u in security.redis_users(settings)]


def test_users_acl_default_user_is_off(settings, passwords) -> None:
    # docs/redis-notes.md#define-the-default-user: without a default line Redis recreates `default on nopass +@all`.
    first = rendering.render_users_acl(security.redis_users(settings), passwords).splitlines()[0]
    assert first == security.DEFAULT_OFF
    rules = first.split()[2:]
    assert "off" in rules
    assert "on" not in rules
    assert "nopass" not in rules
    assert "-@all" in rules
    assert not any(r.startswith(("#", ">", "~", "&", "+")) for r in rules)


def test_system_users_rules(settings, passwords) -> None:
    lines = {
        line.split()[1]: line
        for line in rendering.render_users_acl(security.redis_users(settings), passwords).splitlines()
    }
    # Each system user gets exactly what docs/redis-notes.md lists (#sentinel-user,
    # #replica-user, #exporter-user-and-image), and no keys.
    assert lines["replica"].endswith(" resetchannels -@all +psync +replconf +ping")
    for name in ("replica", "sentinel", "exporter"):
        assert " ~" not in lines[name]
        assert " -@all " in lines[name]
    for command in ("+multi", "+exec", "+slaveof", "+config|rewrite", "+client|kill", "+info", "+role"):
        assert command in lines["sentinel"].split()
    assert "&__sentinel__:hello" in lines["sentinel"].split()
    # The exporter may not read the configuration: CONFIG GET * holds masterauth.
    assert not any(rule.startswith("+config") for rule in lines["exporter"].split())
    assert "+@all" not in lines["exporter"]


def test_sentinel_conf_holds_only_the_sentinel_password(settings, passwords) -> None:
    topology = build_sentinel_topology(settings, naming_for(settings))
    conf = rendering.render_sentinel_conf(settings, topology.sentinels[0], topology.master, passwords)
    lines_with_password = [line for line in conf.splitlines() if passwords["sentinel"] in line]
    assert [line.rsplit(" ", 1)[0] for line in lines_with_password] == [
        f"sentinel auth-pass {settings.master_name}",
        "sentinel sentinel-pass",
    ]
    for user, password in passwords.items():
        if user != "sentinel":
            assert password not in conf, user
    for user in security.SENTINEL_PORT_USERS:
        assert f"user {user.name} on {security.password_hash(passwords[user.name])} " in conf
    assert security.DEFAULT_OFF in conf.splitlines()
    assert "sentinel myid" not in conf  # docs/redis-notes.md#sentinel-rewrites-its-config: never a shared myid


def test_redis_conf_holds_only_the_replica_password(settings, passwords) -> None:
    topology = build_sentinel_topology(settings, naming_for(settings))
    for node in topology.redis_nodes:
        master = None if node.role == "master" else topology.master
        conf = rendering.render_redis_conf(settings, node, passwords, master=master)
        assert f"masterauth {passwords['replica']}" in conf.splitlines()
        for user, password in passwords.items():
            if user != "replica":
                assert password not in conf, user
        # No rename-command, no users outside the aclfile (docs/redis-notes.md#no-rename-command,
        # #users-only-in-the-acl-file).
        directives = [line.split()[0] for line in conf.splitlines() if line.strip() and not line.startswith("#")]
        assert "rename-command" not in directives
        assert "requirepass" not in directives
        assert "user" not in directives


# --- allowlists -------------------------------------------------------------------------

SYSTEM_USERS = [
    ("redis", security.REPLICA, security.REPLICA_COMMANDS),
    ("redis", security.SENTINEL, security.SENTINEL_COMMANDS),
    ("redis", security.EXPORTER, security.EXPORTER_COMMANDS),
    ("sentinel", security.SENTINEL_PEER, security.SENTINEL_PEER_COMMANDS),
    ("sentinel", security.SENTINEL_CLIENT, security.SENTINEL_CLIENT_COMMANDS),
]
SYSTEM_USER_IDS = [f"{kind}-{user.name}" for kind, user, _ in SYSTEM_USERS]

# What no application role may run, whatever its commands ask for: server control, the
# configuration (masterauth), other clients' connections, and every way of listing or
# following keys outside the role's patterns (SCAN only with `scan`).
NEVER_FOR_APP_ROLES = {
    "keys",
    "randomkey",
    "client|tracking",
    "client|kill",
    "client|pause",
    "client|unpause",
    "client|list",
    "client|no-evict",
    "config|get",
    "config|set",
    "config|rewrite",
    "flushall",
    "flushdb",
    "swapdb",
    "monitor",
    "debug",
    "shutdown",
    "replicaof",
    "slaveof",
    "psync",
    "sync",
    "failover",
    "acl|setuser",
    "acl|list",
    "acl|getuser",
    "info",
    "slowlog|get",
    "migrate",
    "restore",
    "function|flush",
    "function|load",
    "function|delete",
    "function|restore",
    "script|flush",
    "script|debug",
    "cluster|getkeysinslot",
}
EXPORTER_NEVER = {"config|get", "config|set", "client|kill", "client|pause", "client|list", "scan", "keys", "eval"}
SENTINEL_CLIENT_NEVER = {
    "sentinel|failover",
    "sentinel|set",
    "sentinel|reset",
    "sentinel|remove",
    "sentinel|monitor",
    "sentinel|config",
    "sentinel|flushconfig",
    "sentinel|debug",
    "sentinel|simulate-failure",
    "sentinel|is-master-down-by-addr",
    "sentinel|info-cache",
    "sentinel|pending-scripts",
    "client|kill",
    "client|pause",
    "client|unpause",
    "client|list",
    "client|unblock",
    "acl|setuser",
    "shutdown",
}


@pytest.mark.parametrize(("kind", "user", "commands"), SYSTEM_USERS, ids=SYSTEM_USER_IDS)
def test_system_user_rules_are_its_declared_commands(kind: str, user: security.AclUser, commands) -> None:
    # `-@all`, then a grant for each declared command, nothing else: no category can
    # bring back what the declaration leaves out.
    assert security.command_rules(user.rules) == ("-@all", *(f"+{c}" for c in commands))
    assert not any("@" in c for c in commands)
    assert security.SYSTEM_ALLOWLISTS[kind][user.name] == commands


def test_command_rules_keep_the_order_and_only_command_rules() -> None:
    rules = "on #abc resetkeys ~a:* resetchannels &b -@all +@read -get allcommands nocommands +client|setname"
    assert security.command_rules(rules) == ("-@all", "+@read", "-get", "+@all", "-@all", "+client|setname")


def test_allowlists_cover_every_user_of_every_server_kind(settings: Settings) -> None:
    acl = security.allowlists(settings)
    assert acl["alwaysAllowed"] == ["auth", "hello", "quit", "reset"]
    servers = acl["servers"]
    assert list(servers) == ["redis", "sentinel", "cluster"]
    assert list(servers["redis"]) == [u.name for u in security.redis_users(settings)]
    assert list(servers["sentinel"]) == ["admin", "sentinel", "sentinel-client", "sentinel-exporter"]
    assert list(servers["cluster"]) == [u.name for u in security.cluster_redis_users(settings)]
    assert servers["redis"]["admin"] == {"commands": ["+@all"], "keys": ["*"], "channels": ["*"]}
    assert servers["redis"]["exporter"]["keys"] == servers["redis"]["exporter"]["channels"] == []
    assert servers["sentinel"]["sentinel-client"]["channels"] == ["*"]
    assert servers["redis"]["sentinel"]["channels"] == ["__sentinel__:hello"]
    for role in settings.roles:
        declared = servers["redis"][role.name]
        assert declared["keys"] == list(role.keys) and declared["channels"] == list(role.channels)
        assert declared["commands"] == list(security.command_rules(security.app_role_rules(role)))


def test_default_roles_scan_policy() -> None:
    # Only the cache role invalidates by SCAN (tests/verify/use_cases.py).
    assert {r.name for r in DEFAULT_ROLES if r.scan} == {"cache"}


def test_exporter_environment_disables_config_collection() -> None:
    assert security.EXPORTER_ENVIRONMENT == {"REDIS_EXPORTER_CONFIG_COMMAND": "-"}


# --- allowlists evaluated on Redis 7.0's own command tables ----------------------------


def _allowed(kind: str, rules: str, command_tables) -> frozenset[str]:
    return security.allowed_commands(security.command_rules(rules), command_tables[kind].values())


@pytest.mark.parametrize(("kind", "user", "commands"), SYSTEM_USERS, ids=SYSTEM_USER_IDS)
def test_system_user_allowlist_is_exactly_its_declaration(kind, user, commands, command_tables) -> None:
    allowed = _allowed(kind, user.rules, command_tables)
    assert allowed == security.declared_allowlist(kind, user.name, command_tables[kind].values())
    names = set(command_tables[kind])
    assert allowed == set(commands) | (set(security.ALWAYS_ALLOWED) & names)
    assert set(commands) <= names, f"{user.name} declares commands Redis 7.0 does not have"


def test_admin_may_run_everything(command_tables) -> None:
    for kind in security.SERVER_KINDS:
        assert _allowed(kind, security.ADMIN.rules, command_tables) == set(command_tables[kind])


def test_exporter_may_not_read_the_configuration_or_touch_clients(command_tables) -> None:
    allowed = _allowed("redis", security.EXPORTER.rules, command_tables)
    assert not allowed & EXPORTER_NEVER
    assert not any(c.startswith("config|") for c in allowed)


def test_sentinel_client_is_read_only_on_sentinels(command_tables) -> None:
    allowed = _allowed("sentinel", security.SENTINEL_CLIENT.rules, command_tables)
    assert not allowed & SENTINEL_CLIENT_NEVER
    # What redis-py's Sentinel (and kombu, Celery through it) and the verification suite ask.
    assert {"sentinel|masters", "sentinel|slaves", "sentinel|get-master-addr-by-name", "sentinel|ckquorum"} <= allowed


def test_sentinel_peers_may_only_ping_hello_and_vote(command_tables) -> None:
    allowed = _allowed("sentinel", security.SENTINEL_PEER.rules, command_tables)
    assert allowed == {"auth", "hello", "ping", "publish", "client|setname", "sentinel|is-master-down-by-addr"}


@pytest.mark.parametrize("role", DEFAULT_ROLES + CUSTOM_ROLES, ids=lambda r: r.name)
@pytest.mark.parametrize("kind", ["redis", "cluster"])
def test_app_role_never_gets_server_control_or_other_keys(role: AppRole, kind: str, command_tables) -> None:
    rules = security.app_role_rules(role)
    if kind == "cluster":
        rules = f"{rules} {security.CLUSTER_DISCOVERY}"
    allowed = _allowed(kind, rules, command_tables)
    assert not allowed & NEVER_FOR_APP_ROLES, sorted(allowed & NEVER_FOR_APP_ROLES)
    # SCAN exactly when the role says it needs it (the lister asks with +scan, in vain).
    assert ("scan" in allowed) == role.scan
    assert allowed, role.name


def test_default_roles_keep_what_their_clients_use(command_tables) -> None:
    settings = load_settings({"backend": "docker", "redisVersion": "7.0"})
    allowed = {u.name: _allowed("redis", u.rules, command_tables) for u in security.redis_users(settings)}
    # redis-py's connection setup: AUTH or HELLO, CLIENT SETNAME, SELECT, PING.
    for role in settings.roles:
        assert {"auth", "hello", "client|setname", "select", "ping"} <= allowed[role.name], role.name
    assert {"scan", "get", "setex", "del", "evalsha", "script|load"} <= allowed["cache"]
    assert {"multi", "exec", "brpop", "time", "evalsha", "publish", "psubscribe"} <= allowed["celery"]
    assert {"publish", "subscribe", "psubscribe"} <= allowed["pubsub"]
    assert not any(c in allowed["pubsub"] for c in ("get", "set", "del"))


@pytest.mark.parametrize("kind", ["redis", "sentinel", "cluster"])
def test_the_verification_suite_evaluates_rules_like_the_security_model(kind: str, settings, command_tables) -> None:
    """tests/verify/acl_sweep.py cannot import components/: it has its own evaluation of
    the published rules, which must agree with security.allowed_commands."""
    table = command_tables[kind]
    acl = security.allowlists(dataclasses.replace(settings, roles=DEFAULT_ROLES + CUSTOM_ROLES))
    for user, declared in acl["servers"][kind].items():
        ours = security.allowed_commands(declared["commands"], table.values())
        theirs = acl_sweep.expected_commands(declared["commands"], table, acl["alwaysAllowed"])
        assert ours == theirs, (user, sorted(ours ^ theirs))


def test_rules_naming_a_command_the_server_lacks_are_an_error(command_tables) -> None:
    # CLIENT SETINFO is 7.2 only: a 7.0 aclfile naming it would not load.
    with pytest.raises(ValueError, match="client\\|setinfo"):
        security.allowed_commands(["-@all", "+client|setinfo"], command_tables["redis"].values())
    with pytest.raises(AssertionError, match="client\\|setinfo"):
        acl_sweep.expected_commands(["-@all", "+client|setinfo"], command_tables["redis"], [])
