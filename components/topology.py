"""The nodes of a deployment: names, roles, ports and hostnames. Pure functions.

Node names are neutral (`<name>-redis-1`, not `-master`): after a failover the first
node is a replica, and a name that says otherwise misleads whoever is on call. The
role recorded here is the role a node is *deployed* with; the live role is whatever
the Sentinels say.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.settings import Settings

REDIS = "redis"
SENTINEL = "sentinel"
EXPORTER = "exporter"


@dataclass(frozen=True)
class Node:
    """One process of the deployment."""

    name: str
    kind: str  # redis | sentinel | exporter
    role: str  # master | replica | sentinel | exporter (role at deploy time)
    hostname: str  # the name other nodes use to reach it
    port: int
    index: int  # 1-based position among nodes of its kind
    host_port: int | None = None  # published on the host, if any


@dataclass(frozen=True)
class SentinelTopology:
    """A master, its replicas, the Sentinels watching them and the exporter."""

    name: str
    master_name: str
    quorum: int
    redis_nodes: tuple[Node, ...]
    sentinels: tuple[Node, ...]
    exporter: Node | None

    @property
    def master(self) -> Node:
        return next(n for n in self.redis_nodes if n.role == "master")

    @property
    def replicas(self) -> tuple[Node, ...]:
        return tuple(n for n in self.redis_nodes if n.role == "replica")

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.redis_nodes + self.sentinels + ((self.exporter,) if self.exporter else ())


def hostname_for(settings: Settings, node_name: str, kind: str) -> str:
    """The DNS name other nodes use: the container name on Docker, the pod's stable
    name behind its headless Service on Kubernetes."""
    if settings.backend == "docker":
        return node_name
    service = f"{settings.name}-{kind}-headless"
    return f"{node_name}.{service}.{settings.namespace}.svc.cluster.local"


def build_sentinel_topology(settings: Settings) -> SentinelTopology:
    def host_port(base: int, index: int) -> int | None:
        return base + index - 1 if settings.publish_ports else None

    def node_name(kind: str, index: int) -> str:
        # Kubernetes StatefulSet pods are numbered from 0; Docker containers from 1.
        if settings.backend == "kubernetes":
            return f"{settings.name}-{kind}-{index - 1}"
        return f"{settings.name}-{kind}-{index}"

    redis_nodes = tuple(
        Node(
            name=node_name(REDIS, i),
            kind=REDIS,
            role="master" if i == 1 else "replica",
            hostname=hostname_for(settings, node_name(REDIS, i), REDIS),
            port=settings.port,
            index=i,
            host_port=host_port(settings.redis_host_port, i),
        )
        for i in range(1, settings.data_nodes + 1)
    )
    sentinels = tuple(
        Node(
            name=node_name(SENTINEL, i),
            kind=SENTINEL,
            role=SENTINEL,
            hostname=hostname_for(settings, node_name(SENTINEL, i), SENTINEL),
            port=settings.sentinel_port,
            index=i,
            host_port=host_port(settings.sentinel_host_port, i),
        )
        for i in range(1, settings.sentinels + 1)
    )
    exporter = None
    if settings.exporter:
        name = f"{settings.name}-exporter"
        exporter = Node(
            name=name,
            kind=EXPORTER,
            role=EXPORTER,
            hostname=name,
            port=settings.exporter_port,
            index=1,
            host_port=host_port(settings.exporter_host_port, 1),
        )
    return SentinelTopology(
        name=settings.name,
        master_name=settings.master_name,
        quorum=settings.quorum,
        redis_nodes=redis_nodes,
        sentinels=sentinels,
        exporter=exporter,
    )


CLUSTER = "cluster"
CLUSTER_EXPORTER = "cluster-exporter"


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


def build_cluster_topology(settings: Settings) -> ClusterTopology:
    def node_name(index: int) -> str:
        # Kubernetes StatefulSet pods are numbered from 0; Docker containers from 1.
        if settings.backend == "kubernetes":
            return f"{settings.name}-{CLUSTER}-{index - 1}"
        return f"{settings.name}-{CLUSTER}-{index}"

    per_shard = 1 + settings.cluster_replicas_per_shard
    members: list[ClusterNode] = []
    for shard in range(1, settings.cluster_shards + 1):
        master: Node | None = None
        for position in range(per_shard):
            index = (shard - 1) * per_shard + position + 1
            name = node_name(index)
            node = Node(
                name=name,
                kind=CLUSTER,
                role="master" if position == 0 else "replica",
                hostname=hostname_for(settings, name, CLUSTER),
                port=settings.port,
                index=index,
                host_port=settings.cluster_host_port + index - 1 if settings.publish_ports else None,
            )
            members.append(ClusterNode(node=node, shard=shard, master=master))
            if position == 0:
                master = node
    exporter = None
    if settings.exporter:
        name = f"{settings.name}-{CLUSTER_EXPORTER}"
        # With a Sentinel group too, its exporter has the first port of the range.
        offset = 1 if settings.has_sentinel else 0
        exporter = Node(
            name=name,
            kind=CLUSTER_EXPORTER,
            role=EXPORTER,
            hostname=name,
            port=settings.exporter_port,
            index=1,
            host_port=settings.exporter_host_port + offset if settings.publish_ports else None,
        )
    return ClusterTopology(
        name=settings.name,
        shards=settings.cluster_shards,
        replicas_per_shard=settings.cluster_replicas_per_shard,
        members=tuple(members),
        exporter=exporter,
    )
