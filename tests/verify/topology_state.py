"""The live state of a Sentinel topology, read the way an operator would."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tests.verify.access import Node, Outputs


@dataclass(frozen=True)
class LiveState:
    master: Node
    replicas: list[Node]


def sentinel_master(sentinel: Node, outputs: Outputs) -> str | None:
    """The master hostname this Sentinel names, or None if it does not answer."""
    try:
        reply = sentinel.cli("sentinel-client", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", outputs.deployment["masterName"])
    except AssertionError:
        return None
    lines = reply.splitlines()
    return lines[0] if len(lines) == 2 else None


def role(node: Node) -> str | None:
    try:
        return node.info("admin", "replication").get("role")
    except AssertionError:
        return None


def healthy_state(outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]) -> LiveState:
    """Raises AssertionError unless every Sentinel names the same master, that node is
    a master, and every other node is its replica with the link up."""
    named = {s.name: sentinel_master(s, outputs) for s in sentinels}
    hosts = set(named.values())
    assert len(hosts) == 1 and None not in hosts, f"Sentinels disagree or do not answer: {named}"
    master_host = hosts.pop()
    master = next((n for n in redis_nodes if n.hostname == master_host), None)
    assert master is not None, f"Sentinels name {master_host}, not a deployed node"
    assert role(master) == "master", f"{master.name} is named master but reports {role(master)}"
    replicas = [n for n in redis_nodes if n.name != master.name]
    for replica in replicas:
        info = replica.info("admin", "replication")
        assert info.get("role") == "slave", f"{replica.name} reports role {info.get('role')}"
        assert info.get("master_host") == master.hostname, f"{replica.name} follows {info.get('master_host')}"
        assert info.get("master_link_status") == "up", f"{replica.name}: link {info.get('master_link_status')}"
    return LiveState(master, replicas)


def wait_healthy(outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node], timeout: float = 60) -> LiveState:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return healthy_state(outputs, redis_nodes, sentinels)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def wait_new_master(outputs: Outputs, sentinels: list[Node], old: Node, timeout: float) -> tuple[str, float]:
    """Wait until every given Sentinel names a master other than `old`; returns it and
    the seconds it took."""
    started = time.monotonic()
    while True:
        named = {sentinel_master(s, outputs) for s in sentinels}
        if len(named) == 1 and None not in named and old.hostname not in named:
            return named.pop(), time.monotonic() - started  # type: ignore[return-value]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"no failover away from {old.name} within {timeout:.0f}s: Sentinels name {named}")
        time.sleep(0.25)
