"""Render the files every node runs with, from the Jinja2 templates in templates/.

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


def render_healthcheck(node: Node, paths: Paths = DOCKER_PATHS, tls: bool = False, master_name: str = "") -> str:
    """The node's probe: `live` (answers, -LOADING included) or `ready` (a replica's
    link up and in sync, a cluster node's cluster_state ok, a Sentinel that knows its
    master). Holds no secret: the password is read from a file at run time.

    With `tls` it connects over TLS, trusting `<conf_dir>/ca.crt`."""
    # A Sentinel answers its probe as the read-only sentinel-client (the peer user may
    # only PING, PUBLISH and vote); a Redis node as admin (INFO, CLUSTER INFO).
    user, password_file = (
        ("sentinel-client", SENTINEL_CLIENT_PASSWORD_FILE)
        if node.kind == "sentinel"
        else (
            "admin",
            ADMIN_PASSWORD_FILE,
        )
    )
    command = f"tr -d '\\r\\n' < {paths.conf_dir}/{password_file}"
    return _render(
        "healthcheck.sh.j2",
        node=node,
        paths=paths,
        password_command=command,
        user=user,
        port=node.port,
        tls=tls,
        master_name=master_name,
        max_lag=REPLICA_READY_MAX_SILENCE,
    )


# Files next to redis.conf that hold one password each, read by redis-start.sh.
SENTINEL_CLIENT_PASSWORD_FILE = "sentinel-client.password"
ADMIN_PASSWORD_FILE = "admin.password"


def failover_wait_seconds(settings: Settings) -> int:
    """How long the preStop hand-over waits for another node to become master."""
    return settings.failover_timeout // 1000 + 5


def render_start_script(settings: Settings, topology: SentinelTopology, paths: Paths = DOCKER_PATHS) -> str:
    """The Redis container's command: asks the Sentinels which node is the master,
    starts this node as master or replica accordingly (deploy-time role when no
    Sentinel answers), and as `redis-start.sh prestop` hands mastership over before a
    planned stop. Holds no secret: passwords are read from files at run time."""
    master = topology.master
    return _render(
        "redis-start.sh.j2",
        settings=settings,
        topology=topology,
        paths=paths,
        sentinel_addresses=[f"{n.hostname}:{n.port}" for n in topology.sentinels],
        # "<pod>" + this suffix is a pod's own hostname (empty on Docker).
        hostname_suffix=master.hostname.removeprefix(master.name),
        sentinel_client_password_file=SENTINEL_CLIENT_PASSWORD_FILE,
        admin_password_file=ADMIN_PASSWORD_FILE,
        failover_wait=failover_wait_seconds(settings),
        tls_args=f"--tls --cacert {paths.conf_dir}/ca.crt" if settings.tls else "",
    )


def render_sentinel_start_script(settings: Settings, topology: SentinelTopology, paths: Paths = DOCKER_PATHS) -> str:
    """The Sentinel container's command: keeps the Sentinel's rewritten config (its
    state) in `<data_dir>/sentinel.conf` and seeds it from the rendered
    `<conf_dir>/sentinel.conf` only when there is none; settings always come from the
    rendered file. Holds no secret: the password is read from the rendered file."""
    first = topology.sentinels[0]
    return _render(
        "sentinel-start.sh.j2",
        settings=settings,
        paths=paths,
        seed=f"{paths.conf_dir}/sentinel.conf",
        state=f"{paths.data_dir}/sentinel.conf",
        sentinel_addresses=[f"{n.hostname}:{n.port}" for n in topology.sentinels],
        redis_addresses=[f"{n.hostname}:{n.port}" for n in topology.redis_nodes],
        # "<hostname>" + this suffix is the Sentinel's own announced name (empty on Docker).
        hostname_suffix=first.hostname.removeprefix(first.name),
        tls_args=f"--tls --cacert {paths.conf_dir}/ca.crt" if settings.tls else "",
        client_password_file=f"{paths.conf_dir}/{SENTINEL_CLIENT_PASSWORD_FILE}",
    )


# --- Redis Cluster ---------------------------------------------------------------------


def cluster_create_wait_seconds(settings: Settings) -> int:
    """How long the creation step waits for nodes, joins and a healthy state."""
    return 120 + 10 * settings.cluster_nodes


def render_cluster_create_script(settings: Settings, cluster: ClusterTopology, password_file: str) -> str:
    """The one-shot creation/scale-out step: creates the cluster when no node is part
    of one, else joins the nodes it lacks and rebalances slots onto empty masters.
    Holds no secret: the admin password is read from `password_file` at run time."""
    replicas = [
        f"{m.node.hostname}:{m.node.port},{m.master.hostname}:{m.master.port}"
        for m in cluster.members
        if m.master is not None
    ]
    return _render(
        "cluster-create.sh.j2",
        settings=settings,
        cluster=cluster,
        masters=[f"{n.hostname}:{n.port}" for n in cluster.masters],
        replicas=replicas,
        password_file=password_file,
        wait_seconds=cluster_create_wait_seconds(settings),
    )
