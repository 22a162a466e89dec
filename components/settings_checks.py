"""Rules that span several settings (quorum vs Sentinels, ports, memory, image vs
version, topology-specific limits): run by `load_settings` once every field is read.
Every violation is a `SettingsError` naming one key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from redis_ha.components import engines
from redis_ha.components.settings import MIB, Settings, with_headroom
from redis_ha.components.settings_backup import check_backup
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_fence import check_fence


def image_tag(image: str) -> str:
    """The tag of an image reference: what follows the last ':' of its last path
    component, digest removed; '' when it has none (`redis@sha256:...`,
    `localhost:5000/redis`)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name else ""


# A leading Redis version: `7`, `7.0`, `7.2.4-bookworm`; a longer number (a date, a
# build number) is not one.
_TAG_VERSION_RE = re.compile(r"(\d{1,2})(?:\.(\d+))?(?!\d)")


def _check_image(s: Settings) -> None:
    """The rendered redis.conf targets the engine version: 7.2-only directives such as
    locale-collate stop a 7.0 server. An image named after the other engine is refused;
    a tag without a version (latest, a custom build) is the user's to vouch for."""
    repository = s.redis_image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    named = [e for e in engines.VERSIONS if e in repository]
    other = named[0] if len(named) == 1 and named[0] != s.engine else None
    if other is not None:
        raise SettingsError(
            "redisImage",
            s.redis_image,
            f"an image of engine {s.engine} (this one is named after {other}), e.g. {s.engine_info.default_image}; "
            f"or set engine to {other}",
        )
    version = _TAG_VERSION_RE.match(image_tag(s.redis_image))
    if version is None:
        return
    major, minor = version.groups()
    wanted_major = s.redis_version.split(".")[0]
    if (minor is None and major == wanted_major) or f"{major}.{minor}" == s.redis_version:
        return
    raise SettingsError(
        "redisImage",
        s.redis_image,
        f"an image of engineVersion {s.redis_version}: a tag starting with {s.redis_version} "
        f"(e.g. {s.engine_info.default_image}), the major-only tag {wanted_major}, or a tag without a version "
        "(latest, a custom build); or set engineVersion to the image's version",
    )


def _largest_maxmemory(limit: int) -> int:
    """The largest maxmemory that fits `limit` with its headroom (0 if none)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if with_headroom(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _check_memory(s: Settings, raw: Mapping[str, Any]) -> None:
    shown = raw.get("maxmemory", s.maxmemory)
    # Redis itself warns that a maxmemory below 1mb leaves it unusable.
    if s.maxmemory < MIB:
        raise SettingsError(
            "maxmemory",
            shown,
            f"at least 1mb ({MIB} bytes); 0 (no limit) lets Redis grow until the OOM killer ends it",
        )
    if s.memory_limit and s.backend == "docker":
        raise SettingsError(
            "memoryLimit", raw.get("memoryLimit"), "0 on the docker backend (dev containers run without a memory limit)"
        )
    if not s.memory_limit:
        return
    needed = s.minimum_memory_limit
    fits = _largest_maxmemory(s.memory_limit)
    if s.maxmemory > s.memory_limit and fits >= MIB:
        raise SettingsError(
            "maxmemory",
            shown,
            f"at most {fits} bytes ({fits // MIB}mb), so that maxmemory + fork/buffer headroom fits "
            f"memoryLimit ({s.memory_limit} bytes)",
        )
    if s.memory_limit < needed:
        raise SettingsError(
            "memoryLimit",
            raw.get("memoryLimit", s.memory_limit),
            f"at least maxmemory + fork/buffer headroom = {needed} bytes ({-(-needed // MIB)}mb) "
            f"(maxmemory {s.maxmemory} + headroom {needed - s.maxmemory}), or 0 to derive it from maxmemory",
        )


def _check_generation(s: Settings) -> None:
    """Phase 1 of a rotation of the generated passwords keeps generation N-1 next to N;
    phase 2 removes previousPasswordGeneration (docs/redis-notes.md#rotating-passwords)."""
    previous = s.previous_password_generation
    if previous is None:
        return
    if s.topology != "sentinel":
        raise SettingsError(
            "previousPasswordGeneration",
            previous,
            f"unset: live rotation is implemented for topology sentinel only (this stack: {s.topology})",
        )
    if s.password_generation == 0 or previous != s.password_generation - 1:
        wanted = f"{s.password_generation - 1} (passwordGeneration - 1)" if s.password_generation else "nothing"
        raise SettingsError(
            "previousPasswordGeneration",
            previous,
            f"unset, or during phase 1 of a rotation the generation before passwordGeneration: {wanted}",
        )


def check_cross_field(s: Settings, raw: Mapping[str, Any]) -> None:
    def has(key: str) -> bool:
        return key in raw

    _check_image(s)
    _check_memory(s, raw)
    check_backup(s, raw)
    _check_generation(s)
    majority = s.sentinels // 2 + 1
    if s.quorum > s.sentinels:
        raise SettingsError("quorum", s.quorum, f"at most the number of Sentinels ({s.sentinels})")
    if s.quorum < majority:
        raise SettingsError(
            "quorum", s.quorum, f"a majority of the {s.sentinels} Sentinels: {majority} to {s.sentinels}"
        )
    if s.down_after_milliseconds >= s.failover_timeout:
        raise SettingsError(
            "downAfterMilliseconds",
            s.down_after_milliseconds,
            f"less than failoverTimeout ({s.failover_timeout})",
        )
    check_fence(s)
    if s.parallel_syncs > s.replicas:
        raise SettingsError("parallelSyncs", s.parallel_syncs, f"1 to the number of replicas ({s.replicas})")
    if s.min_replicas_to_write > s.replicas:
        raise SettingsError(
            "minReplicasToWrite", s.min_replicas_to_write, f"0 to the number of replicas ({s.replicas})"
        )
    # docs/redis-notes.md#a-master-must-persist: a master that restarts empty wipes its replicas on resync.
    if not s.persistence_enabled:
        raise SettingsError(
            "appendonly" if has("appendonly") else "save",
            False,
            "a master with replicas must persist: appendonly true or at least one save point",
        )
    # docs/redis-notes.md#noeviction-with-a-broker-role: eviction on a broker instance silently drops queued tasks.
    if s.maxmemory_policy != "noeviction" and s.broker_roles:
        raise SettingsError(
            "maxmemoryPolicy",
            s.maxmemory_policy,
            "noeviction while a broker role is deployed (" + ", ".join(s.broker_roles) + "); "
            "run a separate cache deployment for an evicting policy",
        )
    ports = {"port": s.port, "sentinelPort": s.sentinel_port, "exporterPort": s.exporter_port}
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            raise SettingsError(key, port, f"a port different from {seen[port]} ({port})")
        seen[port] = key
    if s.has_cluster and s.bus_port in seen:
        if s.cluster_bus_port:
            raise SettingsError(
                "clusterBusPort", s.bus_port, f"a port different from {seen[s.bus_port]} ({s.bus_port})"
            )
        raise SettingsError(
            "port",
            s.port,
            f"a port whose cluster bus port (port + 10000 = {s.bus_port}) differs from {seen[s.bus_port]}, "
            "or set clusterBusPort",
        )
    if s.publish_ports:
        items = list(s.host_port_ranges().items())
        for i, (key_a, (start_a, n_a)) in enumerate(items):
            if start_a + n_a - 1 > 65535:
                raise SettingsError(key_a, start_a, f"a first port that leaves room for {n_a} ports below 65536")
            for key_b, (start_b, n_b) in items[i + 1 :]:
                if start_a < start_b + n_b and start_b < start_a + n_a:
                    raise SettingsError(
                        key_b,
                        start_b,
                        f"a host port range that does not overlap {key_a} ({start_a}-{start_a + n_a - 1})",
                    )
    if s.tls and s.backend == "docker":
        raise SettingsError("tls", True, "false on the docker backend (TLS is supported on kubernetes)")
    _check_tls_secret(s)
    if s.monitoring and s.backend == "docker":
        raise SettingsError(
            "monitoring", True, "false on the docker backend (load monitoring/ into your Prometheus and Grafana)"
        )
    if s.monitoring and not s.exporter:
        raise SettingsError("monitoring", True, "false while exporter is false (the alerts read its metrics)")
    if s.backend != "docker" and s.docker_subnet:
        raise SettingsError(
            "dockerSubnet", s.docker_subnet, '"" on the kubernetes backend (the cluster gives pods their addresses)'
        )
    if s.backend == "kubernetes" and has("publishPorts") and s.publish_ports:
        raise SettingsError("publishPorts", True, "false on the kubernetes backend (use Services)")
    if s.has_cluster:
        _check_cluster(s)


def _check_tls_secret(s: Settings) -> None:
    """tlsSecret names the user's Secret: only with tls, and never a Secret the program
    itself creates in the namespace (it would overwrite the user's)."""
    if not s.tls_secret:
        return
    if not s.tls:
        raise SettingsError("tlsSecret", s.tls_secret, "empty while tls is false (set tls: true to use it)")
    ours = {
        f"{s.name}-{suffix}" for suffix in ("ca", "redis-config", "sentinel-config", "exporter", "sentinel-exporter")
    }
    ours |= {f"{s.name}-{role.name}" for role in s.roles}
    if s.tls_secret in ours:
        raise SettingsError(
            "tlsSecret", s.tls_secret, f"a Secret the deployment does not create (not one of {', '.join(sorted(ours))})"
        )


def _check_cluster(s: Settings) -> None:
    """The Redis Cluster part (docs/redis-notes.md#redis-cluster): clusterShards >= 3 (the reader) gives
    the three masters a majority needs to fail over."""
    if s.min_replicas_to_write > s.cluster_replicas_per_shard:
        raise SettingsError(
            "minReplicasToWrite",
            s.min_replicas_to_write,
            f"0 to clusterReplicasPerShard ({s.cluster_replicas_per_shard}): a cluster master with fewer "
            "replicas would refuse every write",
        )
    if 0 < s.cluster_bus_port < 1024:
        raise SettingsError("clusterBusPort", s.cluster_bus_port, "0 (port + 10000) or a port from 1024 to 65535")
    if s.tls:
        # The node certificate names the Sentinel group's Services only.
        raise SettingsError("tls", True, "false with topology cluster or both (TLS for Redis Cluster is not available)")
