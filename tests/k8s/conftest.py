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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.api import Api
from tests.support.k8s_cluster import NODE_STAGE_FAILURE, env_file, free_ports, run_script


@pytest.fixture(scope="session")
def k8s() -> Iterator[Api]:
    existing = os.environ.get("REDIS_HA_K8S_STATE")
    if existing:
        state = Path(existing)
        api = Api(env_file(state)["K8S_API"], state)
        if not api.ready():
            pytest.fail(f"REDIS_HA_K8S_STATE={existing}: the apiserver there is not ready", pytrace=False)
        yield api
        return
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"redis-ha-k8s-test-{os.getpid()}"
    env = {**os.environ, "K8S_STATE": str(state), "K8S_NODE": os.environ.get("REDIS_HA_K8S_NODE", "0")}
    # Free ports of 127.0.0.1, so that a start.sh someone else runs is not in the way.
    names = ("K8S_API_PORT", "K8S_ETCD_PORT", "K8S_ETCD_PEER_PORT", "K8S_CM_PORT", "K8S_SCHED_PORT")
    env.update(zip(names, map(str, free_ports(len(names))), strict=True))
    run_script("build.sh", env)
    try:
        out = run_script("start.sh", env)
        print(out)
        NODE_STAGE_FAILURE[:] = [line for line in out.splitlines() if "node stage FAILED" in line]
        api = Api(env_file(state)["K8S_API"], state)
        yield api
    finally:
        run_script("stop.sh", env)
