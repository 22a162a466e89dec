"""Security: nobody gets in without a password, every user can do its job and no more."""

from __future__ import annotations

import re
import uuid

import pytest

from .access import Node, Outputs, sample_key

# What no application role may run, with a representative invocation each.
FORBIDDEN = {
    "FLUSHALL": ("FLUSHALL",),
    "FLUSHDB": ("FLUSHDB",),
    "CONFIG": ("CONFIG", "GET", "maxmemory"),
    "KEYS": ("KEYS", "*"),
    # Both report keys outside the role's patterns (BCAST: every modified key's name).
    "RANDOMKEY": ("RANDOMKEY",),
    "CLIENT-TRACKING": ("CLIENT", "TRACKING", "ON", "BCAST"),
    "DEBUG": ("DEBUG", "SLEEP", "0"),
    "FUNCTION-FLUSH": ("FUNCTION", "FLUSH"),
    "SCRIPT-FLUSH": ("SCRIPT", "FLUSH"),
}


def test_redis_refuses_unauthenticated_clients(redis_node: Node) -> None:
    reply = redis_node.cli(None, "PING")
    assert reply.startswith("NOAUTH"), f"{redis_node.name} answered {reply!r} to an unauthenticated PING"


def test_sentinel_refuses_unauthenticated_clients(sentinel_node: Node) -> None:
    reply = sentinel_node.cli(None, "PING")
    assert reply.startswith("NOAUTH"), f"{sentinel_node.name} answered {reply!r} to an unauthenticated PING"


def test_default_user_is_off(redis_node: Node) -> None:
    line = next(x for x in redis_node.cli("admin", "ACL", "LIST").splitlines() if x.startswith("user default "))
    assert " off " in f"{line} ", f"{redis_node.name}: {line}"


def test_acl_file_holds_only_hashed_passwords(redis_node: Node, outputs: Outputs) -> None:
    acl = redis_node.host.file(f"{outputs.deployment['confDir']}/users.acl")
    assert acl.exists, f"{redis_node.name}: no users.acl"
    content = acl.content_string
    leaked = [user for user, password in outputs.passwords.items() if password in content]
    assert not leaked, f"{redis_node.name}: users.acl holds the plain-text password of {leaked}"
    for line in content.splitlines():
        assert line.startswith("user "), f"{redis_node.name}: unexpected line in users.acl: {line[:40]!r}"
        assert re.search(r" (off|#[0-9a-f]{64})( |$)", line), f"{redis_node.name}: user line without a sha256 hash"


def test_protected_settings_match_the_stack(redis_node: Node, outputs: Outputs) -> None:
    expected = outputs.deployment["protectedSettings"]
    for name, value in expected.items():
        reply = redis_node.cli("admin", "CONFIG", "GET", name).splitlines()
        assert reply == [name, value], f"{redis_node.name}: {name} is {reply[1:]!r}, the stack says {value!r}"


def test_role_can_do_its_job(role: dict, master: Node) -> None:
    user = role["name"]
    token = uuid.uuid4().hex
    keys = [k for k in (sample_key(p, token) for p in role["keys"]) if k]
    channels = [k for k in (sample_key(p, token) for p in role["channels"]) if k]
    assert keys or channels, f"role {user} has no pattern the suite can exercise"
    assert master.cli(user, "PING") == "PONG"
    for key in keys:
        assert master.cli(user, "SET", key, "v", "EX", "60") == "OK", f"{user} cannot SET {key}"
        assert master.cli(user, "GET", key) == "v"
        assert master.cli(user, "DEL", key) == "1"
    for channel in channels:
        reply = master.cli(user, "PUBLISH", channel, "verify")
        assert reply.isdigit(), f"{user} cannot PUBLISH on {channel}: {reply}"


def test_role_is_refused_other_keys_and_channels(role: dict, master: Node) -> None:
    user = role["name"]
    token = uuid.uuid4().hex
    reply = master.cli(user, "SET", f"redis-ha-verify-forbidden:{token}", "v")
    assert reply.startswith("NOPERM"), f"{user} may write outside its key patterns: {reply}"
    reply = master.cli(user, "PUBLISH", f"redis-ha-verify-forbidden:{token}", "v")
    assert reply.startswith("NOPERM"), f"{user} may publish outside its channels: {reply}"


@pytest.mark.parametrize("command", sorted(FORBIDDEN))
def test_role_is_refused_dangerous_commands(role: dict, command: str, master: Node) -> None:
    invocation = FORBIDDEN[command]
    # The ACL itself must deny it, whatever else (enable-debug-command) would; checked
    # first, so a wrongly permitted FLUSH is reported, never run.
    verdict = master.cli("admin", "ACL", "DRYRUN", role["name"], *invocation)
    assert verdict != "OK" and "no permissions" in verdict, f"the ACL lets {role['name']} run {command}: {verdict}"
    reply = master.cli(role["name"], *invocation)
    assert reply.startswith(("NOPERM", "ERR DEBUG command not allowed")), f"{role['name']} may run {command}: {reply}"


def test_role_scans_only_if_it_declares_scan(role: dict, master: Node) -> None:
    # SCAN walks the whole keyspace whatever the key patterns (ACL DRYRUN: nothing runs).
    verdict = master.cli("admin", "ACL", "DRYRUN", role["name"], "SCAN", "0")
    if role.get("scan"):
        assert verdict == "OK", f"{role['name']} declares scan but may not SCAN: {verdict}"
    else:
        assert "no permissions" in verdict, f"{role['name']} may SCAN without declaring scan: {verdict}"


def test_exporter_user_cannot_write(master: Node) -> None:
    assert "redis_version:" in master.cli("exporter", "INFO", "server")
    reply = master.cli("exporter", "SET", f"redis-ha-verify:{uuid.uuid4().hex}", "v")
    assert reply.startswith("NOPERM"), f"the exporter user may write: {reply}"


def test_exporter_user_cannot_read_the_configuration(redis_node: Node) -> None:
    # CONFIG GET masterauth would give the replica password, and with it PSYNC.
    reply = redis_node.cli("exporter", "CONFIG", "GET", "masterauth")
    assert reply.startswith("NOPERM"), f"{redis_node.name}: the exporter user may read the configuration: {reply}"


@pytest.mark.parametrize(
    "command", [("CLIENT", "KILL", "TYPE", "normal"), ("CLIENT", "PAUSE", "1000")], ids=lambda c: c[1]
)
def test_exporter_user_cannot_touch_clients(redis_node: Node, command: tuple[str, ...]) -> None:
    verdict = redis_node.cli("admin", "ACL", "DRYRUN", "exporter", *command)
    assert "no permissions" in verdict, f"{redis_node.name}: the exporter user may run {' '.join(command)}: {verdict}"


def test_sentinel_client_cannot_change_sentinel(sentinel_node: Node, outputs: Outputs) -> None:
    reply = sentinel_node.cli("sentinel-client", "SENTINEL", "FAILOVER", outputs.deployment["masterName"])
    assert reply.startswith("NOPERM"), f"sentinel-client may trigger a failover: {reply}"


@pytest.mark.parametrize(
    "command", [("CLIENT", "KILL", "TYPE", "normal"), ("CLIENT", "PAUSE", "1000")], ids=lambda c: c[1]
)
def test_sentinel_client_cannot_touch_sentinel_clients(sentinel_node: Node, command: tuple[str, ...]) -> None:
    verdict = sentinel_node.cli("admin", "ACL", "DRYRUN", "sentinel-client", *command)
    assert "no permissions" in verdict, f"{sentinel_node.name}: sentinel-client may run {' '.join(command)}: {verdict}"
