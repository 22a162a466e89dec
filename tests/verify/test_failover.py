"""Failover drills: each breaks the deployment the way production breaks, checks the
topology recovers correctly, and leaves it healthy for the next one.

Destructive: they stop, kill and disconnect nodes. Opt in with
`redis-ha-verify --destructive` (or `pytest -m destructive`). The `live` fixture
(conftest.py) restores the topology after each.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid

import pytest
import redis

from . import faults
from .access import Node, Outputs, eventually
from .clients import master_client
from .topology_state import (
    LiveState,
    failover_deadline,
    role,
    sentinel_master,
    wait_healthy,
    wait_new_master,
)

pytestmark = pytest.mark.destructive


def _write_through_sentinel(outputs: Outputs, key: str, value: str, timeout: float = 30) -> None:
    def attempt() -> None:
        try:
            client = master_client(outputs)
            assert client.set(key, value, ex=600) is True
            assert client.wait(1, 2000) >= 1, "write not acknowledged by a replica"
        except redis.RedisError as error:
            raise AssertionError(f"write through Sentinel failed: {error!r}") from error

    eventually(attempt, timeout=timeout)


def test_master_stopped_replica_promoted_and_old_master_rejoins(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    old = live.master
    before = f"redis-ha:drill:{uuid.uuid4().hex}"
    _write_through_sentinel(outputs, before, "before")
    faults.stop(old)
    new_host, _ = wait_new_master(outputs, sentinels, old, failover_deadline(outputs))
    new = next(n for n in redis_nodes if n.hostname == new_host)
    assert role(new) == "master"
    after = f"redis-ha:drill:{uuid.uuid4().hex}"
    _write_through_sentinel(outputs, after, "after")
    # The remaining replica follows the new master.
    for replica in (n for n in redis_nodes if n.name not in (old.name, new.name)):
        eventually(functools.partial(_assert_follows, replica, new), timeout=30)
    # The old master comes back as a replica of the new one and catches up.
    faults.start(old)
    eventually(lambda: _assert_follows(old, new), timeout=60)
    eventually(lambda: _assert_get(old, after, "after"), timeout=10)
    _assert_get(old, before, "before")


def _assert_follows(replica: Node, master: Node) -> None:
    info = replica.info("admin", "replication")
    assert info.get("role") == "slave" and info.get("master_host") == master.hostname, (
        f"{replica.name}: role {info.get('role')}, master {info.get('master_host')}"
    )
    assert info.get("master_link_status") == "up", f"{replica.name}: link {info.get('master_link_status')}"


def _assert_get(node: Node, key: str, expected: str) -> None:
    value = node.cli("admin", "GET", key)
    assert value == expected, f"{node.name}: GET {key} = {value!r}, expected {expected!r}"


class Writer(threading.Thread):
    """Writes unique keys through a Sentinel-aware client until stopped; a write
    counts as acknowledged only when WAIT confirms it reached `replicas` replicas."""

    def __init__(self, outputs: Outputs, replicas: int) -> None:
        super().__init__(daemon=True)
        self.outputs = outputs
        self.replicas = replicas
        self.prefix = f"redis-ha:drill:{uuid.uuid4().hex}:"
        self.acknowledged: list[str] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        client = master_client(self.outputs)
        i = 0
        while not self.halt.is_set():
            key = f"{self.prefix}{i}"
            i += 1
            try:
                client.set(key, "1", ex=600)
                if client.wait(self.replicas, 1000) >= self.replicas:
                    self.acknowledged.append(key)
            except redis.RedisError:
                self.errors += 1
                time.sleep(0.1)
                client = master_client(self.outputs)
            time.sleep(0.01)


def test_planned_switchover_loses_no_acknowledged_write(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    writer = Writer(outputs, replicas=len(live.replicas))
    writer.start()
    try:
        eventually(lambda: _assert_true(len(writer.acknowledged) >= 20, "writer made no progress"), timeout=20)
        reply = sentinels[0].cli("admin", "SENTINEL", "FAILOVER", outputs.deployment["masterName"])
        assert reply == "OK", reply
        wait_new_master(outputs, sentinels, live.master, failover_deadline(outputs))
        count = len(writer.acknowledged)
        eventually(lambda: _assert_true(len(writer.acknowledged) > count + 20, "no writes after the switchover"), 30)
    finally:
        writer.halt.set()
        writer.join(10)
    state = wait_healthy(outputs, redis_nodes, sentinels, timeout=60)
    client = master_client(outputs)
    present = client.exists(*writer.acknowledged) if writer.acknowledged else 0
    lost = len(writer.acknowledged) - present
    assert lost == 0, (
        f"{lost} of {len(writer.acknowledged)} acknowledged writes lost in the switchover to {state.master}"
    )


def _assert_true(condition: bool, message: str) -> None:
    assert condition, message


def test_failover_with_one_sentinel_down(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    assert outputs.deployment["quorum"] <= len(sentinels) - 1, "quorum needs every Sentinel: nothing to drill"
    down = sentinels[-1]
    faults.stop(down)
    faults.stop(live.master)
    wait_new_master(outputs, sentinels[:-1], live.master, failover_deadline(outputs))


def test_no_failover_and_no_second_master_without_a_majority(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    majority = len(sentinels) // 2 + 1
    survivors = sentinels[: majority - 1]
    for sentinel in sentinels[majority - 1 :]:
        faults.stop(sentinel)
    faults.stop(live.master)
    # Well past the point where a failover would have happened.
    time.sleep(failover_deadline(outputs))
    for sentinel in survivors:
        assert sentinel_master(sentinel, outputs) == live.master.hostname, f"{sentinel.name} failed over"
    masters = [n.name for n in live.replicas if role(n) == "master"]
    assert masters == [], f"a second master appeared without a Sentinel majority: {masters}"


def test_isolated_master_refuses_writes_then_one_master_after_healing(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    old = live.master
    lag = int(old.cli("admin", "CONFIG", "GET", "min-replicas-max-lag").splitlines()[1])
    attached = faults.disconnect(old)
    try:

        def refuses() -> None:
            reply = old.cli("admin", "SET", f"redis-ha:drill:{uuid.uuid4().hex}", "x")
            assert reply.startswith("NOREPLICAS"), f"isolated {old.name} answered {reply!r}"

        started = time.monotonic()
        eventually(refuses, timeout=lag + 5, interval=0.5)
        assert time.monotonic() - started <= lag + 5
        wait_new_master(outputs, sentinels, old, failover_deadline(outputs))
    finally:
        faults.reconnect(old, attached)

    def one_master() -> None:
        masters = [n.name for n in redis_nodes if role(n) == "master"]
        assert len(masters) == 1, f"masters after healing: {masters}"
        _assert_true(role(old) == "slave", f"{old.name} is still {role(old)}")

    eventually(one_master, timeout=60)


def test_replica_restarted_resyncs(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    replica = live.replicas[0]
    faults.restart(replica)
    key = f"redis-ha:drill:{uuid.uuid4().hex}"
    _write_through_sentinel(outputs, key, "v")
    eventually(lambda: _assert_follows(replica, live.master), timeout=60)

    def converged() -> None:
        master_offset = int(live.master.info("admin", "replication")["master_repl_offset"])
        offset = int(replica.info("admin", "replication")["slave_repl_offset"])
        assert offset >= master_offset, f"{replica.name}: offset {offset} < {master_offset}"

    eventually(converged, timeout=30)
    _assert_get(replica, key, "v")


def test_whole_topology_restarted_keeps_acknowledged_data(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    keys = [f"redis-ha:drill:{uuid.uuid4().hex}" for _ in range(50)]
    client = master_client(outputs)
    for key in keys:
        client.set(key, "kept", ex=3600)
    assert client.wait(len(live.replicas), 5000) == len(live.replicas)
    for node in [*sentinels, *redis_nodes]:
        faults.stop(node)
    for node in [*redis_nodes, *sentinels]:
        faults.start(node)
    state = wait_healthy(outputs, redis_nodes, sentinels, timeout=120)
    values = master_client(outputs).mget(keys)
    missing = [k for k, v in zip(keys, values, strict=True) if v != b"kept"]
    assert not missing, (
        f"{len(missing)} of {len(keys)} acknowledged keys missing after the restart (master {state.master})"
    )


def test_restarted_node_keeps_its_fixed_address_or_is_followed_by_hostname(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    """While the replica is stopped another container joins its network. A node with a
    fixed address gets the same one back; one without gets another, and is followed by
    its name."""
    replica = live.replicas[-1]
    fixed = faults.fixed_address(replica)
    with faults.new_address(replica) as (before, after):
        if fixed:
            assert before == after == fixed, f"{replica.name}: fixed address {fixed}, had {before}, now {after}"
        else:
            assert after != before, "the replica kept its IP address; the drill proves nothing"
        eventually(lambda: _assert_follows(replica, live.master), timeout=60)

        def sentinels_follow() -> None:
            for sentinel in sentinels:
                reply = sentinel.cli("sentinel-client", "SENTINEL", "REPLICAS", outputs.deployment["masterName"])
                assert before not in reply, f"{sentinel.name} still lists the stale address {before}"
                assert replica.hostname in reply, f"{sentinel.name} lost {replica.name}"
                flags = reply.split(replica.hostname, 1)[1].split("\nflags\n", 1)[1].splitlines()[0]
                assert "s_down" not in flags and "disconnected" not in flags, f"{sentinel.name}: {flags}"

        eventually(sentinels_follow, timeout=60)
