"""Render the files every node runs with, from the Jinja2 templates in templates/, and
the values of the node scripts' env files (components/node/, docs/node-scripts.md; the
scripts themselves are plain files, written as node.env by components/node_files.py).

Plain functions over plain values: passwords come in as strings because the backends
call these inside `Output.apply`, where secretness is carried by the Output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from redis_ha.components import package_data, security
from redis_ha.components.settings import Settings
from redis_ha.components.topology import ClusterTopology, Node, SentinelTopology

TEMPLATES: Path = package_data.templates_dir()

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


@dataclass(frozen=True)
class Paths:
    """Where a node finds its files. Redis rewrites redis.conf and Sentinel rewrites
    sentinel.conf through a temp file in the same directory, so conf_dir must be a
    writable directory, never a single-file mount (docs/redis-notes.md#sentinel-rewrites-its-config)."""

    conf_dir: str = "/data"
    data_dir: str = "/data"
    # Where the backend delivers the secret files while the node runs, and where a
    # change arrives without a restart (docs/redis-notes.md#rotating-passwords); the
    # start scripts watch it and apply a change live. "" (a Redis Cluster node, the
    # live tests' single directory): no watcher.
    secrets_dir: str = ""
    # The node's own files are `<node>.<file>` there (one Kubernetes Secret per group).
    per_node_files: bool = False
    # Where the start script records the version of the secrets it has applied.
    applied_file: str = ""
    # An exporter runs beside the node (a Kubernetes sidecar) and reads its password
    # file at start: after applying new secrets the start script asks it to read the
    # file again (redis_exporter's /-/reload).
    sidecar_exporter: bool = False


DOCKER_PATHS = Paths()


def _render(template: str, **context: object) -> str:
    return _ENV.get_template(template).render(**context)


def render_users_acl(users: Iterable[security.AclUser], passwords: Mapping[str, str]) -> str:
    """users.acl of a Redis node: `default` off, then `users` with hashed passwords."""
    lines = [security.acl_line(u, passwords) for u in users]
    return _render("users.acl.j2", default_user=security.DEFAULT_OFF, user_lines=lines)


def render_redis_conf(
    settings: Settings,
    node: Node,
    passwords: Mapping[str, str],
    paths: Paths = DOCKER_PATHS,
    master: Node | None = None,
    shard: int | None = None,
) -> str:
    """redis.conf of a Redis node: a replica of `master` (None: a master), or, with
    `shard`, a Redis Cluster node (no `replicaof`: the cluster assigns replicas)."""
    return _render(
        "redis.conf.j2",
        settings=settings,
        node=node,
        master=master,
        paths=paths,
        replica_password=passwords["replica"],
        # Nothing that depends on the number of shards: a scale-out must leave the
        # existing nodes' files (and so their containers/pods) untouched.
        cluster=None if shard is None else {"shard": shard},
    )


def render_sentinel_conf(
    settings: Settings,
    node: Node,
    master: Node,
    passwords: Mapping[str, str],
    paths: Paths = DOCKER_PATHS,
) -> str:
    lines = [security.acl_line(u, passwords) for u in security.SENTINEL_PORT_USERS]
    return _render(
        "sentinel.conf.j2",
        settings=settings,
        node=node,
        master=master,
        paths=paths,
        passwords=passwords,
        default_user=security.DEFAULT_OFF,
        user_lines=lines,
    )


# A replica is ready only when it heard from its master this recently (seconds).
REPLICA_READY_MAX_SILENCE = 10


def probe_env(
    node: Node, paths: Paths = DOCKER_PATHS, tls: bool = False, master_name: str = ""
) -> dict[str, str | int]:
    """What healthcheck.sh reads: `live` (answers, -LOADING included) or `ready` (a
    replica's link up and in sync, a cluster node's cluster_state ok, a Sentinel that
    knows its master). A Sentinel answers its probe as the read-only sentinel-client (the
    peer user may only PING, PUBLISH and vote); a Redis node as admin (INFO, CLUSTER
    INFO). No secret: the password is read from a file at run time. With `tls` it
    connects over TLS, trusting `<conf_dir>/ca.crt`."""
    values: dict[str, str | int] = {"REDIS_HA_KIND": node.kind, "REDIS_HA_PORT": node.port}
    if node.kind == "sentinel":
        values["REDIS_HA_SENTINEL_PASSWORD_FILE"] = f"{paths.conf_dir}/{SENTINEL_CLIENT_PASSWORD_FILE}"
        values["REDIS_HA_MASTER_NAME"] = master_name
    else:
        values["REDIS_HA_ADMIN_PASSWORD_FILE"] = f"{paths.conf_dir}/{ADMIN_PASSWORD_FILE}"
        values["REDIS_HA_MAX_LAG"] = REPLICA_READY_MAX_SILENCE
    values["REDIS_HA_TLS_ARGS"] = _tls_args(paths) if tls else ""
    return values


# Files next to redis.conf that hold one password each, read by redis-start.sh.
SENTINEL_CLIENT_PASSWORD_FILE = "sentinel-client.password"
ADMIN_PASSWORD_FILE = "admin.password"


def failover_wait_seconds(settings: Settings) -> int:
    """How long the preStop hand-over waits for another node to become master."""
    return settings.failover_timeout // 1000 + 5


def _tls_args(paths: Paths) -> str:
    return f"--tls --cacert {paths.conf_dir}/ca.crt"


def _secrets_env(settings: Settings, paths: Paths) -> dict[str, str | int]:
    """Where the start scripts find the delivered secrets and record what they applied;
    with an exporter beside the node (a Kubernetes sidecar), the URL that makes it read
    its password file again."""
    reload = ""
    if paths.sidecar_exporter and settings.exporter:
        reload = f"http://127.0.0.1:{settings.exporter_port}/-/reload"
    return {
        "REDIS_HA_SECRETS_DIR": paths.secrets_dir,
        "REDIS_HA_PER_NODE_FILES": int(paths.per_node_files),
        "REDIS_HA_APPLIED_FILE": paths.applied_file,
        "REDIS_HA_EXPORTER_RELOAD": reload,
    }


def start_env(settings: Settings, topology: SentinelTopology, paths: Paths = DOCKER_PATHS) -> dict[str, str | int]:
    """What redis-start.sh reads (components/node/redis-start.sh): it asks the Sentinels
    which node is the master, starts this node as master or replica accordingly
    (deploy-time role when no Sentinel answers), and as `redis-start.sh prestop` hands
    mastership over before a planned stop. No secret: passwords are read from files."""
    master = topology.master
    return {
        "REDIS_HA_CONF": f"{paths.conf_dir}/redis.conf",
        "REDIS_HA_PORT": settings.port,
        "REDIS_HA_MASTER_NAME": settings.master_name,
        "REDIS_HA_SENTINELS": " ".join(f"{n.hostname}:{n.port}" for n in topology.sentinels),
        # "<pod>" + this suffix is a pod's own hostname (empty on Docker).
        "REDIS_HA_HOSTNAME_SUFFIX": master.hostname.removeprefix(master.name),
        "REDIS_HA_DEPLOY_MASTER": f"{master.hostname}:{master.port}",
        "REDIS_HA_SENTINEL_PASSWORD_FILE": f"{paths.conf_dir}/{SENTINEL_CLIENT_PASSWORD_FILE}",
        "REDIS_HA_ADMIN_PASSWORD_FILE": f"{paths.conf_dir}/{ADMIN_PASSWORD_FILE}",
        "REDIS_HA_FAILOVER_WAIT": failover_wait_seconds(settings),
        "REDIS_HA_DATA_DIR": paths.data_dir,
        "REDIS_HA_TLS_ARGS": _tls_args(paths) if settings.tls else "",
        # components/node/fence.sh beside it (docs/partitions.md); 0: no fence. The
        # fence lifts back to the operator's min-replicas-to-write.
        "REDIS_HA_FENCE_AFTER_MS": settings.fence_after_milliseconds if settings.fence else 0,
        "REDIS_HA_MIN_REPLICAS_TO_WRITE": settings.min_replicas_to_write,
        **_secrets_env(settings, paths),
    }


def sentinel_start_env(
    settings: Settings, topology: SentinelTopology, paths: Paths = DOCKER_PATHS
) -> dict[str, str | int]:
    """What sentinel-start.sh reads: it keeps the Sentinel's rewritten config (its state)
    in `<data_dir>/sentinel.conf` and seeds it from the rendered `<conf_dir>/sentinel.conf`
    only when there is none; settings always come from the rendered file."""
    first = topology.sentinels[0]
    return {
        "REDIS_HA_SENTINEL_SEED": f"{paths.conf_dir}/sentinel.conf",
        "REDIS_HA_SENTINEL_STATE": f"{paths.data_dir}/sentinel.conf",
        "REDIS_HA_MASTER_NAME": settings.master_name,
        "REDIS_HA_SENTINELS": " ".join(f"{n.hostname}:{n.port}" for n in topology.sentinels),
        "REDIS_HA_REDIS_NODES": " ".join(f"{n.hostname}:{n.port}" for n in topology.redis_nodes),
        # "<hostname>" + this suffix is the Sentinel's own announced name (empty on Docker).
        "REDIS_HA_HOSTNAME_SUFFIX": first.hostname.removeprefix(first.name),
        "REDIS_HA_TLS_ARGS": _tls_args(paths) if settings.tls else "",
        "REDIS_HA_PORT": settings.sentinel_port,
        "REDIS_HA_SENTINEL_PASSWORD_FILE": f"{paths.conf_dir}/{SENTINEL_CLIENT_PASSWORD_FILE}",
        **_secrets_env(settings, paths),
    }


# --- Redis Cluster ---------------------------------------------------------------------


def cluster_create_wait_seconds(settings: Settings) -> int:
    """How long the creation step waits for nodes, joins and a healthy state."""
    return 120 + 10 * settings.cluster_nodes


def cluster_create_env(settings: Settings, cluster: ClusterTopology, password_file: str) -> dict[str, str | int]:
    """What cluster-create.sh reads: the one-shot creation/scale-out step creates the
    cluster when no node is part of one, else joins the nodes it lacks and rebalances
    slots onto empty masters. The admin password is read from `password_file`."""
    replicas = [
        f"{m.node.hostname}:{m.node.port},{m.master.hostname}:{m.master.port}"
        for m in cluster.members
        if m.master is not None
    ]
    return {
        "REDIS_HA_ADMIN_PASSWORD_FILE": password_file,
        "REDIS_HA_CLUSTER_MASTERS": " ".join(f"{n.hostname}:{n.port}" for n in cluster.masters),
        "REDIS_HA_CLUSTER_REPLICAS": " ".join(replicas),
        "REDIS_HA_WAIT_SECONDS": cluster_create_wait_seconds(settings),
    }
