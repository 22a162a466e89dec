"""The whole program, minus config reading: settings -> plan -> backend.

`topology` sentinel deploys the Sentinel group (RedisHA), cluster a Redis Cluster
(RedisCluster), both deploys the two side by side (distinct names, networks, volumes,
host ports) and describes both in one `redisHa` output."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config
from redis_ha.components import backup_plan, outputs, plan, scrape, security
from redis_ha.components.backend import DEFAULT_PLACEMENT, Backend, Placement
from redis_ha.components.credentials import Credentials, CredentialsArgs
from redis_ha.components.docker import deployment as docker_deployment
from redis_ha.components.docker import layout as docker_layout
from redis_ha.components.kubernetes import deployment as kubernetes_deployment
from redis_ha.components.kubernetes import layout as kubernetes_layout
from redis_ha.components.outputs import combine_deployments
from redis_ha.components.settings import Settings
from redis_ha.components.settings_backup import S3_SECRET_KEYS
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import Naming

# Config keys whose values are structured (YAML lists/objects), read with get_object.
OBJECT_KEYS = ("roles", "save")


# backend name -> its deployment module (a Backend) and its layout and naming.
BACKENDS: Mapping[str, Backend] = {"docker": docker_deployment, "kubernetes": kubernetes_deployment}
LAYOUTS: Mapping[str, tuple[plan.Layout, Callable[[Settings], Naming]]] = {
    "docker": (docker_layout.LAYOUT, docker_layout.DockerNaming),
    "kubernetes": (kubernetes_layout.LAYOUT, kubernetes_layout.KubernetesNaming),
}


# pulumi-kubernetes replaces a Secret whose data changed (delete, then create: same
# name) unless Secrets are mutable for its provider; the config Secret must be updated
# in place (docs/pulumi-engine.md "Secrets must be mutable").
SECRET_MUTABLE_KEY = "kubernetes:enableSecretMutable"
SECRET_MUTABLE_ENV = "PULUMI_K8S_ENABLE_SECRET_MUTABLE"


def secrets_mutable() -> bool:
    """Whether the default Kubernetes provider updates Secrets in place (its config key
    or its environment variable, as the provider reads them)."""
    value = runtime_config.get_config(SECRET_MUTABLE_KEY) or os.environ.get(SECRET_MUTABLE_ENV) or ""
    return value.strip().lower() == "true"


def warn_unless_secrets_mutable(backend: str) -> None:
    """A warning for a deployment through the default provider that would replace Secrets."""
    if backend == "kubernetes" and not secrets_mutable():
        pulumi.log.warn(
            f'{SECRET_MUTABLE_KEY} is not "true": the provider will REPLACE the config Secret (delete, then '
            "create) on every change of it, instead of updating it in place as a password rotation needs; "
            f"set `pulumi config set {SECRET_MUTABLE_KEY} true` (Pulumi.prod.yaml has it)"
        )


def backend_layout(settings: Settings) -> tuple[plan.Layout, Naming]:
    """The backend's layout and naming."""
    layout, naming = LAYOUTS[settings.backend]
    return layout, naming(settings)


def naming_for(settings: Settings) -> Naming:
    return backend_layout(settings)[1]


def build_plan(settings: Settings) -> plan.Plan:
    layout, naming = backend_layout(settings)
    return plan.build_plan(settings, layout, naming)


def deploy(
    raw: Mapping[str, Any],
    configured_passwords: Mapping[str, pulumi.Output[str]],
    previous_passwords: Mapping[str, pulumi.Output[str]] | None = None,
    s3_keys: Mapping[str, pulumi.Output[str]] | None = None,
) -> dict[str, pulumi.Output[Any]]:
    """Validate everything, then create the resources; returns the stack outputs.

    Validation runs before the first resource is registered, so a bad value never
    leaves anything half-created behind.
    """
    settings = load_settings(raw)
    return deploy_settings(settings, configured_passwords, previous_passwords, s3_keys)


def deploy_settings(
    settings: Settings,
    configured_passwords: Mapping[str, pulumi.Output[str]],
    previous_passwords: Mapping[str, pulumi.Output[str]] | None = None,
    s3_keys: Mapping[str, pulumi.Output[str]] | None = None,
    placement: Placement = DEFAULT_PLACEMENT,
) -> dict[str, pulumi.Output[Any]]:
    """`previous_passwords`: user -> old configured password while its rotation is in
    phase 1 (docs/redis-notes.md#rotating-passwords); `s3_keys`: the configured S3 key
    pair (config key -> secret), for backupTarget s3; `placement`: where a program of
    its own puts the components (components/library.py), the stack's default else."""
    deployment_plan = build_plan(settings)
    BACKENDS[settings.backend].check(settings, deployment_plan.parts)
    credentials = Credentials(
        f"{settings.name}-credentials",
        CredentialsArgs(
            users=security.user_names(settings),
            configured=configured_passwords,
            previous=previous_passwords or {},
            generation=settings.password_generation,
            previous_generation=settings.previous_password_generation,
        ),
        placement.opts,
    )
    # The backends render every secret file from one mapping: the users' passwords (and
    # the previous ones while a rotation is in phase 1) and, for the backup worker, the
    # S3 key pair.
    secrets = credentials.for_backends()
    for key, name in zip(S3_SECRET_KEYS, (backup_plan.S3_ACCESS_KEY_ID, backup_plan.S3_SECRET_ACCESS_KEY), strict=True):
        if s3_keys and key in s3_keys:
            secrets[name] = pulumi.Output.secret(s3_keys[key])
    descriptions = BACKENDS[settings.backend].deploy(settings, deployment_plan.parts, secrets, placement)
    deployment = descriptions[0]
    if len(descriptions) == 2:
        deployment = pulumi.Output.all(*descriptions).apply(lambda parts: combine_deployments(parts[0], parts[1]))
    roles = [r.name for r in settings.roles]
    system = {user: p for user, p in credentials.passwords.items() if user not in roles}
    stack_outputs: dict[str, pulumi.Output[Any]] = {
        "redisHa": deployment,
        outputs.SYSTEM_PASSWORDS: pulumi.Output.secret(pulumi.Output.all(**system)),
    }
    if settings.backend == "docker" and any(p.exporters or p.backup for p in deployment_plan.parts):
        # The documented scrape targets (README, Monitoring); Kubernetes has ServiceMonitors.
        stack_outputs[outputs.SCRAPE_CONFIG] = pulumi.Output.from_input(
            scrape.render_scrape_configs(settings, deployment_plan.parts)
        )
    # One secret output per application role: a pipeline can be given one role's
    # password without the others (`pulumi stack output --show-secrets cachePassword`).
    for role in roles:
        stack_outputs[outputs.role_password_output(role)] = pulumi.Output.secret(credentials.passwords[role])
    return stack_outputs
