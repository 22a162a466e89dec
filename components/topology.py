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
