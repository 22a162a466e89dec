"""Network partitions on the local Kubernetes node (docs/partitions-kubernetes.md), for
tests/k8s/test_partition.py: the Docker drills of tests/e2e/partition.py with pods.

A cut is iptables DROP rules inside the network namespace of a pod of the test's own
namespace, between pod IPs only. The namespace is the pod sandbox's: its pause process,
found through the node's private containerd (`ctr`, the socket under the state dir,
scripts/k8s/node.sh), entered from the host with `nsenter -t <pid> -n`. Every pod of
one side gets all its rules in one `iptables-restore --noflush`; `heal` deletes exactly
those. The host is not a pod: the drill's writers reach every pod over the CNI bridge
throughout, as an application on the master's side of a split would.

The cut and heal (`Cuts`), the scenarios (`master_isolated`, `sentinel_minority`, ...)
and `Roles` are the Docker drills' own: they name nodes, and `PodNetwork` maps a node to
its pod.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from tests.e2e.partition import KINDS, Cuts, Roles, fenced_seconds
from tests.k8s.api import wait_for
from tests.k8s.deployment import (
    Stack,
    diagnostics,
    healthy,
    pod_of,
    redis_nodes,
    replication,
    sentinel_masters,
    sentinel_nodes,
)
from tests.verify.access import Node
from tests.verify.drill import Drill

FENCE_LOG = "redis-ha-fence:"
FENCED_LINE = f"{FENCE_LOG} FENCED"
# The labels the CRI plugin gives a pod's sandbox container.
POD_LABEL, NAMESPACE_LABEL, KIND_LABEL = (
    "io.kubernetes.pod.name",
    "io.kubernetes.pod.namespace",
    "io.cri-containerd.kind",
)


class PodGone(AssertionError):
    """The pod has no running sandbox: its network namespace, and the rules, are gone."""


@dataclass
class PodNetwork(Cuts):
    stack: Stack
    # node name (the outputs' `name`) -> pod name
    pods: dict[str, str]
    gone: ClassVar[tuple[type[Exception], ...]] = (PodGone,)

    def _ctr(self, *args: str) -> str:
        sock = self.stack.api.state / "containerd" / "containerd.sock"
        result = subprocess.run(
            ["ctr", "--address", str(sock), "-n", "k8s.io", *args], capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def pid(self, name: str) -> str:
        """The pid of the running pause process of the node's pod (of this test's
        namespace only)."""
        pod = self.pods[name]
        running = {}
        for line in self._ctr("tasks", "ls").splitlines()[1:]:
            task, pid, status = line.split()[:3]
            if status == "RUNNING":
                running[task] = pid
        for sandbox in self._ctr("containers", "ls", "-q", f'labels."{KIND_LABEL}"==sandbox').split():
            if sandbox not in running:
                continue  # a sandbox of an earlier instance of the pod, stopped
            labels = json.loads(self._ctr("containers", "info", sandbox)).get("Labels", {})
            if labels.get(POD_LABEL) == pod and labels.get(NAMESPACE_LABEL) == self.stack.namespace:
                return running[sandbox]
        raise PodGone(f"no running sandbox of pod {self.stack.namespace}/{pod} in the node's containerd")

    def ip(self, name: str) -> str:
        pod = self.stack.api.get("v1", "Pod", self.pods[name], self.stack.namespace)
        return str(pod["status"]["podIP"])

    def rules_in(self, name: str) -> list[str]:
        """The DROP rules in the pod's filter table now (`iptables -S`)."""
        out = subprocess.run(
            ["nsenter", "-t", self.pid(name), "-n", "iptables", "-S"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        return [line for line in out.splitlines() if line.endswith("-j DROP")]


@contextlib.contextmanager
def network(stack: Stack) -> Iterator[PodNetwork]:
    nodes = redis_nodes(stack) + sentinel_nodes(stack)
    net = PodNetwork(stack, {n.name: pod_of(n.hostname) for n in nodes})
    try:
        yield net
    finally:
        net.heal()


def healthy_or_diagnostics(stack: Stack, what: str, timeout: float = 120) -> str:
    """The master hostname once healthy; else fails with what the Sentinels name, the
    replication state and the pods' diagnostics."""
    try:
        return str(wait_for(what, lambda: healthy(stack), timeout=timeout, interval=1))
    except AssertionError as e:
        seen = {"sentinels": sentinel_masters(stack)}
        with contextlib.suppress(AssertionError):
            keys = ("role", "master_host", "master_link_status", "connected_slaves")
            seen["replication"] = {h: {k: i.get(k) for k in keys} for h, i in replication(stack).items()}
        report = diagnostics(stack)
        print(json.dumps(seen), report, sep="\n")
        raise AssertionError(f"{e}: {json.dumps(seen)}\n{report[-6000:]}") from None


def sentinels_know_everyone(stack: Stack, replicas: int, sentinels: list[Node]) -> bool:
    """Every Sentinel knows `replicas` replicas and every other Sentinel. Sentinels learn
    the replicas from the master's INFO every 10 s: a replica they have not learned of
    when the master is cut off is never reconfigured, and stays behind the old master
    (seen on this node when a drill began right after the deployment)."""
    name = stack.outputs["redisHa"]["masterName"]
    for sentinel in sentinels:
        reply = sentinel.cli("sentinel-client", "SENTINEL", "MASTER", name).splitlines()
        fields = dict(zip(reply[0::2], reply[1::2], strict=False))
        if fields.get("num-slaves") != str(replicas) or fields.get("num-other-sentinels") != str(len(sentinels) - 1):
            return False
    return True


def roles(stack: Stack) -> Roles:
    master = healthy_or_diagnostics(stack, "a healthy topology before the drill")
    redis, sentinels = redis_nodes(stack), sentinel_nodes(stack)
    [primary] = [n for n in redis if n.hostname == master]
    replicas = [n for n in redis if n is not primary]
    wait_for(
        "every Sentinel to know every replica and Sentinel",
        lambda: sentinels_know_everyone(stack, len(replicas), sentinels),
        timeout=60,
        interval=1,
    )
    return Roles(primary, replicas, sentinels)


def fence_log(nodes: list[Node]) -> dict[str, list[str]]:
    """Per pod: the lines fence.sh wrote on its container's stderr so far."""
    return {pod_of(n.hostname): [line for line in n.log_tail(100_000) if FENCE_LOG in line] for n in nodes}


def down_after_s(stack: Stack) -> float:
    return float(stack.outputs["redisHa"]["downAfterMilliseconds"]) / 1000


def fence_after_s(stack: Stack) -> float:
    """REDIS_HA_FENCE_AFTER_MS of the deployed node.env (0: no fence)."""
    for m in stack.of_kind("ConfigMap") + stack.of_kind("Secret"):
        for text in (m.get("data") or {}).values():
            for line in str(text).splitlines():
                if line.startswith("REDIS_HA_FENCE_AFTER_MS="):
                    return int(line.split("=", 1)[1]) / 1000
    raise AssertionError("no REDIS_HA_FENCE_AFTER_MS in the program's node.env")


def run_scenario(stack: Stack, scenario: Callable[[Any, Roles, float], None]) -> dict[str, Any]:
    """The scenario under the three writers; after the heal: one master with both
    replicas following it and every Sentinel naming it. Returns the drill's report with
    the master before and after, the Sentinels' answers, the fenced seconds the nodes
    counted, and the lines the fence logged (and how many of them are FENCED lines)."""
    before = roles(stack)
    fenced_before, log_before = fenced_seconds(before.redis), fence_log(before.redis)
    # The network inside the writers: healed (also on a failure) before they wait to get through again.
    with Drill(stack.verify_outputs(), kinds=KINDS, replicas=len(before.replicas)) as drill, network(stack) as net:
        scenario(net, before, down_after_s(stack))
        leftover = {n.name: net.rules_in(n.name) for n in before.redis + before.sentinels}
    after = healthy_or_diagnostics(stack, "a healthy topology after the heal")
    report = drill.report()
    report["master_before"], report["master_after"] = pod_of(before.master.hostname), pod_of(after)
    report["fenced_seconds"] = fenced_seconds(before.redis) - fenced_before
    added = {pod: lines[len(log_before.get(pod, [])) :] for pod, lines in fence_log(before.redis).items()}
    report["fence_log"] = {pod: lines for pod, lines in added.items() if lines}
    fenced = {pod: sum(FENCED_LINE in line for line in lines) for pod, lines in added.items()}
    report["fenced_lines"] = {pod: n for pod, n in fenced.items() if n}
    report["sentinels_name"] = sorted(set(sentinel_masters(stack).values()))
    report["rules_left"] = {k: v for k, v in leftover.items() if v}
    return report
