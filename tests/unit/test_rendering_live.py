"""The rendered files, run by the real Redis 7.0 (Debian's redis-server/redis-sentinel):
the master's configuration, the ACL users, replication, and the files of each version.

A template that Redis refuses, an ACL rule 7.0 does not know or a permission that is
wider than intended shows up here, before any container exists. Fixtures are in
conftest.py; every process they start is stopped in teardown. Sentinel and the
healthcheck: tests/unit/test_rendering_live_sentinel.py.
"""

from __future__ import annotations

import pytest
import redis
from redis_ha.components import rendering, security
from redis_ha.components.program import naming_for
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_sentinel_topology

from tests.support.live import LiveDeployment, connect, node_files, raw_command, wait_until

MASTER_CONFIG = {
    "maxmemory": lambda s: str(s.maxmemory),
    "maxmemory-policy": lambda s: s.maxmemory_policy,
    "appendonly": lambda s: "yes" if s.appendonly else "no",
    "appendfsync": lambda s: s.appendfsync,
    "min-replicas-to-write": lambda s: str(s.min_replicas_to_write),
    "min-replicas-max-lag": lambda s: str(s.min_replicas_max_lag),
    "save": lambda s: " ".join(f"{seconds} {changes}" for seconds, changes in s.save),
    "masteruser": lambda s: "replica",
    "enable-debug-command": lambda s: "no",
    "acl-pubsub-default": lambda s: "resetchannels",
}


@pytest.mark.parametrize("directive", MASTER_CONFIG)
def test_master_runs_with_the_configured_value(deployment: LiveDeployment, directive: str) -> None:
    live = deployment.client(deployment.master).config_get(directive)
    assert live == {directive: MASTER_CONFIG[directive](deployment.settings)}


def test_live_settings_are_not_just_redis_defaults(deployment: LiveDeployment) -> None:
    # Otherwise the comparisons above could pass with a template that sets nothing.
    s = deployment.settings
    assert s.maxmemory == 256 * 1024**2
    assert s.min_replicas_max_lag == 15
    assert s.save == ((900, 1), (300, 10))


@pytest.mark.parametrize("user", ["admin", "replica", "sentinel", "exporter", "cache", "pubsub"])
def test_user_authenticates_as_itself(deployment: LiveDeployment, user: str) -> None:
    client = deployment.client(deployment.master, user, single_connection_client=True)
    assert client.ping() is True
    # ACL WHOAMI is @slow, which only admin has: ask admin who this connection is.
    local_port = client.connection._sock.getsockname()[1]
    clients = deployment.client(deployment.master).client_list()
    mine = [c for c in clients if c["addr"] == f"127.0.0.1:{local_port}"]
    assert [c["user"] for c in mine] == [user]


def test_admin_whoami(deployment: LiveDeployment) -> None:
    assert deployment.client(deployment.master).acl_whoami() == "admin"


@pytest.mark.parametrize("user", ["admin", "replica", "sentinel", "exporter", "cache"])
def test_wrong_password_is_refused(deployment: LiveDeployment, user: str) -> None:
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        connect(deployment.master.port, user, deployment.passwords[user] + "x").ping()


def test_acl_list_default_off_and_no_plain_password(deployment: LiveDeployment) -> None:
    acl = deployment.client(deployment.master).acl_list()
    default = [line for line in acl if line.startswith("user default ")]
    assert len(default) == 1
    assert default[0].split()[2] == "off"
    assert "nopass" not in default[0]
    listed = "\n".join(acl)
    for user, password in deployment.passwords.items():
        assert password not in listed, user
    roles = {r.name for r in deployment.settings.roles}
    assert {line.split()[1] for line in acl} == {
        "default",
        "admin",
        "replica",
        "sentinel",
        "exporter",
        "backup",
    } | roles


def test_unauthenticated_client_gets_noauth(deployment: LiveDeployment) -> None:
    assert raw_command(deployment.master.port, "PING").startswith(b"-NOAUTH")
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        connect(deployment.master.port).ping()
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        connect(deployment.master.port).get("cache:x")


CACHE_DENIED = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("KEYS", "*"),
    # RANDOMKEY and CLIENT TRACKING BCAST name keys of other roles (session:<token>).
    ("RANDOMKEY",),
    ("CLIENT", "TRACKING", "ON", "BCAST"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("SHUTDOWN",),
    ("REPLICAOF", "NO", "ONE"),
    ("ACL", "LIST"),
    ("SET", "session:x", "1"),
    ("GET", "celery"),
    ("PUBLISH", "filing:processed", "1"),
]


@pytest.mark.parametrize("command", CACHE_DENIED, ids=lambda c: " ".join(c[:2]))
def test_cache_user_is_denied(deployment: LiveDeployment, command: tuple[str, ...]) -> None:
    cache = deployment.client(deployment.master, "cache")
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.execute_command(*command)


def test_debug_is_refused_to_cache_by_config_and_by_acl(deployment: LiveDeployment) -> None:
    # enable-debug-command no is checked before the ACL, so the error is not NOPERM;
    # ACL DRYRUN shows the ACL would refuse it as well.
    with pytest.raises(redis.ResponseError, match="DEBUG command not allowed"):
        deployment.client(deployment.master, "cache").execute_command("DEBUG", "SLEEP", "0")
    verdict = deployment.client(deployment.master).execute_command("ACL", "DRYRUN", "cache", "DEBUG", "SLEEP", "0")
    assert "no permissions" in verdict


def test_cache_user_reads_and_writes_its_keys(deployment: LiveDeployment) -> None:
    cache = deployment.client(deployment.master, "cache")
    assert cache.set("cache:x", "42", ex=60) is True
    assert cache.get("cache:x") == "42"
    assert cache.delete("cache:x") == 1
    # Invalidation by SCAN is part of the role; SCAN only shows what exists.
    cache.set("cache:scan", "1", ex=60)
    assert "cache:scan" in list(cache.scan_iter(match="cache:*"))


def test_only_a_role_that_declares_scan_may_scan(deployment: LiveDeployment) -> None:
    # SCAN lists the whole keyspace whatever the key patterns: the cache role (scan:
    # true) would see session:<token> keys, the sessions role may not scan at all.
    deployment.client(deployment.master, "sessions").set("session:scan-probe", "1", ex=60)
    assert "session:scan-probe" in deployment.client(deployment.master, "cache").scan(0, count=1000)[1]
    with pytest.raises(redis.exceptions.NoPermissionError):
        deployment.client(deployment.master, "sessions").scan(0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        deployment.client(deployment.master, "analytics").scan(0)


def test_pubsub_user_publishes_only_its_channels(deployment: LiveDeployment) -> None:
    pubsub = deployment.client(deployment.master, "pubsub")
    assert pubsub.publish("filing:processed", "done") == 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        pubsub.publish("other:processed", "done")
    with pytest.raises(redis.exceptions.NoPermissionError):
        pubsub.set("filing:x", "1")


def test_pubsub_user_receives_on_its_channels(deployment: LiveDeployment) -> None:
    subscriber = deployment.client(deployment.master, "pubsub").pubsub()
    try:
        subscriber.psubscribe("filing:*")
        confirmation = wait_until(lambda: subscriber.get_message(timeout=0.1), 3, "the PSUBSCRIBE confirmation")
        assert confirmation["type"] == "psubscribe"
        assert deployment.client(deployment.master, "pubsub").publish("filing:processed", "done") == 1
        message = wait_until(lambda: subscriber.get_message(timeout=0.1), 3, "the published message")
        assert (message["channel"], message["data"]) == ("filing:processed", "done")
    finally:
        subscriber.close()


def test_celery_user_can_run_a_broker(deployment: LiveDeployment) -> None:
    celery = deployment.client(deployment.master, "celery")
    assert celery.sadd("_kombu.binding.celery", "celery\x06\x16\x06\x16celery") == 1
    assert celery.lpush("celery", "task-1") == 1
    with celery.pipeline(transaction=True) as pipe:
        pipe.zadd("unacked_index", {"tag": 1})
        pipe.hset("unacked", "tag", "task-1")
        pipe.execute()
    assert celery.brpop(["celery"], timeout=1) == ("celery", "task-1")
    assert celery.publish("/0.celeryev/worker.heartbeat", "{}") == 0
    assert celery.eval("return redis.call('GET', KEYS[1])", 1, "celery-task-meta-1") is None
    celery.delete("_kombu.binding.celery", "unacked", "unacked_index")


def test_exporter_user_reads_but_does_not_write(deployment: LiveDeployment) -> None:
    exporter = deployment.client(deployment.master, "exporter")
    assert exporter.info("replication")["role"] == "master"
    # maxmemory from INFO: CONFIG GET is refused, it would give masterauth too.
    assert exporter.info("memory")["maxmemory"] == deployment.settings.maxmemory
    for name in ("masterauth", "maxmemory", "*"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            exporter.config_get(name)
    with pytest.raises(redis.exceptions.NoPermissionError):
        exporter.execute_command("CLIENT", "KILL", "TYPE", "normal")
    with pytest.raises(redis.exceptions.NoPermissionError):
        exporter.set("cache:x", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        exporter.execute_command("FLUSHALL")


def test_replica_user_can_only_replicate(deployment: LiveDeployment) -> None:
    replica = deployment.client(deployment.master, "replica")
    assert replica.ping() is True
    for command in (("GET", "cache:x"), ("INFO",), ("CONFIG", "GET", "maxmemory")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            replica.execute_command(*command)


def test_replica_link_is_up(deployment: LiveDeployment) -> None:
    def linked() -> dict | None:
        info = deployment.client(deployment.replica).info("replication")
        return info if info["master_link_status"] == "up" else None

    info = wait_until(linked, 10, "master_link_status:up")
    assert info["role"] == "slave"
    assert (info["master_host"], info["master_port"]) == ("127.0.0.1", deployment.master.port)
    master = deployment.client(deployment.master).info("replication")
    assert master["connected_slaves"] == 1
    assert master["slave0"]["port"] == deployment.replica.port
    assert master["slave0"]["state"] == "online"


def test_write_on_master_appears_on_replica(deployment: LiveDeployment) -> None:
    deployment.client(deployment.master, "cache").set("cache:replicated", "yes", ex=60)
    replica = deployment.client(deployment.replica, "cache")
    assert wait_until(lambda: replica.get("cache:replicated"), 10, "the key on the replica") == "yes"
    with pytest.raises(redis.ReadOnlyError):
        replica.set("cache:on-replica", "no")


def test_master_without_replica_refuses_writes(lone_master: LiveDeployment) -> None:
    # docs/redis-notes.md#bounded-write-loss: min-replicas-to-write 1 stops a master that has no replica.
    cache = lone_master.client(lone_master.master, "cache")
    with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
        cache.set("cache:x", "1")
    assert cache.get("cache:x") is None


def render_all(version: str) -> dict[str, str]:
    settings = load_settings({"backend": "docker", "redisVersion": version})
    topology = build_sentinel_topology(settings, naming_for(settings))
    passwords = dict.fromkeys(security.user_names(settings), "pw")
    files: dict[str, str] = {}
    for node in topology.redis_nodes + topology.sentinels:
        for file_name, content in node_files(settings, topology, node, passwords, rendering.DOCKER_PATHS).items():
            files[f"{node.name}/{file_name}"] = content
    return files


def test_locale_collate_only_on_7_2() -> None:
    # docs/redis-notes.md#version-gated-directives: a 7.2-only directive makes 7.0 refuse to start.
    v70, v72 = render_all("7.0"), render_all("7.2")
    assert v70.keys() == v72.keys()
    for path, content in v70.items():
        directives = [line.split()[0] for line in content.splitlines() if line and not line.startswith("#")]
        assert "locale-collate" not in directives, path
    for path, content in v72.items():
        has_it = 'locale-collate ""' in content.splitlines()
        assert has_it == path.endswith("redis.conf"), path


def test_7_2_render_differs_from_7_0_only_by_7_2_lines() -> None:
    v70, v72 = render_all("7.0"), render_all("7.2")
    for path in v70:
        old = [line for line in v70[path].splitlines() if not line.startswith("#")]
        new = [line for line in v72[path].splitlines() if not line.startswith("#")]
        added = [line for line in new if line not in old]
        removed = [line for line in old if line not in new]
        assert removed == [], path
        assert added == (['locale-collate ""'] if path.endswith("redis.conf") else []), path
