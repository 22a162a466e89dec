"""The typed model of one stack's configuration: the `Settings` dataclass, the
application roles and the values they may take.

The bottom of the package: this module imports nothing else of it. The validation of
raw config values (`load_settings`) is in components/settings_load.py; the error in
settings_base.py; the password keys and role checks in settings_roles.py; the backup
keys in settings_backup.py; rules across fields in settings_checks.py. Plain Python:
nothing here imports Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis_ha.components import engines

BACKENDS = ("docker", "kubernetes")
TOPOLOGIES = ("sentinel", "cluster", "both")
# Every version of any engine; which engine has which: components/engines.py.
REDIS_VERSIONS = tuple(sorted({v for vs in engines.VERSIONS.values() for v in vs}, key=engines.version_tuple))
EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
APPENDFSYNC_POLICIES = ("always", "everysec", "no")
# The largest topologies the settings allow (the Docker backend reserves an address for
# every node they could hold: components/docker/addresses.py).
MAX_REPLICAS = 8
MAX_SENTINELS = 9
MAX_CLUSTER_SHARDS = 32
MAX_REPLICAS_PER_SHARD = 4
MIB = 1024**2


def with_headroom(maxmemory: int) -> int:
    """Bytes: maxmemory plus room for what maxmemory does not count: replication and
    client buffers, and the copy-on-write pages of the BGSAVE/AOF-rewrite fork."""
    return maxmemory + max(maxmemory // 2, 128 * MIB) + 128 * MIB


@dataclass(frozen=True)
class AppRole:
    """An application user: what keys, channels and commands it may touch."""

    name: str
    keys: tuple[str, ...]
    channels: tuple[str, ...]
    commands: tuple[str, ...]
    # A role that stores queues (a Celery broker) loses tasks under eviction.
    broker: bool = False
    description: str = ""
    # SCAN walks the whole keyspace whatever the key patterns: only a role that says it
    # needs SCAN gets it (components/security.py app_role_rules,
    # docs/redis-notes.md#key-listing-commands).
    scan: bool = False


# Each default role reproduces one use case of the seed design; the key and channel
# names are the ones those clients really use (docs/redis-notes.md#roles-match-what-clients-use).
_APP_COMMANDS = ("+@connection", "+@read", "+@write", "+@keyspace", "+@transaction")
DEFAULT_ROLES: tuple[AppRole, ...] = (
    AppRole(
        name="cache",
        keys=("cache:*", "filing:*", "company:*", "lock:*"),
        channels=(),
        commands=(*_APP_COMMANDS, "+@scripting"),
        description="cache-aside entries, invalidation by SCAN, stampede locks",
        scan=True,
    ),
    AppRole(
        name="sessions",
        keys=("session:*",),
        channels=(),
        commands=_APP_COMMANDS,
        description="session tokens with a TTL",
    ),
    AppRole(
        name="ratelimit",
        keys=("ratelimit:*",),
        channels=(),
        commands=(*_APP_COMMANDS, "+@scripting"),
        description="sliding-window rate limiter run as a Lua script",
    ),
    # Measured with a real worker and producer (tests/verify/test_app_celery.py, kombu
    # 5.7): every queue is also BRPOPed as "<queue>\x06\x16<priority>", hence `celery*`
    # and `*.celery.pidbox*` (the worker's mailbox "<node>.celery.pidbox" and the reply
    # queues); kombu 5.7 keeps `_kombu.binding_deadlines` / `_kombu.binding_permanent.*`
    # next to `_kombu.binding.*` and its binding scripts call TIME. Fanout channels are
    # "/<db>.<exchange>[/<routing key>]" and the ACL compares PSUBSCRIBE patterns
    # literally, so the patterns kombu subscribes (database 0) are listed as it sends them.
    AppRole(
        name="celery",
        keys=(
            "celery*",
            "_kombu.binding*",
            "unacked",
            "unacked_index",
            "unacked_mutex",
            "celery-task-meta-*",
            "*.celery.pidbox*",
            "high_priority*",
            "medium_priority*",
            "low_priority*",
        ),
        channels=("/0.celery.pidbox", "/0.celeryev/*", "/0.celeryev/worker.*", "celery-task-meta-*"),
        commands=(*_APP_COMMANDS, "+@scripting", "+@pubsub", "+@list", "+@blocking", "+time"),
        broker=True,
        description="Celery broker (kombu) and result backend",
    ),
    AppRole(
        name="pubsub",
        keys=(),
        channels=("filing:*",),
        commands=("+@connection", "+@pubsub"),
        description="real-time notifications on filing:* channels",
    ),
    AppRole(
        name="analytics",
        keys=("user:*", "recent:*", "processed:*", "rankings:*", "unique:*"),
        channels=(),
        commands=_APP_COMMANDS,
        description="hashes, lists, sets, sorted sets and HyperLogLogs of the seed",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Everything one stack deploys, validated."""

    backend: str
    name: str = "redis-ha"
    topology: str = "sentinel"
    # The engine and its version (components/engines.py; docs/engines.md). The
    # version field keeps its historical name: it is the engine's version.
    engine: str = engines.DEFAULT_ENGINE
    redis_version: str = engines.DEFAULT_VERSION[engines.DEFAULT_ENGINE]
    redis_image: str = engines.DEFAULT_IMAGE
    exporter_image: str = "oliver006/redis_exporter:v1.62.0-alpine"
    exporter: bool = True
    replicas: int = 2
    sentinels: int = 3
    quorum: int = 2
    master_name: str = "redis-ha"
    # Measured by bench/failover.py on the dev topology: a SIGKILLed master is replaced
    # and writes flow again ~1.3 s after down-after expires (6.3 s in all), with no
    # WAIT-acknowledged write lost. Lower values fail over on GC pauses and slow disks.
    down_after_milliseconds: int = 5000
    # Twice down-after: a stuck failover is retried by another Sentinel in 20 s, and the
    # drills never needed a retry.
    failover_timeout: int = 10000
    # docs/partitions.md: a master that no majority of the Sentinels names for this long
    # refuses writes. Measured by bench/partition.py: the loss window of plain and WAIT 1
    # writes on a cut-off master is this plus one 250 ms round.
    fence: bool = True
    fence_after_milliseconds: int = 2000
    parallel_syncs: int = 1
    maxmemory: int = 2 * 1024**3
    maxmemory_policy: str = "noeviction"
    # Bytes a Redis node's container/pod may use; 0: derived from maxmemory
    # (minimum_memory_limit).
    memory_limit: int = 0
    appendonly: bool = True
    appendfsync: str = "everysec"
    save: tuple[tuple[int, int], ...] = ((900, 1), (300, 10), (60, 10000))
    # The isolation drill: a master cut off from its replicas refuses writes
    # (NOREPLICAS) once the lag passes 10 s. Only writes taken in that window by clients
    # on its side of the partition can be lost; 0 would make the window unbounded,
    # a smaller lag turns replica hiccups into write errors.
    min_replicas_to_write: int = 1
    min_replicas_max_lag: int = 10
    port: int = 6379
    sentinel_port: int = 26379
    exporter_port: int = 9121
    announce_hostnames: bool = True
    tls: bool = False
    # An existing kubernetes.io/tls Secret (ca.crt, tls.crt, tls.key; e.g. cert-manager's)
    # mounted instead of the certificates the program generates; "" generates them.
    tls_secret: str = ""
    # Ship monitoring/ (alert rules, dashboard) as Prometheus Operator and Grafana resources.
    monitoring: bool = False
    publish_ports: bool = True
    host_bind_address: str = "127.0.0.1"
    # The Docker backend's address block: each part's network gets a subnet of it and
    # every node a fixed address there ("": a block of 172.16.0.0/16 picked by the
    # deployment's name; components/docker/addresses.py).
    docker_subnet: str = ""
    redis_host_port: int = 16379
    sentinel_host_port: int = 36379
    exporter_host_port: int = 19121
    client_timeout: int = 300
    tcp_keepalive: int = 300
    roles: tuple[AppRole, ...] = DEFAULT_ROLES
    # Rotation of the generated passwords (docs/redis-notes.md#rotating-passwords):
    # generation N is in use; during phase 1 generation N-1 is accepted too.
    password_generation: int = 0
    previous_password_generation: int | None = None
    # Optional fixed passwords are Pulumi secrets and are never part of Settings;
    # only the names of the users that have one.
    namespace: str = "redis"
    storage_class: str = ""
    storage_size: str = "1Gi"
    cluster_shards: int = 3
    cluster_replicas_per_shard: int = 1
    # Measured by bench/cluster.py: a SIGKILLed master's shard takes writes again 7.7 s
    # later (median of 3): the timeout, then PFAIL -> FAIL by a majority, the replica's
    # election delay (500-1000 ms) and the client's reconnect.
    cluster_node_timeout: int = 5000
    # 0: the Redis default, port + 10000 (docs/redis-notes.md#redis-cluster).
    cluster_bus_port: int = 0
    # First host port of the cluster nodes' range (published like redisHostPort).
    cluster_host_port: int = 17379
    # Backups (components/settings_backup.py): none, a volume the stack does not own, s3.
    backup_target: str = "none"
    backup_schedule: str = "0 */6 * * *"
    backup_retention: int = 7
    # Docker volume / Kubernetes claim; empty: <name>-backups.
    backup_volume: str = ""
    # Any image with python3 (3.9 or later) and a user 999 that may write /backups.
    backup_image: str = "python:3.11-alpine"
    backup_s3_endpoint: str = ""
    backup_s3_bucket: str = ""
    # Empty: the deployment name.
    backup_s3_prefix: str = ""
    backup_s3_region: str = "us-east-1"

    @property
    def engine_info(self) -> engines.Engine:
        return engines.Engine(self.engine, self.redis_version)

    def has(self, feature: str) -> bool:
        """Whether the configured engine version has `feature` (engines.FEATURES)."""
        return self.engine_info.has(feature)

    @property
    def backups(self) -> bool:
        return self.backup_target != "none"

    @property
    def backup_volume_name(self) -> str:
        return self.backup_volume or f"{self.name}-backups"

    @property
    def backup_prefix(self) -> str:
        return (self.backup_s3_prefix or self.name).strip("/")

    @property
    def minimum_memory_limit(self) -> int:
        """Bytes: maxmemory plus the fork/buffer headroom."""
        return with_headroom(self.maxmemory)

    @property
    def redis_memory_limit(self) -> int:
        """Bytes: the memory limit of a Redis node's container/pod."""
        return self.memory_limit or self.minimum_memory_limit

    @property
    def persistence_enabled(self) -> bool:
        return self.appendonly or bool(self.save)

    @property
    def data_nodes(self) -> int:
        return 1 + self.replicas

    @property
    def broker_roles(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles if r.broker)

    @property
    def has_sentinel(self) -> bool:
        return self.topology in ("sentinel", "both")

    @property
    def has_cluster(self) -> bool:
        return self.topology in ("cluster", "both")

    @property
    def cluster_nodes(self) -> int:
        """Redis Cluster nodes: every shard's master and its replicas."""
        return self.cluster_shards * (1 + self.cluster_replicas_per_shard)

    @property
    def bus_port(self) -> int:
        """The cluster bus port of every cluster node."""
        return self.cluster_bus_port or self.port + 10000

    @property
    def exporters(self) -> int:
        """The redis_exporters with a host port: the Sentinel group has one for its Redis
        nodes and one for its Sentinels, a Redis Cluster one."""
        return (2 * int(self.has_sentinel) + int(self.has_cluster)) if self.exporter else 0

    @property
    def backup_workers(self) -> int:
        """One backup worker per part when backups are on."""
        return (int(self.has_sentinel) + int(self.has_cluster)) if self.backups else 0

    def host_port_ranges(self) -> dict[str, tuple[int, int]]:
        """config key -> (first host port, number of ports) of every range published on
        the host; the one place host ports are laid out (topology numbers nodes in them)."""
        ranges: dict[str, tuple[int, int]] = {}
        if self.has_sentinel:
            ranges["redisHostPort"] = (self.redis_host_port, self.data_nodes)
            ranges["sentinelHostPort"] = (self.sentinel_host_port, self.sentinels)
        # One range for the exporters: the Sentinel group's Redis exporter first, then the
        # cluster's, then the Sentinels' (added last, so the others kept their ports).
        # The backup workers' metrics come after every exporter.
        ranges["exporterHostPort"] = (self.exporter_host_port, max(self.exporters + self.backup_workers, 1))
        if self.has_cluster:
            ranges["clusterHostPort"] = (self.cluster_host_port, self.cluster_nodes)
        return ranges

    def host_port(self, key: str, offset: int) -> int | None:
        """The `offset`-th (0-based) host port of range `key`, None when nothing is published."""
        if not self.publish_ports:
            return None
        start, count = self.host_port_ranges()[key]
        if not 0 <= offset < count:
            raise IndexError(f"{key}: offset {offset} outside its {count} ports")
        return start + offset
