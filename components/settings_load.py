"""Raw config values -> a validated `Settings`: `load_settings`, the field readers and
the keys a stack may set.

`redis_ha/stack.py` reads the raw values with `pulumi.Config` and hands them here.
Every invalid value raises `SettingsError` naming the config key, the bad value and
what is allowed, before any resource exists. Plain Python: nothing here imports Pulumi.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from redis_ha.components import engines
from redis_ha.components.settings import (
    APPENDFSYNC_POLICIES,
    BACKENDS,
    EVICTION_POLICIES,
    MAX_CLUSTER_SHARDS,
    MAX_REPLICAS,
    MAX_REPLICAS_PER_SHARD,
    MAX_SENTINELS,
    REDIS_VERSIONS,
    TOPOLOGIES,
    Settings,
)
from redis_ha.components.settings_backup import BACKUP_TARGETS, S3_SECRET_KEYS, check_s3_secrets
from redis_ha.components.settings_backup import READERS as BACKUP_READERS
from redis_ha.components.settings_base import SettingsError, read_bool
from redis_ha.components.settings_checks import check_cross_field
from redis_ha.components.settings_fence import READERS as FENCE_READERS
from redis_ha.components.settings_roles import (
    SYSTEM_PASSWORD_USERS,
    check_all_passwords,
    is_password_key,
    password_key,
    read_roles,
)

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


def parse_memory(key: str, value: Any) -> int:
    """Parse a Redis memory size (`2gb`, `512mb`, `100000`) into bytes."""
    match = _MEMORY_RE.match(str(value).strip().lower()) if isinstance(value, str | int) else None
    if isinstance(value, bool) or match is None or match.group(2) not in _MEMORY_UNITS:
        raise SettingsError(key, value, "a Redis memory size: an integer with an optional unit b, k, kb, m, mb, g, gb")
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2)]


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


def _ipv4_network(key: str, value: Any) -> str:
    """An IPv4 network in CIDR form, or "" for the default (components/docker/addresses.py)."""
    if value == "":
        return ""
    try:
        network = ipaddress.IPv4Network(value) if isinstance(value, str) else None
    except ValueError:
        network = None
    unusable = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
    if (
        network is None
        or not 8 <= network.prefixlen <= 28
        or any(network.overlaps(ipaddress.IPv4Network(u)) for u in unusable)
    ):
        raise SettingsError(
            key,
            value,
            "an IPv4 network in CIDR form, /8 to /28, with no host bits set and outside 0/8, 127/8, "
            '169.254/16 and 224/3 (e.g. 172.16.8.0/24), or ""',
        )
    return str(network)


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

_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
TLS_SECRET_ALLOWED = (
    "empty (certificates generated), or the name of an existing Secret in the namespace with the keys "
    "ca.crt, tls.crt and tls.key (a DNS subdomain name, e.g. a cert-manager Certificate's secretName)"
)


def _tls_secret(key: str, value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not _DNS_SUBDOMAIN.match(value):
        raise SettingsError(key, value, TLS_SECRET_ALLOWED)
    return value


# config key -> (Settings field, reader). The key is what users write in
# Pulumi.<stack>.yaml (`redis-ha:<key>`), camelCase like every Pulumi config key.
_READERS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "backend": ("backend", _choice(BACKENDS)),
    "name": ("name", _regex(_NAME_RE, "2 to 40 lowercase letters, digits or '-', starting with a letter")),
    "topology": ("topology", _choice(TOPOLOGIES)),
    "engine": ("engine", _choice(tuple(engines.VERSIONS))),
    "engineVersion": ("redis_version", _choice(REDIS_VERSIONS)),
    # The key before engines existed: engineVersion of a Redis engine.
    "redisVersion": ("redis_version", _choice(REDIS_VERSIONS)),
    "redisImage": ("redis_image", _regex(_IMAGE_RE, "an image reference such as redis:7.2-alpine")),
    "exporterImage": (
        "exporter_image",
        _regex(_IMAGE_RE, "an image reference such as oliver006/redis_exporter:v1.62.0-alpine"),
    ),
    "exporter": ("exporter", read_bool),
    "replicas": ("replicas", _int_range(1, MAX_REPLICAS)),
    "sentinels": ("sentinels", _int_range(3, MAX_SENTINELS)),
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
    "tlsSecret": ("tls_secret", _tls_secret),
    "monitoring": ("monitoring", read_bool),
    "publishPorts": ("publish_ports", read_bool),
    "hostBindAddress": ("host_bind_address", _ipv4),
    "dockerSubnet": ("docker_subnet", _ipv4_network),
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
    "clusterShards": ("cluster_shards", _int_range(3, MAX_CLUSTER_SHARDS)),
    "clusterReplicasPerShard": ("cluster_replicas_per_shard", _int_range(0, MAX_REPLICAS_PER_SHARD)),
    "clusterNodeTimeout": ("cluster_node_timeout", _int_range(1000, 120000)),
    "clusterBusPort": ("cluster_bus_port", _int_range(0, 65535)),
    "clusterHostPort": ("cluster_host_port", _int_range(1024, 65535)),
    "passwordGeneration": ("password_generation", _int_range(0, 1000000)),
    "previousPasswordGeneration": ("previous_password_generation", _int_range(0, 1000000)),
    "backupTarget": ("backup_target", _choice(BACKUP_TARGETS)),
    "backupRetention": ("backup_retention", _int_range(1, 1000)),
    "backupImage": ("backup_image", _regex(_IMAGE_RE, "an image reference with python3, such as python:3.11-alpine")),
    **BACKUP_READERS,
    **FENCE_READERS,
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
    engines.resolve(raw, values)
    # The fence's default fits below a short downAfterMilliseconds too (settings_fence.py).
    down_after = values.get("down_after_milliseconds", Settings.down_after_milliseconds)
    values.setdefault("fence_after_milliseconds", max(1, min(Settings.fence_after_milliseconds, down_after // 2)))
    if values["backend"] == "kubernetes":
        # Pods are reached through Services; nothing is published on the host.
        values.setdefault("publish_ports", False)
    settings = Settings(**values)
    check_cross_field(settings, raw)
    # Which password keys exist depends on the roles, known only now.
    check_all_passwords(settings, {k: v for k, v in raw.items() if is_password_key(k)})
    check_s3_secrets(raw)
    return settings
