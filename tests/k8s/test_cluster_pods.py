"""The prod stack's Redis Cluster variant (`topology: cluster`) running on the local node.

Deployed by tests/k8s/deployment.py as test_pods.py deploys the Sentinel variant (test
images, hostPath volumes, anti-affinity preferred on one node), awaited as
pulumi-kubernetes does: the StatefulSet of 6 pods ready and the cluster-create Job
Complete. Then, through `kubectl exec` (tests/verify/cluster_access.py): cluster_state
ok on every node with all 16384 slots served exactly once by 3 masters with a replica
each. The drill: one master pod deleted while a cluster-aware client on the host
writes (it resolves the announced hostnames through CoreDNS, tests/k8s/cluster_dns.py);
its replica takes over, the pod comes back from its volume (nodes.conf) as a replica
of the new master, and every acknowledged write is read back. And the NetworkPolicy:
probe pods reach the client port with the client label only, and the bus never.

Skipped when the cluster has no Ready node.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.k8s.api import Api, ApiError, wait_for
from tests.k8s.deployment import DeployError, Stack, deployed, statefulset_awaited, uid_of
from tests.k8s.netpol import client_label, container_ports, pod_ips, probes
from tests.support.k8s_cluster import require_node
from tests.verify.access import Node, Outputs
from tests.verify.cluster_access import (
    SLOTS,
    cluster_client,
    cluster_info,
    forget_node_ids,
    node_id,
    nodes_view,
    wait_healthy_cluster,
)

pytestmark = pytest.mark.k8s

CLUSTER = {"topology": "cluster"}


@pytest.fixture(scope="module")
def stack(k8s: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_node(k8s)
    forget_node_ids()
    try:
        with deployed(k8s, tmp_path_factory.mktemp("k8s-cluster"), variant=CLUSTER, prefix="rh-cluster") as s:
            # The cluster pods' anti-affinity is already preferred in the program (6 pods,
            # 3 shards): nothing is relaxed for one node.
            assert s.relaxed == [], s.relaxed
            yield s
    except DeployError as e:
        pytest.fail(str(e), pytrace=False)
    finally:
        forget_node_ids()


def cluster_nodes(stack: Stack) -> tuple[Outputs, list[Node]]:
    outputs = stack.verify_outputs()
    return outputs, [Node(spec, outputs) for spec in outputs.nodes("cluster")]


def cluster_statefulset(stack: Stack) -> str:
    return next(s["metadata"]["name"] for s in stack.of_kind("StatefulSet"))


def test_the_cluster_statefulset_and_the_create_job_complete(stack: Stack) -> None:
    (sts,) = stack.of_kind("StatefulSet")
    (job,) = stack.of_kind("Job")
    assert sts["spec"]["replicas"] == 6
    pods = stack.api.list("v1", "Pod", stack.namespace)
    running = [p for p in pods if any(o["kind"] == "StatefulSet" for o in p["metadata"].get("ownerReferences", []))]
    assert len(running) == 6 and all(p["status"]["phase"] == "Running" for p in running), running
    status = stack.api.get("batch/v1", "Job", job["metadata"]["name"], stack.namespace)["status"]
    assert status.get("succeeded") == 1, status
    print(f"k8s cluster: {json.dumps(stack.timings)}")


def test_cluster_state_is_ok_with_every_slot_served_once(stack: Stack) -> None:
    outputs, nodes = cluster_nodes(stack)
    state = wait_healthy_cluster(outputs, nodes, timeout=60)
    assert len(state.masters) == 3 and all(len(r) == 1 for r in state.masters.values()), state.masters
    for node in nodes:
        info = cluster_info(node)
        assert info["cluster_state"] == "ok" and info["cluster_slots_ok"] == str(SLOTS), (node.name, info)
        assert info["cluster_known_nodes"] == "6", (node.name, info)


def test_a_client_labelled_pod_reaches_the_client_port_and_no_pod_outside_reaches_the_bus(stack: Stack) -> None:
    """The NetworkPolicy (enforced by the node's kube-router): the client port is open to
    pods with the client label, the cluster bus to the cluster's own pods only. So a
    client-labelled pod of the namespace reaches every node's client port and none's bus
    port, and an unlabelled pod reaches neither."""
    pods = {"client": (stack.namespace, client_label(stack)), "plain": (stack.namespace, {})}
    with probes(stack, pods) as running:
        ips, ports = pod_ips(stack, "cluster"), container_ports(stack, "cluster")
        client, bus = ports["redis"], ports["cluster-bus"]
        for name, client_port in (("client", "reached"), ("plain", "refused")):
            seen = {f"{ip}:{port}": running[name].connect(ip, port) for ip in ips for port in (client, bus)}
            expected = {target: (client_port if target.endswith(f":{client}") else "refused") for target in seen}
            assert seen == expected, (name, seen)


# --- a shard failover under a cluster client ------------------------------------------


class ClusterWriter(threading.Thread):
    """Unique keys through redis-py's RedisCluster as fast as it takes them; a write is
    acknowledged by its reply. Records (time, key) of every acknowledged write and the
    errors by kind."""

    def __init__(self, outputs: Outputs) -> None:
        super().__init__(daemon=True, name="cluster-writer")
        self.outputs = outputs
        self.acknowledged: list[tuple[float, str]] = []
        self.errors: dict[str, int] = {}
        self.first_errors: list[str] = []
        self.halt = threading.Event()
        self.prefix = f"redis-ha:drill:cluster:{uuid.uuid4().hex}:"

    def run(self) -> None:
        client = cluster_client(self.outputs, socket_timeout=1.0, socket_connect_timeout=1.0)
        i = 0
        while not self.halt.is_set():
            key = f"{self.prefix}{i}"
            i += 1
            try:
                if client.set(key, key, ex=3600):
                    self.acknowledged.append((time.monotonic(), key))
            except (redis.RedisError, OSError) as error:  # the cluster client raises both
                name = type(error).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                if len(self.first_errors) < 10:
                    self.first_errors.append(f"{name}: {error}"[:120])
                time.sleep(0.05)
            time.sleep(0.002)
        client.close()


def lost_keys(outputs: Outputs, keys: list[str]) -> list[str]:
    client = cluster_client(outputs)
    missing = []
    try:
        for key in keys:
            if not client.exists(key):
                missing.append(key)
    finally:
        client.close()
    return missing


def longest_gap(times: list[float], start: float, end: float) -> float:
    marks = [start, *[t for t in times if start <= t <= end], end]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


@pytest.mark.destructive
def test_a_master_pod_deleted_its_replica_takes_over_and_the_pod_rejoins_as_replica(stack: Stack) -> None:
    outputs, nodes = cluster_nodes(stack)
    state = wait_healthy_cluster(outputs, nodes, timeout=90)
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        node_id(node)  # asked while every node runs
    old = state.master_nodes()[0]
    (replica,) = state.masters[old.name]
    old_slots = next(line.slots for line in nodes_view(old) if "myself" in line.flags)
    survivors = [n for n in nodes if n.name != old.name]
    old_uid = uid_of(stack, old.name)
    takeover_limit = outputs.deployment["cluster"]["nodeTimeout"] / 1000 + 15
    figures: dict[str, Any] = {"deleted_master": old.name, "its_replica": replica.name}

    writer = ClusterWriter(outputs)
    writer.start()
    wait_for("the cluster writer to get through", lambda: len(writer.acknowledged) >= 50, timeout=30, interval=0.1)
    started = time.monotonic()
    try:
        # The node cordoned first: the StatefulSet would otherwise make the pod again
        # within seconds, from the same nodes.conf, and it would be back as the master
        # before the others count it failed (cluster-node-timeout). Cordoned, the new
        # pod stays Pending, as on a node that is gone, until the replica took over.
        cordon(stack.api, True)
        stack.api.delete("v1", "Pod", old.name, stack.namespace)

        def taken_over() -> bool:
            me = next(line for line in nodes_view(replica) if "myself" in line.flags)
            if not (me.is_master and me.slots):
                return False
            return all(cluster_info(n)["cluster_state"] == "ok" for n in survivors if n.name != old.name)

        def probe_takeover() -> bool:
            try:
                return taken_over()
            except AssertionError:  # a kubectl exec that failed
                return False

        wait_for(f"{replica.name} to take over", probe_takeover, timeout=takeover_limit, interval=0.25)
        figures["replica_master_s"] = round(time.monotonic() - started, 1)
        cordon(stack.api, False)

        def back() -> bool:
            try:
                uid = stack.api.get("v1", "Pod", old.name, stack.namespace)["metadata"]["uid"]
            except ApiError:
                return False
            return (
                uid != old_uid
                and statefulset_awaited(stack.api, stack.namespace, cluster_statefulset(stack)) is not None
            )

        wait_for(f"{old.name} back and every pod ready", back, timeout=180, interval=0.5)
        figures["pod_back_ready_s"] = round(time.monotonic() - started, 1)

        def rejoined() -> bool:
            try:
                me = next(line for line in nodes_view(old) if "myself" in line.flags)
                info = old.info("admin", "replication")
            except AssertionError:
                return False
            return not me.is_master and me.master_id == node_id(replica) and info.get("master_link_status") == "up"

        wait_for(f"{old.name} to rejoin as a replica of {replica.name}", rejoined, timeout=90, interval=0.5)
        figures["rejoined_as_replica_s"] = round(time.monotonic() - started, 1)
        after = wait_healthy_cluster(outputs, nodes, timeout=60)
        figures["healthy_again_s"] = round(time.monotonic() - started, 1)
        # Writes to the shard get through again (min-replicas-to-write 1 refuses them
        # while the new master has no replica).
        time.sleep(1.0)
    finally:
        cordon(stack.api, False)
        ended = time.monotonic()
        writer.halt.set()
        writer.join(timeout=30)

    assert replica.name in after.masters and after.masters[replica.name][0].name == old.name, after.masters
    probe = cluster_client(outputs)
    try:
        shard_times = [t for t, key in writer.acknowledged if _in(probe.keyslot(key), old_slots)]
    finally:
        probe.close()
    keys = [key for _, key in writer.acknowledged]
    lost = lost_keys(outputs, keys)
    figures["writes"] = {
        "acknowledged": len(keys),
        "acknowledged_after_operation": sum(
            1 for t, _ in writer.acknowledged if t > started + figures["healthy_again_s"]
        ),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "errors": dict(sorted(writer.errors.items())),
        "first_errors": writer.first_errors,
        "longest_gap_s": round(longest_gap([t for t, _ in writer.acknowledged], started, ended), 3),
        "longest_gap_of_the_shard_s": round(longest_gap(shard_times, started, ended), 3),
    }
    figures["by_name"] = sorted(by_name)
    print(f"k8s drill cluster-delete-master-pod: {json.dumps(figures, sort_keys=True)}")
    assert figures["replica_master_s"] <= takeover_limit
    assert figures["writes"]["acknowledged_after_operation"] >= 50, figures
    # The deleted master shut down cleanly and the replica was in sync: nothing acknowledged is lost.
    assert not lost, figures


def cordon(api: Api, unschedulable: bool) -> None:
    """`kubectl cordon` / `uncordon` of every node (there is one)."""
    for node in api.list("v1", "Node"):
        api.request(
            "PATCH",
            api.path("v1", "Node", node["metadata"]["name"]),
            data=json.dumps({"spec": {"unschedulable": unschedulable or None}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )


def _in(slot: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= slot <= high for low, high in ranges)
