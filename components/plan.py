"""The deployment plan: everything a backend needs, built once from settings + topology.

A plan has one `Part` per component (the Sentinel group, `RedisHA`; the Redis Cluster,
`RedisCluster`). A part is made of `Group`s: nodes of one kind that run the same image
and command with files of the same shape (Redis nodes, Sentinels, cluster nodes), its
exporter and an optional one-shot step (the cluster's creation). Both backends read
the same plan: Docker turns every node into a container, Kubernetes every group into
a StatefulSet with its Services, PodDisruptionBudget and NetworkPolicy. Nothing here
creates a resource or knows a provider; the only backend-specific inputs are where
files go (`Layout`) and how nodes are named (`topology.Naming`).

Adding a Redis setting touches one template and one settings field: the files of every
node of every backend come from `Group.files`/`Group.scripts_for`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis_ha.components import outputs, rendering, security
from redis_ha.components.backup_plan import Backup, backup_worker
from redis_ha.components.rendering import Paths
from redis_ha.components.settings import Settings
from redis_ha.components.topology import (
    CLUSTER,
    REDIS,
    SENTINEL,
    ClusterTopology,
    Naming,
    Node,
    SentinelTopology,
    build_cluster_topology,
    build_sentinel_topology,
)

# Secret files next to redis.conf that hold one password each (read by scripts).
ADMIN_PASSWORD_FILE = rendering.ADMIN_PASSWORD_FILE
SENTINEL_CLIENT_PASSWORD_FILE = rendering.SENTINEL_CLIENT_PASSWORD_FILE
START_SCRIPT = "redis-start.sh"
SENTINEL_START_SCRIPT = "sentinel-start.sh"
# Sentinel keeps a config file of a few kilobytes.
SENTINEL_STATE_SIZE = "64Mi"
CREATE_SCRIPT = "cluster-create.sh"


@dataclass(frozen=True)
class Layout:
    """Where a backend puts things inside a node."""

    redis: Paths  # Redis and cluster nodes: a writable config directory, the data directory
    sentinel: Paths  # Sentinels keep no dataset; their config directory is their working directory
    scripts_dir: str  # plain scripts (no secret)
    job_secrets_dir: str  # where a one-shot step finds the admin password


@dataclass(frozen=True)
class Probe:
    script: str  # a file name among the group's scripts
    # Loads a dataset at start (AOF/RDB can take minutes): liveness waits for a first success.
    slow_start: bool


@dataclass(frozen=True)
class Group:
    """Nodes of one kind that run the same image and command with files of one shape."""

    kind: str  # redis | sentinel | cluster: also the component label on Kubernetes
    process: str  # redis | sentinel: the program, and the container's name
    nodes: tuple[Node, ...]
    image: str
    command: tuple[str, ...]
    ports: tuple[tuple[str, int], ...]  # (name, port); the first is the client port
    config_file: str  # the node's own secret file (its announced name is in it)
    shared_files: tuple[str, ...]  # secret files every node of the group gets the same
    probe: Probe
    paths: Paths
    data_volume: bool  # a persistent volume at paths.data_dir
    data_size: str  # its size where the backend sizes volumes (Kubernetes)
    after: tuple[str, ...]  # kinds of groups that must be up before this one starts
    # Nodes start, and are replaced, one at a time in node order, each only once the
    # previous one is ready (a replica in sync, a Sentinel that knows its master).
    one_at_a_time: bool
    client_service: bool  # applications connect to this group (Sentinels, cluster seeds)
    # Planned stop: a hand-over command and the time it may take.
    prestop: tuple[str, ...] | None
    stop_grace_seconds: int
    runtime_env: tuple[str, ...]  # what the command reads from its runtime (pod name, pod IP)
    # Never two nodes of the group on one host (required) or as far as possible (preferred).
    spread: str
    # Voluntary disruptions: ("maxUnavailable" | "minAvailable", count).
    disruption: tuple[str, int]
    _render_files: Callable[[Node, Mapping[str, str]], dict[str, str]]
    _render_scripts: Callable[[Node], dict[str, str]]

    def files(self, node: Node, passwords: Mapping[str, str]) -> dict[str, str]:
        """The node's secret files: `config_file` and every `shared_files` entry."""
        return self._render_files(node, passwords)

    def scripts_for(self, node: Node) -> dict[str, str]:
        """Plain scripts (the probe, a start script) for one node."""
        return self._render_scripts(node)

    def scripts(self) -> dict[str, str]:
        """The scripts as every node of the group can share them (rendered for any node)."""
        return self._render_scripts(
            dataclasses.replace(self.nodes[0], name=f"{self.nodes[0].name.rsplit('-', 1)[0]}-*")
        )


@dataclass(frozen=True)
class Exporter:
    """redis_exporter for a group: one process for all targets, or one beside each."""

    node: Node
    image: str
    watches: str  # the kind of the group it scrapes
    targets: tuple[Node, ...]
    # The ACL user it logs in as, whose password it gets: `exporter` on Redis nodes,
    # `sentinel-exporter` on the Sentinel port.
    user: str = security.EXPORTER.name
    # Its environment on both backends besides address, user and password file: no
    # CONFIG GET, whose reply holds masterauth (docs/redis-notes.md#exporter-user-and-image).
    environment: tuple[tuple[str, str], ...] = tuple(sorted(security.EXPORTER_ENVIRONMENT.items()))


@dataclass(frozen=True)
class OneShot:
    """A step that runs once after its groups are up and must succeed (cluster creation)."""

    image: str
    script_name: str
    script: str
    after: tuple[str, ...]
    # seconds the script itself waits at most
    wait_seconds: int
    password_file: str  # the admin password, as the script expects it


@dataclass(frozen=True)
class Part:
    """One component: the Sentinel group or the Redis Cluster."""

    name: str  # resource and component name prefix
    kind: str  # sentinel | cluster
    groups: tuple[Group, ...]
    exporters: tuple[Exporter, ...]  # at most one per group
    job: OneShot | None
    topology: SentinelTopology | ClusterTopology
    backup: Backup | None = None  # the backup worker (components/backup_plan.py)

    def group(self, kind: str) -> Group:
        return next(g for g in self.groups if g.kind == kind)

    def exporter_of(self, kind: str) -> Exporter | None:
        """The exporter that scrapes the group of `kind`, if any."""
        return next((e for e in self.exporters if e.watches == kind), None)

    def group_of(self, node: Node) -> Group:
        return next(g for g in self.groups if g.kind == node.kind)

    def describe(
        self,
        settings: Settings,
        testinfra_host: Callable[[Node], str],
        create_step: str = "",
        backup_at: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The stack-output description of this part (no secrets); `backup_at`: where
        the backup worker is (Backup.describe), if the part has one."""
        paths = self.groups[0].paths
        if isinstance(self.topology, SentinelTopology):
            start_script = self.group(REDIS).command[-1]
            described = outputs.describe_deployment(
                settings, self.topology, testinfra_host, paths.conf_dir, start_script
            )
        else:
            described = outputs.describe_cluster(
                settings, self.topology, testinfra_host, paths.conf_dir, paths.data_dir, create_step
            )
        if self.backup is not None:
            described["backup"] = self.backup.describe(backup_at or {})
        return described


@dataclass(frozen=True)
class Plan:
    settings: Settings
    layout: Layout
    parts: tuple[Part, ...]


def _probe_name(kind: str) -> str:
    return f"{kind}-healthcheck.sh"


def sentinel_part(s: Settings, layout: Layout, topo: SentinelTopology) -> Part:
    redis_paths, sentinel_paths = layout.redis, layout.sentinel
    # redis-start.sh asks the Sentinels as sentinel-client and hands over as admin.
    shared = ("users.acl", ADMIN_PASSWORD_FILE, SENTINEL_CLIENT_PASSWORD_FILE)
    start = f"{layout.scripts_dir}/{START_SCRIPT}"

    def redis_files(node: Node, pw: Mapping[str, str]) -> dict[str, str]:
        master = None if node.role == "master" else topo.master
        return {
            "redis.conf": rendering.render_redis_conf(s, node, pw, redis_paths, master=master),
            "users.acl": rendering.render_users_acl(security.redis_users(s), pw),
            ADMIN_PASSWORD_FILE: pw["admin"],
            SENTINEL_CLIENT_PASSWORD_FILE: pw["sentinel-client"],
        }

    def redis_scripts(node: Node) -> dict[str, str]:
        return {
            _probe_name(REDIS): rendering.render_healthcheck(node, redis_paths, s.tls),
            START_SCRIPT: rendering.render_start_script(s, topo, redis_paths),
        }

    def sentinel_scripts(node: Node) -> dict[str, str]:
        return {
            _probe_name(SENTINEL): rendering.render_healthcheck(node, sentinel_paths, s.tls, s.master_name),
            SENTINEL_START_SCRIPT: rendering.render_sentinel_start_script(s, topo, sentinel_paths),
        }

    redis = Group(
        kind=REDIS,
        process=REDIS,
        nodes=topo.redis_nodes,
        image=s.redis_image,
        # Decides the role (asks the Sentinels), runs redis-server, hands over on SIGTERM.
        command=("sh", start),
        ports=((REDIS, s.port),),
        config_file="redis.conf",
        shared_files=shared,
        probe=Probe(_probe_name(REDIS), slow_start=True),
        paths=redis_paths,
        data_volume=True,
        data_size=s.storage_size,
        after=(),
        # In node order: on a first deploy the deploy-time master (node 1) comes first;
        # on an update no two Redis nodes are down at once and a master hands over.
        one_at_a_time=True,
        client_service=False,
        prestop=("sh", start, "prestop"),
        # The hand-over, then Redis saves and waits for its replicas on SIGTERM.
        stop_grace_seconds=rendering.failover_wait_seconds(s) + 30,
        runtime_env=("POD_NAME", "POD_IP"),
        spread="required",
        # One Redis node at a time: a drained master hands over first.
        disruption=("maxUnavailable", 1),
        _render_files=redis_files,
        _render_scripts=redis_scripts,
    )
    sentinel = Group(
        kind=SENTINEL,
        process=SENTINEL,
        nodes=topo.sentinels,
        image=s.redis_image,
        # Seeds its state from the rendered file, then `redis-server <state> --sentinel`.
        command=("sh", f"{layout.scripts_dir}/{SENTINEL_START_SCRIPT}"),
        ports=((SENTINEL, s.sentinel_port),),
        config_file="sentinel.conf",
        # The probe and sentinel-start.sh ask Sentinels as the read-only sentinel-client;
        # sentinel-start.sh applies a changed password as admin.
        shared_files=(SENTINEL_CLIENT_PASSWORD_FILE, ADMIN_PASSWORD_FILE),
        probe=Probe(_probe_name(SENTINEL), slow_start=False),
        paths=sentinel_paths,
        # The rewritten config (current master, epochs, peers) outlives the container.
        data_volume=True,
        data_size=SENTINEL_STATE_SIZE,
        # Sentinel refuses to start while the monitored hostname does not resolve.
        after=(REDIS,),
        # Never more than one Sentinel down for a change: quorum holds throughout.
        one_at_a_time=True,
        client_service=True,
        prestop=None,
        stop_grace_seconds=30,
        runtime_env=(),
        spread="required",
        # Voluntary disruptions never take the Sentinels below quorum.
        disruption=("minAvailable", s.quorum),
        _render_files=lambda node, pw: {
            "sentinel.conf": rendering.render_sentinel_conf(s, node, topo.master, pw, sentinel_paths),
            SENTINEL_CLIENT_PASSWORD_FILE: pw["sentinel-client"],
            ADMIN_PASSWORD_FILE: pw["admin"],
        },
        _render_scripts=sentinel_scripts,
    )
    exporters = []
    if topo.exporter is not None:
        exporters.append(Exporter(topo.exporter, s.exporter_image, REDIS, topo.redis_nodes))
    if topo.sentinel_exporter is not None:
        exporters.append(
            Exporter(
                topo.sentinel_exporter, s.exporter_image, SENTINEL, topo.sentinels, security.SENTINEL_EXPORTER.name
            )
        )
    return Part(s.name, SENTINEL, (redis, sentinel), tuple(exporters), None, topo, backup_worker(s, s.name, topo))


def cluster_part(s: Settings, layout: Layout, cluster: ClusterTopology) -> Part:
    # Cluster nodes get their files at start only: no live secrets (rotation is
    # refused for the cluster topologies, components/settings_roles.check_rotation).
    paths = dataclasses.replace(layout.redis, secrets_dir="", per_node_files=False, applied_file="")
    shards = {m.node.name: m.shard for m in cluster.members}
    group = Group(
        kind=CLUSTER,
        process=REDIS,
        nodes=cluster.nodes,
        image=s.redis_image,
        # No role decision at start: the cluster keeps roles in nodes.conf.
        command=("redis-server", f"{paths.conf_dir}/redis.conf"),
        ports=((REDIS, s.port), ("cluster-bus", s.bus_port)),
        config_file="redis.conf",
        # The probe reads CLUSTER INFO as admin.
        shared_files=("users.acl", ADMIN_PASSWORD_FILE),
        probe=Probe(_probe_name(CLUSTER), slow_start=True),
        paths=paths,
        data_volume=True,
        data_size=s.storage_size,
        after=(),
        # A replaced node is back in the cluster (ready) before the next one goes.
        one_at_a_time=True,
        client_service=True,
        prestop=None,
        stop_grace_seconds=30,
        runtime_env=(),
        # Preferred, not required: six or more nodes would otherwise need as many hosts.
        spread="preferred",
        # One node at a time: a drained master's replica takes over before the next goes.
        disruption=("maxUnavailable", 1),
        _render_files=lambda node, pw: {
            "redis.conf": rendering.render_redis_conf(s, node, pw, paths, shard=shards[node.name]),
            "users.acl": rendering.render_users_acl(security.cluster_redis_users(s), pw),
            ADMIN_PASSWORD_FILE: pw["admin"],
        },
        _render_scripts=lambda node: {_probe_name(CLUSTER): rendering.render_healthcheck(node, paths)},
    )
    password_file = f"{layout.job_secrets_dir}/{ADMIN_PASSWORD_FILE}"
    job = OneShot(
        image=s.redis_image,
        script_name=CREATE_SCRIPT,
        script=rendering.render_cluster_create_script(s, cluster, password_file),
        after=(CLUSTER,),
        wait_seconds=rendering.cluster_create_wait_seconds(s),
        password_file=password_file,
    )
    exporters: tuple[Exporter, ...] = ()
    if cluster.exporter is not None:
        exporters = (Exporter(cluster.exporter, s.exporter_image, CLUSTER, cluster.nodes),)
    name = f"{s.name}-cluster"
    return Part(name, CLUSTER, (group,), exporters, job, cluster, backup_worker(s, name, cluster, int(s.has_sentinel)))


def build_plan(settings: Settings, layout: Layout, naming: Naming) -> Plan:
    parts = []
    if settings.has_sentinel:
        parts.append(sentinel_part(settings, layout, build_sentinel_topology(settings, naming)))
    if settings.has_cluster:
        parts.append(cluster_part(settings, layout, build_cluster_topology(settings, naming)))
    return Plan(settings, layout, tuple(parts))
