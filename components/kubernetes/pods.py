"""Building blocks of the pod templates: labels, security, probes, affinity, resources.

Pure functions returning typed pulumi-kubernetes args; no resource is created here.
"""

from __future__ import annotations

import math

import pulumi_kubernetes as k8s
from redis_ha.components.settings import Settings

# The official redis images run as `redis` (uid/gid 999); the exporter runs as anyone.
REDIS_UID = 999
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"
MIB = 1024**2


def selector_labels(settings: Settings, component: str) -> dict[str, str]:
    """The labels a Service, PDB, NetworkPolicy or StatefulSet selects one kind of pod by."""
    return {
        "app.kubernetes.io/name": "redis",
        "app.kubernetes.io/instance": settings.name,
        "app.kubernetes.io/component": component,
    }


def labels(settings: Settings, component: str) -> dict[str, str]:
    return {
        **selector_labels(settings, component),
        "app.kubernetes.io/part-of": "redis-ha",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def client_label(settings: Settings) -> dict[str, str]:
    """The label an application pod carries to be let through the NetworkPolicies."""
    return {f"{settings.name}-client": "true"}


def selector(settings: Settings, component: str) -> k8s.meta.v1.LabelSelectorArgs:
    return k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(settings, component))


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=REDIS_UID,
        run_as_group=REDIS_UID,
        fs_group=REDIS_UID,
        # A large data volume is not walked again on every start.
        fs_group_change_policy="OnRootMismatch",
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security_context() -> k8s.core.v1.SecurityContextArgs:
    """Meets the `restricted` Pod Security Standard; every writable path is a volume."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=REDIS_UID,
        run_as_group=REDIS_UID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def exec_probe(
    script: str, mode: str, period: int, timeout: int, failures: int, initial_delay: int = 0
) -> k8s.core.v1.ProbeArgs:
    """`sh <script> <mode>`: the node probes take `live` or `ready`."""
    return k8s.core.v1.ProbeArgs(
        exec_=k8s.core.v1.ExecActionArgs(command=["sh", script, mode]),
        initial_delay_seconds=initial_delay,
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
    )


def spread(settings: Settings, component: str, others: tuple[str, ...], required: bool) -> k8s.core.v1.AffinityArgs:
    """Pods of one kind on different Kubernetes nodes: `required` (one node failure is
    one lost member), else only preferred (a six-node Redis Cluster would otherwise need
    six Kubernetes nodes to schedule at all); apart from the `others` kinds when there
    are enough nodes (Redis and Sentinel on one host fail together)."""

    def term(kind: str) -> k8s.core.v1.PodAffinityTermArgs:
        return k8s.core.v1.PodAffinityTermArgs(
            label_selector=selector(settings, kind), topology_key=HOSTNAME_TOPOLOGY_KEY
        )

    preferred = [k8s.core.v1.WeightedPodAffinityTermArgs(weight=50, pod_affinity_term=term(kind)) for kind in others]
    if not required:
        preferred.insert(0, k8s.core.v1.WeightedPodAffinityTermArgs(weight=100, pod_affinity_term=term(component)))
    return k8s.core.v1.AffinityArgs(
        pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
            required_during_scheduling_ignored_during_execution=[term(component)] if required else None,
            preferred_during_scheduling_ignored_during_execution=preferred,
        )
    )


def mebibytes(n_bytes: int) -> str:
    return f"{math.ceil(n_bytes / MIB)}Mi"


def redis_memory_limit(settings: Settings) -> int:
    """Bytes: memoryLimit, or maxmemory plus the headroom settings derive."""
    return settings.redis_memory_limit


def redis_resources(settings: Settings) -> k8s.core.v1.ResourceRequirementsArgs:
    # Memory request == limit: the scheduler reserves what the OOM killer enforces.
    memory = mebibytes(redis_memory_limit(settings))
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": "250m", "memory": memory},
        limits={"cpu": "2", "memory": memory},
    )


def small_resources(cpu_limit: str = "200m", memory: str = "64Mi") -> k8s.core.v1.ResourceRequirementsArgs:
    """Sentinel, the exporter and the init containers."""
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": "25m", "memory": memory},
        limits={"cpu": cpu_limit, "memory": memory},
    )


def _field_env(name: str, field_path: str) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path=field_path)),
    )


def pod_name_env() -> k8s.core.v1.EnvVarArgs:
    """POD_NAME: which `<pod>.<file>` key of the config Secret is this pod's."""
    return _field_env("POD_NAME", "metadata.name")


def pod_ip_env() -> k8s.core.v1.EnvVarArgs:
    """POD_IP: redis-start.sh recognises itself in a Sentinel answer that is an address."""
    return _field_env("POD_IP", "status.podIP")
