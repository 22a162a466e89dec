"""The local Kubernetes of the k8s and real-engine tests: scripts/k8s's state, ports and
scripts (tests/k8s/conftest.py and tests/pulumi_engine/conftest.py start it), the
namespaces the tests apply into, and the program's manifests in apply order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.api import Api, wait_for
from tests.support.program import ProgramRun, manifest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "k8s"
# start.sh's one line when its node stage was asked for and failed (what failed, and why).
NODE_STAGE_FAILURE: list[str] = []


def env_file(state: Path) -> dict[str, str]:
    """What start.sh exported in `state`/env (K8S_API, KUBECONFIG, PATH, ...); shared
    with tests/pulumi_engine, which starts its control plane with the same script."""
    values = {}
    for line in (state / "env").read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    return values


def kubectl_env(state: Path) -> dict[str, str]:
    """The environment for `kubectl` against the cluster of `state`: its admin
    KUBECONFIG, and its kubectl first on PATH (the version of the cluster)."""
    values = env_file(state)
    bin_dir = values["PATH"].split(":", 1)[0]
    return {**os.environ, "KUBECONFIG": values["KUBECONFIG"], "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}


def run_verify(outputs: Path, env: dict[str, str], node_ip: str) -> subprocess.CompletedProcess[str]:
    """redis-ha-verify (non-destructive) against `outputs` of a deployment on the node,
    with `env` from kubectl_env: its Sentinel-aware clients run on the host and resolve
    `*.cluster.local` through the node's CoreDNS at `node_ip` (tests/k8s/cluster_dns.py)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.verify.cli", "--outputs", str(outputs), "--", "-p", "tests.k8s.cluster_dns"],
        cwd=ROOT,
        env={**env, "REDIS_HA_K8S_DNS": node_ip, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def free_ports(n: int) -> list[int]:
    """`n` free ports of 127.0.0.1 for start.sh, all different: each is held until
    every one is bound, and released only then."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_script(script: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["nice", "-n", "19", "bash", str(SCRIPTS / script)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        pytest.fail(f"scripts/k8s/{script} failed: {lines[-1] if lines else result.returncode}", pytrace=False)
    return result.stdout


FIELD_MANAGER = "pulumi-kubernetes"
TEST_MANAGER = "redis-ha-test"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


# The order the objects are applied in (what Pulumi's dependency graph gives: the
# namespace first, workloads last); other kinds in between.
APPLY_ORDER = ["Namespace", "ServiceAccount", "Secret", "ConfigMap", "Service"]
WORKLOADS = ["StatefulSet", "Job"]


def manifests_of(run: ProgramRun) -> list[dict[str, Any]]:
    """The Kubernetes objects the provider would send: a `kubernetes:*` registration's
    inputs are the camelCase manifest itself, in apply order."""
    found = [manifest(r) for r in run.resources if r.type.startswith("kubernetes:")]

    def rank(m: dict[str, Any]) -> int:
        kind = m["kind"]
        if kind in APPLY_ORDER:
            return APPLY_ORDER.index(kind)
        if kind in WORKLOADS:
            return len(APPLY_ORDER) + 1 + WORKLOADS.index(kind)
        return len(APPLY_ORDER)

    return sorted(found, key=rank)


def create_restricted_namespace(api: Api, name: str) -> None:
    api.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": RESTRICTED}},
        field_manager=TEST_MANAGER,
    )
    # The ServiceAccount admission plugin refuses pods until the namespace's default
    # ServiceAccount exists (the serviceaccount controller makes it): wait, or the first
    # pods of a StatefulSet would fail with FailedCreate.
    wait_for(f"the default ServiceAccount of {name}", lambda: api.exists("v1", "ServiceAccount", "default", name))


def delete_namespace(api: Api, name: str) -> None:
    api.delete("v1", "Namespace", name)
    try:
        wait_for(f"namespace {name} to go", lambda: not api.exists("v1", "Namespace", name), timeout=120)
    except AssertionError as e:  # left to the namespace controller; stop.sh wipes the rest
        print(f"warning: {e}")


def ready_nodes(api: Api) -> list[str]:
    return [
        n["metadata"]["name"]
        for n in api.list("v1", "Node")
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]


def require_node(api: Api) -> None:
    """Skip unless the cluster has a Ready node, saying why it has none: start.sh's line
    when its node stage failed, or that it was not asked for."""
    if ready_nodes(api):
        return
    if NODE_STAGE_FAILURE:
        pytest.skip(f"no Ready node: {NODE_STAGE_FAILURE[0]}")
    pytest.skip("no Ready node: start.sh ran without its node stage (REDIS_HA_K8S_NODE=1 runs it)")
