"""Probe pods for the NetworkPolicy tests: restricted pods of the Redis test image that
sleep, and `kubectl exec` a TCP connection to a pod's port from inside them.

The node enforces NetworkPolicies with kube-router's policy controller (scripts/k8s/node.sh):
a connection a policy does not admit is REJECTed (`Connection refused` at once); one it
admits reaches the server, which answers (Redis and Sentinel: NOAUTH to an
unauthenticated PING; the exporter: an HTTP error to a RESP request). Traffic from the
node itself (the host-side clients of the other tests) is always admitted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.k8s.api import wait_for
from tests.k8s.deployment import REDIS_IMAGE, Stack

REDIS_UID = 999  # the redis user of the test image (components/kubernetes/pods.py)


def probe_pod(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": REDIS_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": REDIS_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                }
            ],
        },
    }


@dataclass(frozen=True)
class Probe:
    """A running probe pod."""

    stack: Stack
    namespace: str
    name: str

    def connect(self, ip: str, port: int) -> str:
        """`refused` when the connection is refused or times out, `reached` when the
        server answered (a Redis reply, or the exporter's HTTP where RESP was expected);
        anything else (kubectl exec failing, an unknown answer) fails the test."""
        result = subprocess.run(
            ["kubectl", "-n", self.namespace, "exec", self.name, "--", "timeout", "5", "redis-cli", "-h", ip]
            + ["-p", str(port), "--no-auth-warning", "PING"],
            env=self.stack.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        out = (result.stdout + result.stderr).strip()
        if "Connection refused" in out or result.returncode == 124:  # 124: timeout(1) ended it
            return "refused"
        # A cluster bus port reached closes the connection on the RESP it cannot parse.
        answers = ("NOAUTH", "PONG", "Protocol error", "Server closed the connection", "Connection reset")
        if any(answer in out for answer in answers):
            return "reached"
        raise AssertionError(f"probe {self.name} -> {ip}:{port}: exit {result.returncode}: {out}")

    def label(self, labels: dict[str, str | None]) -> None:
        """Merge-patch the pod's labels (None removes one)."""
        self.stack.api.request(
            "PATCH",
            self.stack.api.path("v1", "Pod", self.name, self.namespace),
            json={"metadata": {"labels": labels}},
            headers={"Content-Type": "application/merge-patch+json"},
        )


@contextmanager
def probes(stack: Stack, pods: dict[str, tuple[str, dict[str, str]]]) -> Iterator[dict[str, Probe]]:
    """`pods`: probe name -> (namespace, labels). Creates them, waits until each runs,
    and deletes them afterwards (the namespaces are the caller's)."""
    api, made = stack.api, []
    try:
        for name, (namespace, labels) in pods.items():
            api.create(probe_pod(namespace, name, labels))
            made.append((namespace, name))

        def running() -> bool | None:
            phases = [api.get("v1", "Pod", n, ns)["status"].get("phase") for ns, n in made]
            return True if all(p == "Running" for p in phases) else None

        wait_for("the probe pods to run", running, timeout=120, interval=1)
        yield {name: Probe(stack, namespace, name) for name, (namespace, _) in pods.items()}
    finally:
        for namespace, name in made:
            api.delete("v1", "Pod", name, namespace)


def client_label(stack: Stack) -> dict[str, str]:
    """The label an application pod carries to reach Redis, as the program's own
    NetworkPolicy states it: the pod selector of its peer that admits any namespace."""
    for policy in stack.of_kind("NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "namespaceSelector" in peer and peer.get("podSelector", {}).get("matchLabels"):
                    labels: dict[str, str] = peer["podSelector"]["matchLabels"]
                    if "app.kubernetes.io/name" not in labels:  # not the Prometheus peer
                        return labels
    raise AssertionError("no NetworkPolicy of the stack admits a client label from other namespaces")


def pod_ips(stack: Stack, component: str) -> list[str]:
    pods = stack.api.list("v1", "Pod", stack.namespace, labelSelector=f"app.kubernetes.io/component={component}")
    ips = [p["status"]["podIP"] for p in pods if p["status"].get("podIP")]
    assert ips, f"no {component} pod has an address"
    return ips


def container_ports(stack: Stack, component: str) -> dict[str, int]:
    """The named container ports of the `component` pods (the program names them after
    the group's ports: `redis`, `sentinel`, `cluster-bus`, and `metrics` for the exporter)."""
    pod = stack.api.list("v1", "Pod", stack.namespace, labelSelector=f"app.kubernetes.io/component={component}")[0]
    return {p["name"]: int(p["containerPort"]) for c in pod["spec"]["containers"] for p in c.get("ports", [])}
