"""The prod stack's program under Pulumi's mocks: the stack outputs and the
applications' credentials (a Secret and a secret stack output per role).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pytest
from redis_ha.components import program
from redis_ha.components.kubernetes import deployment as k8s_deployment
from redis_ha.components.kubernetes import pods
from redis_ha.components.outputs import stack_passwords
from redis_ha.components.program import build_plan
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings

from tests.support.prod_program import COMPONENT_LABEL, SECRET, SERVICE, USERS, named
from tests.support.program import ProgramRun, is_secret, plain_strings, run_program, stack_config


def test_bad_role_password_registers_nothing() -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError) as caught:
        run_program({**stack_config("prod"), "analyticsPassword": "analytics secret 1!"}, stack="prod", run=run)
    assert run.resources == []
    assert str(caught.value).startswith("redis-ha:analyticsPassword: invalid value <secret>; allowed: ")
    assert "analytics secret 1!" not in str(caught.value)


def test_configured_role_password_reaches_the_acl_secrets_only() -> None:
    password = "Analytics-Role-Secret-1"
    run = run_program({**stack_config("prod"), "analyticsPassword": password}, stack="prod")
    assert run.outputs["analyticsPassword"] == password
    assert "analytics" not in run.outputs["passwords"]
    digest = hashlib.sha256(password.encode()).hexdigest()
    holders = [r.name for r in run.resources if digest in " ".join(plain_strings(r.inputs))]
    assert holders and all(r.type == SECRET for r in run.resources if r.name in holders), holders


def test_outputs_name_kubectl_hosts_and_the_k8s_conf_dir(prod: ProgramRun) -> None:
    deployment = prod.outputs["redisHa"]
    role_outputs = {r["passwordOutput"] for r in prod.outputs["redisHa"]["roles"]}
    assert len(role_outputs) == 6 and prod.secret_outputs == {"passwords", *role_outputs}
    assert deployment["backend"] == "kubernetes" and deployment["confDir"] == "/etc/redis-ha"
    nodes = {n["name"]: n for n in deployment["nodes"]}
    for i in range(3):
        assert (
            nodes[f"redis-ha-redis-{i}"]["testinfraHost"]
            == f"kubectl://redis-ha-redis-{i}?namespace=redis&container=redis"
        )
        assert nodes[f"redis-ha-sentinel-{i}"]["testinfraHost"] == (
            f"kubectl://redis-ha-sentinel-{i}?namespace=redis&container=sentinel"
        )
    assert nodes["redis-ha-redis-0"]["host"] == "redis-ha-redis-0.redis-ha-redis-headless.redis.svc.cluster.local"
    assert (
        nodes["redis-ha-exporter"]["testinfraHost"] == "kubectl://redis-ha-redis-0?namespace=redis&container=exporter"
    )
    # The exporter node's host is the metrics Service's name.
    assert nodes["redis-ha-exporter"]["host"] in named(prod, SERVICE)
    assert not set(stack_passwords(prod.outputs).values()) & set(str(deployment).split("'"))


@pulumi.runtime.test
def test_component_outputs_the_sentinel_service(mocks: ProgramRun) -> pulumi.Output:
    settings = load_settings({"backend": "kubernetes", "name": "unit", "namespace": "cache"})
    passwords = {u: pulumi.Output.secret(f"pw-{u}") for u in USERS}
    passwords |= {r.name: pulumi.Output.secret(f"pw-{r.name}") for r in settings.roles}
    ha = k8s_deployment.RedisHA("unit", k8s_deployment.PartArgs(settings, build_plan(settings).parts[0], passwords))

    def check(values: list[Any]) -> None:
        namespace, service, deployment = values
        assert namespace == "cache"
        assert service == "unit-sentinel.cache.svc.cluster.local:26379"
        assert deployment["nodes"][0]["testinfraHost"] == "kubectl://unit-redis-0?namespace=cache&container=redis"

    return pulumi.Output.all(ha.namespace, ha.client_service, ha.deployment).apply(check)


ROLE_SECRET_KEYS = {
    "host",
    "port",
    "sentinelHost",
    "sentinelPort",
    "masterName",
    "sentinelUser",
    "sentinelPassword",
    "user",
    "password",
}


def _role_secret_args(tls: bool) -> tuple[Settings, dict[str, pulumi.Output[str]], k8s_deployment.PartArgs]:
    settings = load_settings({"backend": "kubernetes", "name": "unit", "namespace": "apps", "tls": tls})
    passwords = {u: pulumi.Output.secret(f"pw-{u}") for u in USERS}
    passwords |= {r.name: pulumi.Output.secret(f"pw-{r.name}") for r in settings.roles}
    return settings, passwords, k8s_deployment.PartArgs(settings, build_plan(settings).parts[0], passwords)


@pulumi.runtime.test
def test_every_role_gets_a_secret_with_where_and_as_whom_to_connect(mocks: ProgramRun) -> pulumi.Output:
    settings, _, args = _role_secret_args(tls=False)
    ha = k8s_deployment.RedisHA("unit", args)
    roles = [r.name for r in settings.roles]
    assert sorted(ha.role_secrets) == sorted(roles)
    secrets = [ha.role_secrets[r] for r in roles]

    async def secret_flags() -> list[bool]:
        return [await s.string_data.is_secret() for s in secrets]

    def check(values: list[Any]) -> None:
        namespace, flags, *contents = values
        assert flags == [True] * len(roles), "a role's Secret data is registered in the clear"
        for role, (metadata, data, kind) in zip(roles, contents, strict=True):
            assert metadata["name"] == f"unit-{role}" and metadata["namespace"] == namespace == "apps"
            # Labelled like every other resource of the deployment, as component `credentials`.
            assert metadata["labels"] == pods.labels(settings, "credentials")
            assert metadata["labels"]["app.kubernetes.io/instance"] == "unit"
            assert kind == "Opaque"
            assert set(data) == ROLE_SECRET_KEYS, role
            assert data["user"] == role and data["password"] == f"pw-{role}"
            assert data["sentinelHost"] == "unit-sentinel.apps.svc.cluster.local"
            assert data["sentinelPort"] == "26379" and data["masterName"] == "redis-ha"
            assert data["sentinelUser"] == "sentinel-client" and data["sentinelPassword"] == "pw-sentinel-client"
            assert data["host"] == "unit-redis-headless.apps.svc.cluster.local" and data["port"] == "6379"
            # Nothing of another role.
            assert not [r for r in roles if r != role and f"pw-{r}" in data.values()]

    fields = [pulumi.Output.all(s.metadata, s.string_data, s.type) for s in secrets]
    return pulumi.Output.all(ha.namespace, pulumi.Output.from_input(secret_flags()), *fields).apply(check)


@pulumi.runtime.test
def test_role_secrets_say_tls_when_it_is_on(mocks: ProgramRun, tls_provider_outputs: None) -> pulumi.Output:
    _, _, args = _role_secret_args(tls=True)
    ha = k8s_deployment.RedisHA("unit", args)

    def check(data: dict[str, str]) -> None:
        assert set(data) == ROLE_SECRET_KEYS | {"tls", "caSecret"} and data["tls"] == "true"
        # where applications find the CA certificate (key ca.crt)
        assert data["caSecret"] == "unit-ca"

    return ha.role_secrets["cache"].string_data.apply(check)


@pulumi.runtime.test
def test_role_passwords_are_secret_stack_outputs_of_their_own(mocks: ProgramRun) -> pulumi.Output:
    settings = load_settings({"backend": "kubernetes", "name": "unit"})
    stack_outputs = program.deploy_settings(settings, {"cache": pulumi.Output.secret("Cache-Configured-Secret-1")})
    roles = [r.name for r in settings.roles]
    role_outputs = [f"{r}Password" for r in roles]
    assert sorted(stack_outputs) == sorted(["redisHa", "passwords", *role_outputs])

    async def flags() -> dict[str, bool]:
        return {name: await output.is_secret() for name, output in stack_outputs.items()}

    def check(values: list[Any]) -> None:
        secret, system, cache, *others = values
        assert secret == {"redisHa": False, "passwords": True, **{o: True for o in role_outputs}}
        # The system users only; each role's password is in its own output.
        assert sorted(system) == sorted(USERS)
        assert cache == "Cache-Configured-Secret-1"
        assert all(isinstance(p, str) and len(p) == 32 for p in others)
        assert not set(system.values()) & {cache, *others}

    outputs_in_order = [stack_outputs["passwords"], *(stack_outputs[o] for o in role_outputs)]
    return pulumi.Output.all(pulumi.Output.from_input(flags()), *outputs_in_order).apply(check)


def test_the_program_makes_one_role_secret_per_stack(prod: ProgramRun) -> None:
    both = run_program({**stack_config("prod"), "topology": "both"}, stack="prod")
    cluster = run_program({**stack_config("prod"), "topology": "cluster"}, stack="prod")
    roles = [r.name for r in load_settings(stack_config("prod")).roles]
    for run in (prod, both, cluster):
        credentials = [
            m for m in named(run, SECRET).values() if m["metadata"]["labels"].get(COMPONENT_LABEL) == "credentials"
        ]
        assert sorted(m["metadata"]["name"] for m in credentials) == sorted(f"redis-ha-{r}" for r in roles)
        for resource in run.of_type(SECRET):
            assert is_secret(resource.wire["stringData"]), resource.name
    # With a Redis Cluster only, the seed Service is where to connect; no Sentinel keys.
    cache = next(r for r in cluster.of_type(SECRET) if r.name == "redis-ha-cluster-cache-credentials")
    assert cache.inputs["stringData"]["host"] == "redis-ha-cluster.redis.svc.cluster.local"
    assert "sentinelHost" not in cache.inputs["stringData"]
