"""ACL users and the files that carry them: hashes only, nothing Redis 7 rejects."""

from __future__ import annotations

import hashlib
import re

import pytest

from components import rendering, security
from components.program import naming_for
from components.settings import DEFAULT_ROLES, AppRole, load_settings
from components.topology import build_sentinel_topology

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
)


@pytest.mark.parametrize("role", DEFAULT_ROLES + CUSTOM_ROLES, ids=lambda r: r.name)
def test_app_role_rules_reset_first_and_drop_dangerous_last(role: AppRole) -> None:
    rules = security.app_role_rules(role).split()
    assert rules[:3] == ["resetkeys", "resetchannels", "-@all"]
    # Only removals follow the granted commands: -@dangerous, then the server-wide
    # function/script writes that @dangerous does not cover.
    tail = [
        "-@dangerous",
        "-function|flush",
        "-function|delete",
        "-function|load",
        "-function|restore",
        "-script|flush",
    ]
    assert rules[-len(tail) :] == tail
    assert rules.count("-@dangerous") == 1
    assert [r[1:] for r in rules if r.startswith("~")] == list(role.keys)
    assert [r[1:] for r in rules if r.startswith("&")] == list(role.channels)
    assert rules[3 + len(role.keys) + len(role.channels) : -len(tail)] == list(role.commands)
    # No blanket access sneaks in.
    assert "~*" not in rules
    assert "&*" not in rules
    assert "allkeys" not in rules
    assert "allchannels" not in rules


def test_redis_users_are_system_users_then_roles(settings) -> None:
    names = [u.name for u in security.redis_users(settings)]
    assert names == ["admin", "replica", "sentinel", "exporter"] + [r.name for r in settings.roles]
    assert security.user_names(settings) == (*names, "sentinel-client")


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
    assert "+config|get" in lines["exporter"].split()
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
