"""The nodes of a deployment: names, roles, ports and hostnames. Pure functions.

Node names are neutral (`<name>-redis-1`, not `-master`): after a failover the first
node is a replica, and a name that says otherwise misleads whoever is on call. The
role recorded here is the role a node is *deployed* with; the live role is whatever
the Sentinels (or the cluster) say.

How nodes are numbered and which DNS name peers use to reach them is the backend's
business: a `Naming` (components/docker/layout.py, components/kubernetes/layout.py)
answers both, and topology knows nothing else about where the nodes run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redis_ha.components.settings import Settings

REDIS = "redis"
SENTINEL = "sentinel"
EXPORTER = "exporter"
CLUSTER = "cluster"
CLUSTER_EXPORTER = "cluster-exporter"
SENTINEL_EXPORTER = "sentinel-exporter"


class Naming(Protocol):
    """A backend's naming of nodes."""

    def node_name(self, kind: str, index: int) -> str:
        """The name of the `index`-th (1-based) node of `kind`."""
        ...

    def hostname(self, kind: str, node_name: str) -> str:
        """The DNS name other nodes use to reach `node_name`."""
        ...


@dataclass(frozen=True)
class Node:
    """One process of the deployment."""

    name: str
    kind: str  # redis | sentinel | cluster | exporter | cluster-exporter | sentinel-exporter
    role: str  # master | replica | sentinel | exporter (role at deploy time)
    hostname: str  # the name other nodes use to reach it
    port: int
    index: int  # 1-based position among nodes of its kind
    host_port: int | None = None  # published on the host, if any


@dataclass(frozen=True)
class SentinelTopology:
    """A master, its replicas, the Sentinels watching them and the exporters of both."""

    name: str
    master_name: str
    quorum: int
    redis_nodes: tuple[Node, ...]
    sentinels: tuple[Node, ...]
    exporter: Node | None
    sentinel_exporter: Node | None = None

    @property
    def master(self) -> Node:
        return next(n for n in self.redis_nodes if n.role == "master")

    @property
    def replicas(self) -> tuple[Node, ...]:
        return tuple(n for n in self.redis_nodes if n.role == "replica")

    @property
    def nodes(self) -> tuple[Node, ...]:
        exporters = tuple(n for n in (self.exporter, self.sentinel_exporter) if n is not None)
        return self.redis_nodes + self.sentinels + exporters


def _nodes(settings: Settings, naming: Naming, kind: str, count: int, port: int, host_key: str) -> tuple[Node, ...]:
    nodes = []
    for i in range(1, count + 1):
        name = naming.node_name(kind, i)
        role = kind if kind == SENTINEL else ("master" if i == 1 else "replica")
        nodes.append(Node(name, kind, role, naming.hostname(kind, name), port, i, settings.host_port(host_key, i - 1)))
    return tuple(nodes)


def exporter_name(settings: Settings, kind: str) -> str:
    """An exporter's name: its container on Docker, its Service on Kubernetes."""
    return f"{settings.name}-{kind}"


def _exporter(settings: Settings, kind: str, offset: int) -> Node | None:
    """The exporter is reached by its own name on both backends (a container name on
    Docker, a Service in the namespace on Kubernetes)."""
    if not settings.exporter:
        return None
    name = exporter_name(settings, kind)
    host_port = settings.host_port("exporterHostPort", offset)
    return Node(name, kind, EXPORTER, name, settings.exporter_port, 1, host_port)


def build_sentinel_topology(settings: Settings, naming: Naming) -> SentinelTopology:
    return SentinelTopology(
        name=settings.name,
        master_name=settings.master_name,
        quorum=settings.quorum,
        redis_nodes=_nodes(settings, naming, REDIS, settings.data_nodes, settings.port, "redisHostPort"),
        sentinels=_nodes(settings, naming, SENTINEL, settings.sentinels, settings.sentinel_port, "sentinelHostPort"),
        exporter=_exporter(settings, EXPORTER, 0),
        # After the cluster's exporter with both (the range's last port).
        sentinel_exporter=_exporter(settings, SENTINEL_EXPORTER, 2 if settings.has_cluster else 1),
    )


@dataclass(frozen=True)
class ClusterNode:
    """A Redis Cluster node: a `Node` of kind `cluster` and the shard it serves."""

    node: Node
    shard: int  # 1-based
    # the deploy-time master of its shard (None for a master)
    master: Node | None


@dataclass(frozen=True)
class ClusterTopology:
    """Redis Cluster shards, each a master and its replicas, and the exporter.

    Nodes are numbered shard by shard (master first), so raising clusterShards only
    appends nodes: every existing node keeps its name, volume and role. Which node
    is master at run time is whatever the cluster says after failovers."""

    name: str
    shards: int
    replicas_per_shard: int
    members: tuple[ClusterNode, ...]
    exporter: Node | None

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(m.node for m in self.members)

    @property
    def masters(self) -> tuple[Node, ...]:
        return tuple(m.node for m in self.members if m.master is None)

    @property
    def all_nodes(self) -> tuple[Node, ...]:
        return self.nodes + ((self.exporter,) if self.exporter else ())

    def shard_of(self, node: Node) -> int:
        return next(m.shard for m in self.members if m.node.name == node.name)


def build_cluster_topology(settings: Settings, naming: Naming) -> ClusterTopology:
    per_shard = 1 + settings.cluster_replicas_per_shard
    nodes = _nodes(settings, naming, CLUSTER, settings.cluster_nodes, settings.port, "clusterHostPort")
    members: list[ClusterNode] = []
    for i, node in enumerate(nodes):
        shard, position = divmod(i, per_shard)
        role = "master" if position == 0 else "replica"
        node = Node(node.name, node.kind, role, node.hostname, node.port, node.index, node.host_port)
        members.append(ClusterNode(node, shard + 1, None if position == 0 else members[shard * per_shard].node))
    return ClusterTopology(
        name=settings.name,
        shards=settings.cluster_shards,
        replicas_per_shard=settings.cluster_replicas_per_shard,
        members=tuple(members),
        # With a Sentinel group too, its exporter has the first port of the range.
        exporter=_exporter(settings, CLUSTER_EXPORTER, 1 if settings.has_sentinel else 0),
    )
