"""Replication: one master, every replica linked to it and caught up."""

from __future__ import annotations

import uuid

from .access import Node, Outputs, eventually


def test_master_reports_master_role(master: Node) -> None:
    assert master.info("admin", "replication")["role"] == "master"


def test_master_has_every_replica_connected(master: Node, redis_nodes: list[Node]) -> None:
    expected = len(redis_nodes) - 1
    info = master.info("admin", "replication")
    assert int(info["connected_slaves"]) == expected, f"{master.name}: {info['connected_slaves']} replicas connected"


def test_replica_link_is_up(redis_node: Node, master: Node) -> None:
    if redis_node.name == master.name:
        assert redis_node.info("admin", "replication")["role"] == "master"
        return
    info = redis_node.info("admin", "replication")
    assert info["role"] == "slave", f"{redis_node.name} is {info['role']}, expected a replica of {master.name}"
    assert info["master_host"] == master.hostname
    assert info["master_link_status"] == "up", f"{redis_node.name}: master_link_status {info['master_link_status']}"


def test_write_on_master_is_read_on_replica(redis_node: Node, master: Node, outputs: Outputs) -> None:
    key = f"redis-ha:verify:{uuid.uuid4().hex}"
    assert master.cli("admin", "SET", key, redis_node.name, "EX", "60") == "OK"
    try:
        eventually(lambda: _assert_value(redis_node, key, redis_node.name), timeout=5)
    finally:
        master.cli("admin", "DEL", key)


def _assert_value(node: Node, key: str, expected: str) -> None:
    value = node.cli("admin", "GET", key)
    assert value == expected, f"{node.name}: GET {key} returned {value!r}"


def test_replica_offsets_converge(redis_node: Node, master: Node) -> None:
    if redis_node.name == master.name:
        return

    def converged() -> None:
        master_offset = int(master.info("admin", "replication")["master_repl_offset"])
        replica_offset = int(redis_node.info("admin", "replication")["slave_repl_offset"])
        assert replica_offset >= master_offset, f"{redis_node.name}: offset {replica_offset} < master {master_offset}"

    eventually(converged, timeout=10)
