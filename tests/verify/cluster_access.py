"""The live state of a Redis Cluster, read the way an operator would, and a
cluster-aware client as applications use it.

Every command runs as redis-cli inside a node (tests/verify/access.py), so the same
checks work on Docker and Kubernetes. The client runs on the verification runner: the
nodes announce hostnames that resolve only inside the deployment's network, so each
announced (hostname, port) is mapped to the node's host endpoint from the stack
outputs (redis-py's `address_remap`), as MappedSentinel does for Sentinel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from redis.cluster import ClusterNode, RedisCluster

from .access import Node, Outputs

SLOTS = 16384


@dataclass(frozen=True)
class NodeLine:
    """One line of CLUSTER NODES."""

    id: str
    address: str  # ip:port
    hostname: str  # announced hostname ('' without cluster-announce-hostname)
    flags: frozenset[str]
    master_id: str  # '-' for a master
    link: str  # connected | disconnected
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"}) or self.link != "connected"


def parse_nodes(text: str) -> list[NodeLine]:
    lines = []
    for raw in text.splitlines():
        fields = raw.split()
        if len(fields) < 8:
            continue
        address, _, hostname = fields[1].partition(",")
        slots = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being migrated or imported
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        lines.append(
            NodeLine(
                id=fields[0],
                address=address.split("@")[0],
                hostname=hostname,
                flags=frozenset(fields[2].split(",")),
                master_id=fields[3],
                link=fields[7],
                slots=tuple(slots),
            )
        )
    return lines


def cluster_info(node: Node) -> dict[str, str]:
    text = node.cli("admin", "CLUSTER", "INFO")
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def nodes_view(node: Node) -> list[NodeLine]:
    return parse_nodes(node.cli("admin", "CLUSTER", "NODES"))


_IDS: dict[str, str] = {}


def node_id(node: Node) -> str:
    """The node's cluster id (kept: a stopped node cannot be asked)."""
    if node.name not in _IDS:
        _IDS[node.name] = node.cli("admin", "CLUSTER", "MYID").strip()
    return _IDS[node.name]


def forget_node_ids() -> None:
    """For a new deployment that reuses the node names of a destroyed one."""
    _IDS.clear()


def slot_coverage(view: list[NodeLine]) -> list[int]:
    """How many live masters serve each slot (every entry must be exactly 1)."""
    counts = [0] * SLOTS
    for line in view:
        if line.is_master and "fail" not in line.flags:
            for low, high in line.slots:
                for slot in range(low, high + 1):
                    counts[slot] += 1
    return counts


@dataclass(frozen=True)
class ClusterState:
    """Deployed nodes by live role: master -> its replicas."""

    masters: dict[str, list[Node]]
    by_name: dict[str, Node]

    def master_nodes(self) -> list[Node]:
        return [self.by_name[name] for name in self.masters]


def healthy_cluster(outputs: Outputs, nodes: list[Node]) -> ClusterState:
    """Raises AssertionError unless every node reports cluster_state:ok with all slots,
    the slots are served exactly once by `shards` masters, and each master has
    `replicasPerShard` connected replicas."""
    section = outputs.deployment["cluster"]
    for node in nodes:
        info = cluster_info(node)
        assert info.get("cluster_state") == "ok", f"{node.name}: cluster_state {info.get('cluster_state')}"
        assert info.get("cluster_slots_ok") == str(SLOTS), f"{node.name}: slots ok {info.get('cluster_slots_ok')}"
    by_id = {node_id(n): n for n in nodes}
    view = nodes_view(nodes[0])
    failing = [by_id.get(line.id, line.id) for line in view if line.is_failing and "myself" not in line.flags]
    assert not failing, f"{nodes[0].name} sees failing nodes {failing}"
    coverage = slot_coverage(view)
    assert set(coverage) == {1}, f"slots served {sorted(set(coverage))} times, not exactly once"
    masters = {line.id: line for line in view if line.is_master and line.slots}
    assert len(masters) == section["shards"], f"{len(masters)} masters with slots, the stack says {section['shards']}"
    state: dict[str, list[Node]] = {}
    for master_id in masters:
        master = by_id.get(master_id)
        assert master is not None, f"master {master_id} is not a deployed node"
        replicas = [by_id[line.id] for line in view if line.master_id == master_id and line.id in by_id]
        assert len(replicas) == section["replicasPerShard"], (
            f"{master.name} has {len(replicas)} replicas, the stack says {section['replicasPerShard']}"
        )
        state[master.name] = replicas
    return ClusterState(masters=state, by_name={n.name: n for n in nodes})


def wait_healthy_cluster(outputs: Outputs, nodes: list[Node], timeout: float = 60) -> ClusterState:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return healthy_cluster(outputs, nodes)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _endpoint(spec: dict[str, Any]) -> tuple[str, int] | None:
    if not spec.get("hostEndpoint"):
        return None
    host, port = spec["hostEndpoint"].rsplit(":", 1)
    return host, int(port)


def cluster_client(
    outputs: Outputs, user: str = "admin", cls: type[RedisCluster] = RedisCluster, **kwargs: Any
) -> RedisCluster:
    """redis-py's RedisCluster (or the subclass `cls`) with announced addresses mapped to
    host endpoints."""
    remap: dict[tuple[str, int], tuple[str, int]] = {}
    for spec in outputs.nodes("cluster"):
        endpoint = _endpoint(spec)
        if endpoint is not None:
            remap[(spec["host"], int(spec["port"]))] = endpoint
    if not remap:
        pytest.skip("a cluster-aware client on the runner needs host endpoints (publishPorts)")

    def address_remap(address: tuple[str, int]) -> tuple[str, int]:
        host, port = address[0], int(address[1])
        return remap.get((host, port), (host, port))

    options: dict[str, Any] = {
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        # A MOVED names a hostname; re-reading the slot map (remapped) follows it.
        "reinitialize_steps": 1,
        "decode_responses": True,
        **kwargs,
    }
    return cls(
        startup_nodes=[ClusterNode(host, port) for host, port in remap.values()],
        address_remap=address_remap,
        username=user,
        password=outputs.passwords[user],
        **options,
    )


def shard_key(client: RedisCluster, node: Node, outputs: Outputs, prefix: str) -> str:
    """A key (with `prefix`) whose slot `node` serves."""
    endpoint = _endpoint(node.spec)
    for i in range(10000):
        key = f"{prefix}{i}"
        target = client.get_node_from_key(key)
        if endpoint is not None and (target.host, int(target.port)) == endpoint:
            return key
    raise AssertionError(f"no key served by {node.name} found")
