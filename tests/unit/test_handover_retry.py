"""redis-start.sh's hand-over asks the Sentinels again while they refuse SENTINEL
FAILOVER because the replica is down for them (NOGOODSLAVE): in a rolling update the
replicas restart just before the master, and a Sentinel counts a restarted replica as
down until one of its PINGs gets through again. Real redis-server and redis-sentinel
7.0, as in test_role_script.py (the `script` fixture, the shipped start script, is
tests/unit/conftest.py's)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.support.live import LiveNode, free_port, wait_until
from tests.support.role_script import LOCALHOST, Processes, prestop, script_env, sentinel_master


def replica_flags(procs: Processes, sentinel_port: int, replica_port: int) -> str:
    replicas = procs.client(sentinel_port).execute_command("SENTINEL", "REPLICAS", procs.settings.master_name)
    fields = [dict(zip(r[::2], r[1::2], strict=True)) for r in replicas]
    return next((f["flags"] for f in fields if int(f["port"]) == replica_port), "")


def replica_down_for_the_sentinel(procs: Processes) -> tuple[LiveNode, LiveNode, LiveNode]:
    """A master, its replica (caught up) and one Sentinel (quorum 1) that counts the
    replica `s_down`: the replica refuses the Sentinel's PINGs while it goes on
    replicating, as a replica that has just restarted. Returns (master, replica, sentinel)."""
    topology = procs.topology(free_port(), free_port())
    master = procs.start(procs.redis("m", topology, 0))
    replica = procs.start(procs.redis("r", topology, 1))
    wait_until(
        lambda: procs.client(replica.port).info("replication")["master_link_status"] == "up", 10, "the replica's link"
    )
    sentinel = procs.start(procs.sentinel("s", topology, quorum=1))
    wait_until(lambda: replica_flags(procs, sentinel.port, replica.port) == "slave", 15, "the replica known")
    procs.client(sentinel.port).execute_command(
        "SENTINEL", "SET", procs.settings.master_name, "down-after-milliseconds", "1000"
    )
    procs.client(replica.port).execute_command("ACL", "SETUSER", "sentinel", "-ping")
    wait_until(lambda: "s_down" in replica_flags(procs, sentinel.port, replica.port), 15, "the replica down")
    return master, replica, sentinel


def test_prestop_asks_again_while_the_sentinel_counts_the_replica_down(
    shell: list[str], script: Path, procs: Processes
) -> None:
    master, replica, sentinel = replica_down_for_the_sentinel(procs)
    procs.client(master.port).set("before-handover", "kept")
    # Back for the Sentinel 3 s into the hand-over.
    back = threading.Timer(3, lambda: procs.client(replica.port).execute_command("ACL", "SETUSER", "sentinel", "+ping"))
    env = script_env(
        procs, port=master.port, sentinels=[sentinel.port], deploy_master=master.port, REDIS_HA_FAILOVER_WAIT="20"
    )
    back.start()
    started = time.monotonic()
    try:
        result = prestop(shell, script, env)
    finally:
        back.join()
    assert "NOGOODSLAVE" in result.stderr and "asking again" in result.stderr, result.stderr
    assert "staying master" not in result.stderr, result.stderr
    assert time.monotonic() - started >= 2.5, result.stderr
    assert sentinel_master(procs, sentinel) == (LOCALHOST, replica.port)
    assert procs.client(master.port).execute_command("ROLE")[:3] == ["slave", LOCALHOST, replica.port]
    assert procs.client(replica.port).get("before-handover") == "kept"


def test_prestop_gives_up_after_the_accept_wait(shell: list[str], script: Path, procs: Processes) -> None:
    master, _, sentinel = replica_down_for_the_sentinel(procs)
    env = script_env(
        procs,
        port=master.port,
        sentinels=[sentinel.port],
        deploy_master=master.port,
        REDIS_HA_FAILOVER_WAIT="20",
        REDIS_HA_ACCEPT_WAIT="2",
    )
    result = prestop(shell, script, env)
    assert "accepted SENTINEL FAILOVER within 2s (NOGOODSLAVE" in result.stderr, result.stderr
    assert "staying master" in result.stderr
    assert procs.client(master.port).execute_command("ROLE")[0] == "master"
    # Writes are not held any longer.
    procs.client(master.port).set("after", "written")
