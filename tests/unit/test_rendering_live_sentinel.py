"""The rendered Sentinel files and the healthcheck, run by the real Redis 7.0 (Debian's
redis-server/redis-sentinel): what the Sentinels report, their ACL, the config they
rewrite, a failover through the ACL users, and the probe against live nodes.

Fixtures are in conftest.py; every process they start is stopped in teardown.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
from redis_ha.components import rendering

from tests.support.live import LiveDeployment, LiveNode, connect, free_port, raw_command, wait_until
from tests.support.node_scripts import install


def sentinel_client(deployment: LiveDeployment, user: str = "sentinel-client") -> redis.Redis:
    return deployment.client(deployment.sentinel, user)


def test_sentinel_reports_the_master(deployment: LiveDeployment) -> None:
    address = sentinel_client(deployment).execute_command(
        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", deployment.settings.master_name
    )
    assert address == ["127.0.0.1", str(deployment.master.port)]


def test_sentinel_discovers_the_replica(deployment: LiveDeployment) -> None:
    def replicas() -> list[dict[str, str]]:
        raw = sentinel_client(deployment).execute_command("SENTINEL", "REPLICAS", deployment.settings.master_name)
        return [dict(zip(r[::2], r[1::2], strict=True)) if isinstance(r, list) else r for r in raw]

    found = wait_until(replicas, 10, "SENTINEL REPLICAS to list the replica")
    assert [(r["ip"], r["port"]) for r in found] == [("127.0.0.1", str(deployment.replica.port))]

    def connected_flags() -> str | None:
        flags = replicas()[0]["flags"]
        return None if "disconnected" in flags else flags

    assert wait_until(connected_flags, 10, "Sentinel's link to the replica") == "slave"


def test_sentinel_monitors_with_the_rendered_parameters(deployment: LiveDeployment) -> None:
    raw = deployment.client(deployment.sentinel).execute_command("SENTINEL", "MASTER", deployment.settings.master_name)
    master = dict(zip(raw[::2], raw[1::2], strict=True)) if isinstance(raw, list) else raw
    s = deployment.settings
    assert master["quorum"] == str(s.quorum)
    assert master["down-after-milliseconds"] == str(s.down_after_milliseconds)
    assert master["failover-timeout"] == str(s.failover_timeout)
    assert master["parallel-syncs"] == str(s.parallel_syncs)
    # The Sentinel reaches the master as the `sentinel` user: otherwise it is s_down.
    assert "s_down" not in master["flags"]
    assert "disconnected" not in master["flags"]


def test_sentinel_unauthenticated_gets_noauth(deployment: LiveDeployment) -> None:
    assert raw_command(deployment.sentinel.port, "PING").startswith(b"-NOAUTH")
    reply = raw_command(deployment.sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "redis-ha")
    assert reply.startswith(b"-NOAUTH")


@pytest.mark.parametrize(
    "command",
    [
        ("SENTINEL", "FAILOVER", "redis-ha"),
        ("SENTINEL", "SET", "redis-ha", "down-after-milliseconds", "5000"),
        ("SENTINEL", "RESET", "*"),
        ("SENTINEL", "REMOVE", "redis-ha"),
        ("SENTINEL", "CONFIG", "GET", "*"),
        ("SENTINEL", "IS-MASTER-DOWN-BY-ADDR", "127.0.0.1", "1", "0", "*"),
        ("CLIENT", "PAUSE", "1"),
        ("CLIENT", "KILL", "TYPE", "normal"),
        ("ACL", "LIST"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_sentinel_client_cannot_change_anything(deployment: LiveDeployment, command: tuple[str, ...]) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        sentinel_client(deployment).execute_command(*command)


def test_sentinel_admin_can_set(deployment: LiveDeployment) -> None:
    admin = sentinel_client(deployment, "admin")
    name, value = deployment.settings.master_name, str(deployment.settings.down_after_milliseconds)
    assert admin.execute_command("SENTINEL", "SET", name, "down-after-milliseconds", value) in (True, "OK")


def test_sentinel_acl_default_off_and_no_plain_password(deployment: LiveDeployment) -> None:
    acl = deployment.client(deployment.sentinel).acl_list()
    default = [line for line in acl if line.startswith("user default ")]
    assert [line.split()[2] for line in default] == ["off"]
    listed = "\n".join(acl)
    for user, password in deployment.passwords.items():
        assert password not in listed, user
    assert {line.split()[1] for line in acl} == {"default", "admin", "sentinel", "sentinel-client", "sentinel-exporter"}


def test_sentinel_rewrote_its_config(deployment: LiveDeployment) -> None:
    # Sentinel saves state by rewriting its file; it needs a writable directory
    # (docs/redis-notes.md#sentinel-rewrites-its-config).
    def rewritten() -> list[str] | None:
        lines = deployment.sentinel.conf.read_text().splitlines()
        return lines if any(line.startswith("sentinel known-replica ") for line in lines) else None

    lines = wait_until(rewritten, 10, "sentinel.conf to record the replica")
    myid = [line for line in lines if line.startswith("sentinel myid ")]
    assert len(myid) == 1
    assert len(myid[0].split()[2]) == 40
    assert f"sentinel known-replica redis-ha 127.0.0.1 {deployment.replica.port}" in lines


def test_sentinel_fails_over_through_the_acl_users(fresh_deployment: LiveDeployment) -> None:
    """A forced failover runs MULTI/SLAVEOF/CONFIG REWRITE/CLIENT KILL as `sentinel`."""
    d = fresh_deployment
    name = d.settings.master_name
    admin = d.client(d.sentinel)

    def failover() -> bool:
        try:
            return admin.execute_command("SENTINEL", "FAILOVER", name) in (True, "OK")
        except redis.ResponseError as error:
            # Until Sentinel has a fresh PING reply from the replica it has no candidate.
            if "NOGOODSLAVE" in str(error):
                return False
            raise

    wait_until(failover, 10, "Sentinel to accept SENTINEL FAILOVER", interval=0.2)
    promoted = ["127.0.0.1", str(d.replica.port)]
    wait_until(
        lambda: admin.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name) == promoted,
        10,
        "Sentinel to report the promoted replica",
    )
    assert d.client(d.replica).info("replication")["role"] == "master"

    # The promotion was persisted by CONFIG REWRITE inside Sentinel's MULTI/EXEC.
    def rewritten() -> str | None:
        conf = d.replica.conf.read_text()
        return None if any(line.startswith("replicaof ") for line in conf.splitlines()) else conf

    conf = wait_until(rewritten, 5, "the promoted replica's redis.conf to lose its replicaof line")
    assert "# Generated by CONFIG REWRITE" in conf
    # The healthcheck still finds the (now quoted) masterauth in the rewritten file.
    assert run_healthcheck(d.replica, d.replica.paths).returncode == 0


def test_sentinel_restarts_from_its_rewritten_config(fresh_deployment: LiveDeployment) -> None:
    d = fresh_deployment
    wait_until(lambda: "sentinel myid " in d.sentinel.conf.read_text(), 5, "sentinel myid in sentinel.conf")
    before = d.client(d.sentinel).execute_command("SENTINEL", "MYID")
    d.sentinel.stop()
    d.start_node(d.sentinel)
    assert d.client(d.sentinel).execute_command("SENTINEL", "MYID") == before
    assert raw_command(d.sentinel.port, "PING").startswith(b"-NOAUTH")
    address = d.client(d.sentinel, "sentinel-client").execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "redis-ha")
    assert address == ["127.0.0.1", str(d.master.port)]


def run_healthcheck(live: LiveNode, paths: rendering.Paths, mode: str = "ready") -> subprocess.CompletedProcess[str]:
    env = rendering.probe_env(live.node, paths, master_name=live.settings.master_name)
    script = install(Path(paths.conf_dir) / f"healthcheck-{live.node.name}", "healthcheck.sh", env)
    return subprocess.run(["sh", str(script), mode], capture_output=True, text=True, timeout=10, cwd=paths.conf_dir)


def test_healthcheck_passes_on_the_live_master(deployment: LiveDeployment) -> None:
    for mode in ("ready", "live"):
        result = run_healthcheck(deployment.master, deployment.master.paths, mode)
        assert result.returncode == 0, result.stderr


def test_healthcheck_passes_on_the_live_sentinel(deployment: LiveDeployment) -> None:
    # Run against the file Sentinel has already rewritten.
    wait_until(lambda: "sentinel myid " in deployment.sentinel.conf.read_text(), 5, "the rewritten sentinel.conf")
    result = run_healthcheck(deployment.sentinel, deployment.sentinel.paths)
    assert result.returncode == 0, result.stderr


def test_a_replica_is_alive_but_not_ready_while_its_link_is_down(deployment: LiveDeployment) -> None:
    replica, master = deployment.replica, deployment.master
    assert run_healthcheck(replica, replica.paths).returncode == 0
    admin = connect(replica.port, "admin", deployment.passwords["admin"])
    admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    try:
        result = run_healthcheck(replica, replica.paths)
        assert result.returncode != 0 and "link down" in result.stdout, result.stdout + result.stderr
        assert run_healthcheck(replica, replica.paths, "live").returncode == 0
    finally:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(master.port))
    wait_until(lambda: run_healthcheck(replica, replica.paths).returncode == 0, 15, "the replica to be ready again")


def test_healthcheck_fails_with_a_wrong_password(deployment: LiveDeployment, tmp_path: Path) -> None:
    master = deployment.master
    password_file = tmp_path / rendering.ADMIN_PASSWORD_FILE
    password_file.write_text(deployment.passwords["admin"] + "x")
    paths = rendering.Paths(conf_dir=str(tmp_path), data_dir=str(tmp_path))
    assert run_healthcheck(master, paths).returncode != 0
    assert run_healthcheck(master, paths, "live").returncode != 0
    # Same directory, right password: the failure above was the password.
    password_file.write_text(deployment.passwords["admin"] + "\n")
    assert run_healthcheck(master, paths).returncode == 0


def test_healthcheck_fails_without_a_password_file(deployment: LiveDeployment, tmp_path: Path) -> None:
    result = run_healthcheck(deployment.master, rendering.Paths(conf_dir=str(tmp_path), data_dir=str(tmp_path)))
    assert result.returncode != 0
    assert "no password" in result.stderr


def test_healthcheck_fails_when_the_node_stops(lone_master: LiveDeployment) -> None:
    master = lone_master.master
    assert run_healthcheck(master, master.paths).returncode == 0
    master.stop()
    assert run_healthcheck(master, master.paths).returncode != 0
