"""The whole program, minus config reading: settings -> topology -> backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components import docker as docker_backend
from components import kubernetes as kubernetes_backend
from components import security
from components.credentials import Credentials, CredentialsArgs
from components.settings import Settings, load_settings
from components.topology import build_sentinel_topology

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
    topology = build_sentinel_topology(settings)
    credentials = Credentials(
        f"{settings.name}-credentials",
        CredentialsArgs(users=security.user_names(settings), configured=configured_passwords),
    )
    ha: docker_backend.RedisHA | kubernetes_backend.RedisHA
    if settings.backend == "docker":
        ha = docker_backend.RedisHA(
            settings.name, docker_backend.RedisHAArgs(settings, topology, credentials.passwords)
        )
    else:
        ha = kubernetes_backend.RedisHA(
            settings.name, kubernetes_backend.RedisHAArgs(settings, topology, credentials.passwords)
        )
    return {
        "redisHa": ha.deployment,
        "passwords": pulumi.Output.secret(pulumi.Output.all(**credentials.passwords)),
    }
