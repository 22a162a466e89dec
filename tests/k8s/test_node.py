"""The node stage of scripts/k8s/start.sh (containerd, CNI bridge, kubelet, kube-proxy),
when it runs: skipped unless the cluster has a Ready node (REDIS_HA_K8S_NODE=1, or a
REDIS_HA_K8S_STATE cluster started with its node stage).

No registry is reachable here: the only image the node has is the `pause` that
build.sh compiles and node.sh imports. So a pod runs that image, restricted-compliant,
in a restricted namespace; and a pod of any other image fails its pull at the refused
local proxy containerd is given, which shows that nothing outside is contacted.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.k8s.api import Api, wait_for
from tests.support.k8s_cluster import create_restricted_namespace, delete_namespace, require_node

pytestmark = pytest.mark.k8s

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
POD_CIDR = ipaddress.ip_network("10.88.0.0/16")  # scripts/k8s/common.sh K8S_POD_CIDR


@pytest.fixture(scope="module")
def node_namespace(k8s: Api) -> Iterator[str]:
    require_node(k8s)
    namespace = f"rh-node-{secrets.token_hex(3)}"
    create_restricted_namespace(k8s, namespace)
    yield namespace
    delete_namespace(k8s, namespace)


def restricted_pod(namespace: str, name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65535, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "50m", "memory": "16Mi"}},
                }
            ],
        },
    }


def test_a_restricted_pod_runs_on_the_node_with_a_bridge_address(k8s: Api, node_namespace: str) -> None:
    k8s.create(restricted_pod(node_namespace, "pause", PAUSE_IMAGE))

    def running() -> dict[str, Any] | None:
        status = k8s.get("v1", "Pod", "pause", node_namespace)["status"]
        return status if status.get("phase") == "Running" and status.get("podIP") else None

    status = wait_for("the pause pod Running", running, timeout=90)
    assert ipaddress.ip_address(status["podIP"]) in POD_CIDR, status["podIP"]


def test_an_image_that_is_not_imported_is_never_fetched(k8s: Api, node_namespace: str) -> None:
    k8s.create(restricted_pod(node_namespace, "unpullable", "redis-ha.invalid/none:0"))

    def pull_failed() -> str | None:
        for e in k8s.list("v1", "Event", node_namespace):
            if e["involvedObject"]["name"] == "unpullable" and e.get("reason") == "Failed" and "pull" in e["message"]:
                return str(e["message"])
        return None

    message = wait_for("the failed pull of the unpullable pod", pull_failed, timeout=90)
    assert "127.0.0.1:9" in message, message
