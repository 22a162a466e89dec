"""Constants and helpers of the prod stack's program tests (tests/program/test_prod_*.py):
the resource types, and views over the registrations recorded under Pulumi's mocks.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings

from tests.support import program as support
from tests.support.program import ProgramRun, stack_config

COMPONENT = "redis-ha:kubernetes:RedisHA"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAMESPACE = "kubernetes:core/v1:Namespace"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORKPOLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
TLS_OVERRIDES = {"tls": "true", "storageClass": "fast-ssd"}
USERS = ("admin", "replica", "sentinel", "exporter", "backup", "sentinel-client", "sentinel-exporter")
_pem = support.mock_pem


def settings_of(overrides: dict[str, str] | None = None) -> Settings:
    return load_settings({**stack_config("prod"), **(overrides or {})})


manifest = support.manifest


def k8s_resources(run: ProgramRun) -> list[support.Registered]:
    return [r for r in run.resources if r.type.startswith("kubernetes:")]


def named(run: ProgramRun, token: str) -> dict[str, dict[str, Any]]:
    """metadata.name -> manifest, for every resource of one type."""
    return {m["metadata"]["name"]: m for m in (manifest(r) for r in run.of_type(token))}


def pod_spec(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]["spec"]


def all_containers(statefulset: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(statefulset)
    return spec.get("initContainers", []) + spec["containers"]


def container(statefulset: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in pod_spec(statefulset)["containers"] if c["name"] == name]
    assert len(matches) == 1, name
    return matches[0]


def label_selector(token: str, m: dict[str, Any]) -> dict[str, str]:
    """The labels a Service, PDB or NetworkPolicy selects pods by (only matchLabels is used)."""
    if token == SERVICE:
        return m["spec"]["selector"]
    selector = m["spec"]["podSelector" if token == NETWORKPOLICY else "selector"]
    assert set(selector) == {"matchLabels"}, m["metadata"]["name"]
    return selector["matchLabels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def user_passwords(run: ProgramRun) -> dict[str, str]:
    """user -> generated password (the mocks record them by resource name)."""
    prefix = "redis-ha-credentials-"
    return {name.removeprefix(prefix): password for name, password in run.passwords.items()}


def secret_values(run: ProgramRun) -> set[str]:
    """Every password, its sha256 as an ACL file stores it, and every private key."""
    values = set(run.passwords.values())
    values |= {hashlib.sha256(p.encode()).hexdigest() for p in run.passwords.values()}
    values |= {_pem("PRIVATE KEY", r.name) for r in run.of_type("tls:index/privateKey:PrivateKey")}
    return values
