"""Constants and helpers of the Redis Cluster program tests (tests/program/test_cluster_*.py):
the stack configurations, the resource types, and views over the registrations recorded
under Pulumi's mocks.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support.program import ProgramRun, Registered, manifest, stack_config

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
JOB = "kubernetes:batch/v1:Job"
NAMESPACE = "kubernetes:core/v1:Namespace"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORKPOLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLUSTER = {"topology": "cluster"}
BOTH = {"topology": "both"}


def dev_config(**overrides: Any) -> dict[str, Any]:
    return {**stack_config("dev"), **overrides}


def prod_config(**overrides: Any) -> dict[str, Any]:
    return {**stack_config("prod"), **overrides}


def named(run: ProgramRun, token: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in (manifest(r) for r in run.of_type(token))}


def containers_of_kind(run: ProgramRun, kind: str) -> list[Registered]:
    return [c for c in run.of_type(CONTAINER) if {"label": "redis-ha.kind", "value": kind} in c.inputs["labels"]]


def delivered(run: ProgramRun, consumer: str, file_name: str) -> str:
    """A file as `consumer`'s secrets writer delivers it."""
    [writer] = [c for c in run.of_type(CONTAINER) if c.name == f"{consumer}-secrets"]
    return next(u["content"] for u in writer.inputs["uploads"] if u["file"] == f"/run/redis-ha/incoming/{file_name}")


def upload(container: Registered, path: str) -> str:
    return next(u["content"] for u in container.inputs["uploads"] if u["file"] == path)


def user_passwords(run: ProgramRun) -> dict[str, str]:
    return {name.removeprefix("redis-ha-credentials-"): password for name, password in run.passwords.items()}


def secret_values(run: ProgramRun) -> set[str]:
    values = set(run.passwords.values())
    return values | {hashlib.sha256(p.encode()).hexdigest() for p in run.passwords.values()}


def pod_spec(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]["spec"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
