"""The typed, validated model of one stack's configuration.

`__main__.py` reads the raw values with `pulumi.Config` and hands them to
`load_settings`; everything below it takes a `Settings`. Every invalid value raises
`SettingsError` naming the config key, the bad value and what is allowed, before any
resource exists. Plain Python: nothing here imports a Pulumi provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis_ha.components.settings_backup import BACKUP_TARGETS, S3_SECRET_KEYS, check_s3_secrets
from redis_ha.components.settings_backup import READERS as BACKUP_READERS

# The error and the roles live in modules of their own (settings_roles.py raises
# SettingsError too); callers keep importing them from here.
from redis_ha.components.settings_base import NAMESPACE as NAMESPACE
from redis_ha.components.settings_base import SettingsError, read_bool
from redis_ha.components.settings_roles import (
    DEFAULT_ROLES,
    SYSTEM_PASSWORD_USERS,
    AppRole,
    check_all_passwords,
    is_password_key,
    password_key,
    read_roles,
)
from redis_ha.components.settings_roles import PASSWORD_ALLOWED as PASSWORD_ALLOWED
from redis_ha.components.settings_roles import RESERVED_USERS as RESERVED_USERS
from redis_ha.components.settings_roles import check_passwords as check_passwords
from redis_ha.components.settings_roles import password_keys as password_keys
from redis_ha.components.settings_roles import previous_password_key as previous_password_key

BACKENDS = ("docker", "kubernetes")
TOPOLOGIES = ("sentinel", "cluster", "both")
REDIS_VERSIONS = ("7.0", "7.2")
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
MIB = 1024**2

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
_MASTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MEMORY_RE = re.compile(r"^(\d+)([a-z]*)$")
# Units exactly as redis.conf parses them (memtoll in util.c): k=1000, kb=1024, ...
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def _with_headroom(maxmemory: int) -> int:
    """Bytes: maxmemory plus room for what maxmemory does not count: replication and
    client buffers, and the copy-on-write pages of the BGSAVE/AOF-rewrite fork."""
    return maxmemory + max(maxmemory // 2, 128 * MIB) + 128 * MIB


def parse_memory(key: str, value: Any) -> int:
    """Parse a Redis memory size (`2gb`, `512mb`, `100000`) into bytes."""
    match = _MEMORY_RE.match(str(value).strip().lower()) if isinstance(value, str | int) else None
    if isinstance(value, bool) or match is None or match.group(2) not in _MEMORY_UNITS:
        raise SettingsError(key, value, "a Redis memory size: an integer with an optional unit b, k, kb, m, mb, g, gb")
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2)]


@dataclass(frozen=True)
class Settings:
    """Everything one stack deploys, validated."""

    backend: str
    name: str = "redis-ha"
    topology: str = "sentinel"
    redis_version: str = "7.2"
    redis_image: str = "redis:7.2-alpine"
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
    # Ship monitoring/ (alert rules, dashboard) as Prometheus Operator and Grafana resources.
    monitoring: bool = False
    publish_ports: bool = True
    host_bind_address: str = "127.0.0.1"
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
        return _with_headroom(self.maxmemory)

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


# --- field readers -------------------------------------------------------------


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def read(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise SettingsError(key, value, "one of " + ", ".join(choices))
        return value

    return read


def _int_range(lo: int, hi: int) -> Callable[[str, Any], int]:
    def read(key: str, value: Any) -> int:
        # Pulumi config hands every value over as a string.
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SettingsError(key, value, f"an integer from {lo} to {hi}")
        return value

    return read


def _regex(pattern: re.Pattern[str], allowed: str) -> Callable[[str, Any], str]:
    def read(key: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise SettingsError(key, value, allowed)
        return value

    return read


_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
_IPV4_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


def _ipv4(key: str, value: Any) -> str:
    m = _IPV4_RE.match(value) if isinstance(value, str) else None
    if m is None or any(int(part) > 255 for part in m.groups()):
        raise SettingsError(key, value, "an IPv4 address such as 127.0.0.1")
    return value


def _save(key: str, value: Any) -> tuple[tuple[int, int], ...]:
    """RDB save points: a list of "<seconds> <changes>" strings, or [] for none."""
    if isinstance(value, str):
        value = [value] if value.strip() else []
    if not isinstance(value, list | tuple):
        raise SettingsError(key, value, 'a list of "<seconds> <changes>" save points, or []')
    points = []
    for item in value:
        parts = str(item).split()
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SettingsError(key, item, 'a save point "<seconds> <changes>" of two positive integers')
        points.append((int(parts[0]), int(parts[1])))
    return tuple(points)


def _k8s_quantity(key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d+(Ki|Mi|Gi|Ti)", value):
        raise SettingsError(key, value, "a Kubernetes storage quantity such as 1Gi or 512Mi")
    return value


_K8S_BINARY_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def _memory_limit(key: str, value: Any) -> int:
    """A Redis size, or a Kubernetes quantity (`3Gi`) as a pod's limits are written."""
    match = re.fullmatch(r"\s*(\d+)(Ki|Mi|Gi|Ti)\s*", value) if isinstance(value, str) else None
    if match is not None:
        return int(match.group(1)) * _K8S_BINARY_UNITS[match.group(2)]
    try:
        return parse_memory(key, value)
    except SettingsError:
        raise SettingsError(
            key,
            value,
            "0 (derived from maxmemory) or a memory size: a Redis size (512mb, 2gb, bytes) "
            "or a Kubernetes quantity (512Mi, 3Gi)",
        ) from None


# Sentinel monitors the master by its hostname (container name, pod DNS name): pod IPs
# are unknown at deploy time, and `sentinel resolve-hostnames no` next to a hostname in
# `sentinel monitor` stops Sentinel at start-up.
_ANNOUNCE_HOSTNAMES_ALLOWED = (
    "true (nodes are addressed by hostname; Sentinel and replicas must resolve and announce hostnames)"
)


def _announce_hostnames(key: str, value: Any) -> bool:
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return True
    raise SettingsError(key, value, _ANNOUNCE_HOSTNAMES_ALLOWED)


_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# config key -> (Settings field, reader). The key is what users write in
# Pulumi.<stack>.yaml (`redis-ha:<key>`), camelCase like every Pulumi config key.
_READERS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "backend": ("backend", _choice(BACKENDS)),
    "name": ("name", _regex(_NAME_RE, "2 to 40 lowercase letters, digits or '-', starting with a letter")),
    "topology": ("topology", _choice(TOPOLOGIES)),
    "redisVersion": ("redis_version", _choice(REDIS_VERSIONS)),
    "redisImage": ("redis_image", _regex(_IMAGE_RE, "an image reference such as redis:7.2-alpine")),
    "exporterImage": (
        "exporter_image",
        _regex(_IMAGE_RE, "an image reference such as oliver006/redis_exporter:v1.62.0-alpine"),
    ),
    "exporter": ("exporter", read_bool),
    "replicas": ("replicas", _int_range(1, 8)),
    "sentinels": ("sentinels", _int_range(3, 9)),
    "quorum": ("quorum", _int_range(1, 9)),
    "masterName": ("master_name", _regex(_MASTER_NAME_RE, "letters, digits, '.', '_' or '-' (at most 64)")),
    "downAfterMilliseconds": ("down_after_milliseconds", _int_range(1000, 600000)),
    "failoverTimeout": ("failover_timeout", _int_range(2000, 3600000)),
    "parallelSyncs": ("parallel_syncs", _int_range(1, 8)),
    "maxmemory": ("maxmemory", parse_memory),
    "maxmemoryPolicy": ("maxmemory_policy", _choice(EVICTION_POLICIES)),
    "memoryLimit": ("memory_limit", _memory_limit),
    "appendonly": ("appendonly", read_bool),
    "appendfsync": ("appendfsync", _choice(APPENDFSYNC_POLICIES)),
    "save": ("save", _save),
    "minReplicasToWrite": ("min_replicas_to_write", _int_range(0, 8)),
    "minReplicasMaxLag": ("min_replicas_max_lag", _int_range(1, 3600)),
    "port": ("port", _int_range(1, 55535)),
    "sentinelPort": ("sentinel_port", _int_range(1, 65535)),
    "exporterPort": ("exporter_port", _int_range(1, 65535)),
    "announceHostnames": ("announce_hostnames", _announce_hostnames),
    "tls": ("tls", read_bool),
    "monitoring": ("monitoring", read_bool),
    "publishPorts": ("publish_ports", read_bool),
    "hostBindAddress": ("host_bind_address", _ipv4),
    "redisHostPort": ("redis_host_port", _int_range(1024, 65535)),
    "sentinelHostPort": ("sentinel_host_port", _int_range(1024, 65535)),
    "exporterHostPort": ("exporter_host_port", _int_range(1024, 65535)),
    "clientTimeout": ("client_timeout", _int_range(0, 86400)),
    "tcpKeepalive": ("tcp_keepalive", _int_range(0, 86400)),
    "roles": ("roles", read_roles),
    "namespace": ("namespace", _regex(_DNS_LABEL, "a Kubernetes namespace name (DNS label)")),
    "storageClass": (
        "storage_class",
        _regex(
            re.compile(r"^$|^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"), "a StorageClass name or empty for the cluster default"
        ),
    ),
    "storageSize": ("storage_size", _k8s_quantity),
    "clusterShards": ("cluster_shards", _int_range(3, 32)),
    "clusterReplicasPerShard": ("cluster_replicas_per_shard", _int_range(0, 4)),
    "clusterNodeTimeout": ("cluster_node_timeout", _int_range(1000, 120000)),
    "clusterBusPort": ("cluster_bus_port", _int_range(0, 65535)),
    "clusterHostPort": ("cluster_host_port", _int_range(1024, 65535)),
    "passwordGeneration": ("password_generation", _int_range(0, 1000000)),
    "previousPasswordGeneration": ("previous_password_generation", _int_range(0, 1000000)),
    "backupTarget": ("backup_target", _choice(BACKUP_TARGETS)),
    "backupRetention": ("backup_retention", _int_range(1, 1000)),
    "backupImage": ("backup_image", _regex(_IMAGE_RE, "an image reference with python3, such as python:3.11-alpine")),
    **BACKUP_READERS,
}

# The config keys of the toolkit's users' passwords; an application role's key follows
# its name (password_keys).
SECRET_KEYS = tuple(password_key(user) for user in SYSTEM_PASSWORD_USERS)


def known_keys() -> tuple[str, ...]:
    """The keys every stack may set; application roles add their password keys."""
    return tuple(_READERS) + SECRET_KEYS + S3_SECRET_KEYS


def load_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate raw config values (keys without the `redis-ha:` prefix).

    Password keys may be present: each must belong to a user and its value pass
    check_passwords. Passwords are never part of the Settings."""
    unknown = sorted(k for k in set(raw) - set(known_keys()) if not is_password_key(k))
    if unknown:
        raise SettingsError(unknown[0], raw[unknown[0]], "a known key: " + ", ".join(sorted(known_keys())))
    if "backend" not in raw:
        raise SettingsError("backend", None, "one of " + ", ".join(BACKENDS) + " (required)")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if is_password_key(key) or key in S3_SECRET_KEYS:
            continue
        attr, reader = _READERS[key]
        values[attr] = reader(key, value)
    # Defaults that follow other settings: a majority of the Sentinels, the image of
    # the configured Redis version.
    values.setdefault("quorum", values.get("sentinels", Settings.sentinels) // 2 + 1)
    values.setdefault("redis_image", f"redis:{values.get('redis_version', Settings.redis_version)}-alpine")
    if values["backend"] == "kubernetes":
        # Pods are reached through Services; nothing is published on the host.
        values.setdefault("publish_ports", False)
    settings = Settings(**values)
    # Rules across fields live in their own module, which imports this one.
    from redis_ha.components.settings_checks import check_cross_field

    check_cross_field(settings, raw)
    # Which password keys exist depends on the roles, known only now.
    check_all_passwords(settings, {k: v for k, v in raw.items() if is_password_key(k)})
    check_s3_secrets(raw)
    return settings
