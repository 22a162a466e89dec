"""The whole program, minus config reading: settings -> topology -> backend.

`topology` sentinel deploys the Sentinel group (RedisHA), cluster a Redis Cluster
(RedisCluster), both deploys the two side by side (distinct names, networks, volumes,
host ports) and describes both in one `redisHa` output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components import docker as docker_backend
from components import kubernetes as kubernetes_backend
from components import security
from components.credentials import Credentials, CredentialsArgs
from components.outputs import combine_deployments
from components.settings import Settings, load_settings
from components.topology import build_cluster_topology, build_sentinel_topology

# Config keys whose values are structured (YAML lists/objects), read with get_object.
OBJECT_KEYS = ("roles", "save")


def deploy(
    raw: Mapping[str, Any], configured_passwords: Mapping[str, pulumi.Output[str]]
) -> dict[str, pulumi.Output[Any]]:
    """Validate everything, then create the resources; returns the stack outputs.

    Validation runs before the first resource is registered, so a bad value never
    leaves anything half-created behind.
    """
    settings = load_settings(raw)
    return deploy_settings(settings, configured_passwords)


def deploy_settings(
    settings: Settings, configured_passwords: Mapping[str, pulumi.Output[str]]
) -> dict[str, pulumi.Output[Any]]:
    credentials = Credentials(
        f"{settings.name}-credentials",
        CredentialsArgs(users=security.user_names(settings), configured=configured_passwords),
    )
    ha: docker_backend.RedisHA | kubernetes_backend.RedisHA | None = None
    if settings.has_sentinel:
        topology = build_sentinel_topology(settings)
        if settings.backend == "docker":
            ha = docker_backend.RedisHA(
                settings.name, docker_backend.RedisHAArgs(settings, topology, credentials.passwords)
            )
        else:
            ha = kubernetes_backend.RedisHA(
                settings.name, kubernetes_backend.RedisHAArgs(settings, topology, credentials.passwords)
            )
    deployment = ha.deployment if ha is not None else None
    if settings.has_cluster:
        cluster_topology = build_cluster_topology(settings)
        cluster: docker_backend.RedisCluster | kubernetes_backend.RedisCluster
        if settings.backend == "docker":
            cluster = docker_backend.RedisCluster(
                f"{settings.name}-cluster",
                docker_backend.RedisClusterArgs(settings, cluster_topology, credentials.passwords),
            )
        else:
            # Beside a Sentinel group, in the namespace it created.
            namespace = ha.namespace if isinstance(ha, kubernetes_backend.RedisHA) else None
            cluster = kubernetes_backend.RedisCluster(
                f"{settings.name}-cluster",
                kubernetes_backend.RedisClusterArgs(settings, cluster_topology, credentials.passwords, namespace),
            )
        if deployment is None:
            deployment = cluster.deployment
        else:
            deployment = pulumi.Output.all(deployment, cluster.deployment).apply(
                lambda parts: combine_deployments(parts[0], parts[1])
            )
    assert deployment is not None  # settings allow only sentinel, cluster or both
    return {
        "redisHa": deployment,
        "passwords": pulumi.Output.secret(pulumi.Output.all(**credentials.passwords)),
    }
