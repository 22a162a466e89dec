"""The local Kubernetes for the k8s tests: scripts/k8s/build.sh, start.sh, and stop.sh at
the end of the session.

With REDIS_HA_K8S_STATE set to the state dir of a start.sh already running (the path
it prints in `KUBECONFIG=<dir>/admin.kubeconfig`), that one is used and left running.
REDIS_HA_K8S_NODE=1 asks start.sh for its node stage too (containerd, CNI, kubelet,
kube-proxy, CoreDNS); by default only the control plane is started, which is all
test_server_side_apply.py needs (pods are created and admitted, and stay Pending).
test_node.py and test_pods.py need the node, and are skipped without it.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.api import Api

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "k8s"
# start.sh's one line when its node stage was asked for and failed (what failed, and why).
NODE_STAGE_FAILURE: list[str] = []


def _env_file(state: Path) -> dict[str, str]:
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
    values = _env_file(state)
    bin_dir = values["PATH"].split(":", 1)[0]
    return {**os.environ, "KUBECONFIG": values["KUBECONFIG"], "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}


def _free_ports(n: int) -> list[int]:
    """`n` free ports of 127.0.0.1 for start.sh, all different: each is held until
    every one is bound, and released only then."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(script: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["nice", "-n", "19", "bash", str(SCRIPTS / script)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        pytest.fail(f"scripts/k8s/{script} failed: {lines[-1] if lines else result.returncode}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="session")
def k8s() -> Iterator[Api]:
    existing = os.environ.get("REDIS_HA_K8S_STATE")
    if existing:
        state = Path(existing)
        api = Api(_env_file(state)["K8S_API"], state)
        if not api.ready():
            pytest.fail(f"REDIS_HA_K8S_STATE={existing}: the apiserver there is not ready", pytrace=False)
        yield api
        return
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"redis-ha-k8s-test-{os.getpid()}"
    env = {**os.environ, "K8S_STATE": str(state), "K8S_NODE": os.environ.get("REDIS_HA_K8S_NODE", "0")}
    # Free ports of 127.0.0.1, so that a start.sh someone else runs is not in the way.
    names = ("K8S_API_PORT", "K8S_ETCD_PORT", "K8S_ETCD_PEER_PORT", "K8S_CM_PORT", "K8S_SCHED_PORT")
    env.update(zip(names, map(str, _free_ports(len(names))), strict=True))
    _run("build.sh", env)
    try:
        out = _run("start.sh", env)
        print(out)
        NODE_STAGE_FAILURE[:] = [line for line in out.splitlines() if "node stage FAILED" in line]
        api = Api(_env_file(state)["K8S_API"], state)
        yield api
    finally:
        _run("stop.sh", env)
