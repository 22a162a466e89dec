"""The prod stack's Sentinel variant running on the local node, and HA proved through
Kubernetes.

The manifests come from the same mocked run of the prod program as
test_server_side_apply.py, with the Docker e2e's test images (imported into the
node's containerd by scripts/k8s/images.sh) and a smaller maxmemory, so three Redis
pods fit on a shared machine. They are applied by server-side apply into a fresh
namespace labelled enforce=restricted; every PersistentVolumeClaim the StatefulSets
will make gets a hostPath PersistentVolume bound to it beforehand (volumes.py). One
change, since there is one node: the required pod anti-affinity (one Redis pod, one
Sentinel per node) becomes preferred (on_one_node). Then
the test awaits the workloads as pulumi-kubernetes does and checks, through `kubectl
exec`, replication and Sentinel agreement; runs the verification suite
(tests/verify, `redis-ha-verify`) against `kubectl://` hosts; and drills: the master
pod deleted, a rolling restart under two writers, an eviction the PDB refuses. And the
NetworkPolicies, enforced by the node's kube-router: probe pods with and without the
client label, in this namespace and another, reach what the policies admit only.

Host processes (the drill's writers, the verification suite's Sentinel-aware clients)
resolve the hostnames Sentinel announces through the node's CoreDNS
(tests/k8s/cluster_dns.py), and reach the pods on the CNI bridge.

Skipped when the cluster has no Ready node (start.sh without its node stage).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.k8s.api import Api, ApiError, wait_for
from tests.k8s.deployment import (
    EXPORTER_IMAGE,
    NODE_IP,
    REDIS_IMAGE,
    DeployError,
    Stack,
    agreed_master,
    deployed,
    healthy,
    pod_of,
    redis_nodes,
    redis_statefulset,
    sentinel_masters,
    sentinel_nodes,
    sentinel_statefulset,
    statefulset_awaited,
    uid_of,
    wait_replaced,
)
from tests.k8s.netpol import Probe, client_label, container_ports, pod_ips, probes
from tests.support.k8s_cluster import create_restricted_namespace, delete_namespace, require_node, run_verify
from tests.verify.drill import Drill

pytestmark = pytest.mark.k8s


# --- deploying (tests/k8s/deployment.py) -----------------------------------------------


@pytest.fixture(scope="module")
def stack(k8s: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_node(k8s)
    try:
        with deployed(k8s, tmp_path_factory.mktemp("k8s-pods")) as deployed_stack:
            # The program's own spread, which a one-node cluster cannot meet (see on_one_node).
            assert sorted(deployed_stack.relaxed) == sorted(deployed_stack.program_statefulsets), deployed_stack.relaxed
            yield deployed_stack
    except DeployError as e:
        pytest.fail(str(e), pytrace=False)


# --- what runs -------------------------------------------------------------------------


def test_pods_of_the_sentinel_variant_run_under_restricted(stack: Stack) -> None:
    pods = stack.api.list("v1", "Pod", stack.namespace)
    expected = sum(s["spec"]["replicas"] for s in stack.of_kind("StatefulSet"))
    assert len(pods) == expected == 6, [p["metadata"]["name"] for p in pods]
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), pod["status"]["containerStatuses"]
        images = {c["image"] for c in pod["status"]["containerStatuses"]}
        assert all(i.endswith((REDIS_IMAGE, EXPORTER_IMAGE)) for i in images), images
    labels = stack.api.get("v1", "Namespace", stack.namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    claims = stack.api.list("v1", "PersistentVolumeClaim", stack.namespace)
    assert len(claims) == 6 and all(c["status"]["phase"] == "Bound" for c in claims), claims


def test_a_master_and_two_replicas_replicate(stack: Stack) -> None:
    master = wait_for("a healthy replication topology", lambda: healthy(stack), timeout=60, interval=1)
    nodes = {n.hostname: n for n in redis_nodes(stack)}
    key = f"redis-ha-verify:k8s:{secrets.token_hex(4)}"
    assert nodes[master].cli("admin", "SET", key, "1", "EX", "300") == "OK"
    assert nodes[master].cli("admin", "WAIT", "2", "5000") == "2"
    for host, node in nodes.items():
        if host != master:
            assert node.cli("admin", "GET", key) == "1", host


def test_three_sentinels_agree_on_the_master(stack: Stack) -> None:
    master = wait_for("the Sentinels to agree", lambda: agreed_master(stack), timeout=60, interval=1)
    name = stack.outputs["redisHa"]["masterName"]

    def views() -> dict[str, dict[str, str]]:
        states = {}
        for sentinel in sentinel_nodes(stack):
            lines = sentinel.cli("sentinel-client", "SENTINEL", "MASTER", name).splitlines()
            states[sentinel.name] = dict(zip(lines[0::2], lines[1::2], strict=False))
        return states

    def complete() -> dict[str, dict[str, str]] | None:
        # Sentinels learn the replicas from the master's INFO (every 10 s) and each other
        # from the hello channel (every 2 s): right after start-up the counts may lag.
        states = views()
        full = all(s.get("num-slaves") == "2" and s.get("num-other-sentinels") == "2" for s in states.values())
        return states if full else None

    states = wait_for("every Sentinel to know 2 replicas and 2 other Sentinels", complete, timeout=60, interval=2)
    for sentinel, state in states.items():
        assert state["ip"] == master, (sentinel, state)
        assert state["flags"] == "master", (sentinel, state)
        assert int(state["quorum"]) == stack.outputs["redisHa"]["quorum"], (sentinel, state)


def test_the_verification_suite_passes_through_kubectl(stack: Stack) -> None:
    """redis-ha-verify (non-destructive) against `kubectl://` hosts; its Sentinel-aware
    clients run on the host and resolve through CoreDNS (the cluster_dns plugin)."""
    started = time.monotonic()
    result = run_verify(stack.outputs_path, stack.env, NODE_IP)
    stack.timings["verify_s"] = time.monotonic() - started
    print(result.stdout[-8000:])
    print(result.stderr[-2000:])
    assert result.returncode == 0, result.stdout[-4000:]
    assert "properties hold, 0 do not" in result.stdout


# --- NetworkPolicies, enforced by the node's kube-router (tests/k8s/netpol.py) -------------


@pytest.fixture(scope="module")
def outsider_namespace(stack: Stack) -> Iterator[str]:
    """A second restricted namespace of this test run, for pods of another application."""
    namespace = f"{stack.namespace}-out"
    create_restricted_namespace(stack.api, namespace)
    yield namespace
    delete_namespace(stack.api, namespace)


@pytest.fixture(scope="module")
def probe_pods(stack: Stack, outsider_namespace: str) -> Iterator[dict[str, Probe]]:
    label = client_label(stack)
    pods = {
        "same-namespace": (stack.namespace, {}),
        "outsider": (outsider_namespace, {}),
        "client": (outsider_namespace, label),
    }
    with probes(stack, pods) as running:
        yield running


def reachability(stack: Stack, probe: Probe) -> dict[str, str]:
    """What `probe` reaches: every Redis pod's client port and the exporter's metrics
    port there, and every Sentinel's port."""
    redis, sentinel = container_ports(stack, "redis"), container_ports(stack, "sentinel")
    out = {}
    for ip in pod_ips(stack, "redis"):
        for port in (redis["redis"], redis["metrics"]):
            out[f"{ip}:{port}"] = probe.connect(ip, port)
    for ip in pod_ips(stack, "sentinel"):
        out[f"{ip}:{sentinel['sentinel']}"] = probe.connect(ip, sentinel["sentinel"])
    return out


def test_pods_without_the_client_label_cannot_reach_redis_or_sentinel(
    stack: Stack, probe_pods: dict[str, Probe]
) -> None:
    """Neither a pod of the deployment's own namespace nor one of another namespace,
    without the client label, gets a connection to a Redis or Sentinel port. The first
    still reaches the exporters (scraping is open to the namespace), which shows the
    network path is there and only the policy refuses; the second does not."""
    metrics = container_ports(stack, "redis")["metrics"]
    for name, exporter in (("same-namespace", "reached"), ("outsider", "refused")):
        seen = reachability(stack, probe_pods[name])
        expected = {target: (exporter if target.endswith(f":{metrics}") else "refused") for target in seen}
        assert seen == expected, (name, seen)


def test_a_client_labelled_pod_of_another_namespace_reaches_redis_and_sentinel(
    stack: Stack, probe_pods: dict[str, Probe]
) -> None:
    seen = reachability(stack, probe_pods["client"])
    metrics = container_ports(stack, "redis")["metrics"]
    expected = {target: ("refused" if target.endswith(f":{metrics}") else "reached") for target in seen}
    assert seen == expected, seen


def test_the_policy_follows_the_label_of_a_running_pod(stack: Stack, probe_pods: dict[str, Probe]) -> None:
    """The outsider pod, once given the client label, is let through (kube-router
    reacts to the pod update); without it again, refused again."""
    probe, target, port = probe_pods["outsider"], pod_ips(stack, "redis")[0], container_ports(stack, "redis")["redis"]
    assert probe.connect(target, port) == "refused"
    label = client_label(stack)
    probe.label(dict(label))
    wait_for("the labelled outsider to reach Redis", lambda: probe.connect(target, port) == "reached", timeout=60)
    probe.label({key: None for key in label})
    wait_for("the unlabelled outsider to be refused", lambda: probe.connect(target, port) == "refused", timeout=60)


# --- drills through Kubernetes ---------------------------------------------------------


def show(name: str, figures: dict[str, Any]) -> None:
    print(f"k8s drill {name}: {json.dumps(figures, sort_keys=True)}")


def assert_no_loss(report: dict[str, Any]) -> None:
    for kind in ("wait", "plain"):
        assert report[kind]["lost"] == 0, report
        # The writers got through again after the operation: a drill that wrote nothing proves nothing.
        assert report[kind]["acknowledged_after_operation"] >= 50, report


@pytest.mark.destructive
def test_deleting_the_master_pod_elects_a_new_master_and_the_pod_rejoins(stack: Stack) -> None:
    before = wait_for("a healthy topology before the drill", lambda: healthy(stack), timeout=90, interval=1)
    deployment = stack.outputs["redisHa"]
    limit = (deployment["downAfterMilliseconds"] + deployment["failoverTimeout"]) / 1000 + 15
    old_pod = pod_of(before)
    old_uid = uid_of(stack, old_pod)
    figures: dict[str, Any] = {"old_master": old_pod}
    with Drill(stack.verify_outputs()) as drill:
        started = time.monotonic()
        stack.api.delete("v1", "Pod", old_pod, stack.namespace)  # graceful: the preStop hand-over runs

        def new_master() -> str | None:
            master = agreed_master(stack)
            return master if master and master != before else None

        after = wait_for("the Sentinels to agree on a new master", new_master, timeout=limit, interval=0.5)
        figures["new_master_s"] = round(time.monotonic() - started, 1)
        figures["new_master"] = pod_of(after)

        wait_replaced(stack, old_pod, old_uid)
        figures["pod_back_ready_s"] = round(time.monotonic() - started, 1)
        # The old pod follows the new master: the same topology, the other way round.
        assert wait_for("the old pod to rejoin as a replica", lambda: healthy(stack), timeout=60, interval=1) == after
        figures["healthy_again_s"] = round(time.monotonic() - started, 1)
    report = drill.report()
    figures["drill"] = {k: report[k] for k in ("seconds", "wait", "plain")}
    show("delete-master-pod", figures)
    assert figures["new_master_s"] <= limit
    assert sentinel_masters(stack) == {s.name: after for s in sentinel_nodes(stack)}
    assert_no_loss(report)


def deploy_time_master(stack: Stack) -> str:
    """The master hostname the rendered Sentinel config (the seed a Sentinel without
    state starts from) monitors: `sentinel monitor <name> <host> ...` in a ConfigMap or
    Secret of the program."""
    name = stack.outputs["redisHa"]["masterName"]
    for m in stack.of_kind("ConfigMap") + stack.of_kind("Secret"):
        texts = list((m.get("stringData") or {}).values()) + list((m.get("data") or {}).values())
        if m["kind"] == "Secret":
            texts += [base64.b64decode(v).decode(errors="replace") for v in (m.get("data") or {}).values()]
        for text in texts:
            for line in str(text).splitlines():
                fields = line.split()
                if fields[:3] == ["sentinel", "monitor", name]:
                    return fields[3]
    raise AssertionError("no `sentinel monitor` line in the program's ConfigMaps and Secrets")


@pytest.mark.destructive
def test_every_sentinel_pod_deleted_after_a_failover_comes_back_on_the_new_master(stack: Stack) -> None:
    """The master pod deleted, a new master elected, then all 3 Sentinel pods deleted at
    once: they restart from the sentinel.conf on their state volumes and name the new
    master, not the one the rendered config (the seed) names."""
    seeded = deploy_time_master(stack)
    deployment = stack.outputs["redisHa"]
    limit = (deployment["downAfterMilliseconds"] + deployment["failoverTimeout"]) / 1000 + 15
    figures: dict[str, Any] = {"deploy_time_master": pod_of(seeded), "failovers": []}
    sentinels = sentinel_statefulset(stack)
    with Drill(stack.verify_outputs()) as drill:
        # Until the master is one the seed does not name (at most two deletions: the
        # deploy-time master deleted is never elected again at once).
        after = None
        for _ in range(3):
            before = wait_for("a healthy topology before the deletion", lambda: healthy(stack), timeout=90, interval=1)
            old_pod = pod_of(before)
            old_uid = uid_of(stack, old_pod)
            started = time.monotonic()
            stack.api.delete("v1", "Pod", old_pod, stack.namespace)
            after = wait_for(
                "the Sentinels to agree on a new master",
                lambda b=before: (m := agreed_master(stack)) and m != b and m,
                timeout=limit,
                interval=0.5,
            )
            figures["failovers"].append(
                {"deleted": old_pod, "new_master": pod_of(after), "s": round(time.monotonic() - started, 1)}
            )
            wait_replaced(stack, old_pod, old_uid)
            if after != seeded:
                break
        assert after is not None and after != seeded, figures
        new_master = wait_for("the old pod to rejoin", lambda: healthy(stack), timeout=60, interval=1)
        assert new_master == after, (new_master, after)

        # Every Sentinel pod at once.
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in stack.api.list("v1", "Pod", stack.namespace)}
        pods = [s.name for s in sentinel_nodes(stack)]
        started = time.monotonic()
        for pod in pods:
            stack.api.delete("v1", "Pod", pod, stack.namespace)

        def all_back() -> bool:
            for pod in pods:
                try:
                    if stack.api.get("v1", "Pod", pod, stack.namespace)["metadata"]["uid"] == uids[pod]:
                        return False
                except ApiError:
                    return False
            return statefulset_awaited(stack.api, stack.namespace, sentinels) is not None

        wait_for("every Sentinel pod back and ready", all_back, timeout=180, interval=0.5)
        figures["sentinels_back_ready_s"] = round(time.monotonic() - started, 1)
        agreed = wait_for("the Sentinels to agree again", lambda: agreed_master(stack), timeout=60, interval=0.5)
        figures["sentinels_agree_s"] = round(time.monotonic() - started, 1)
        figures["sentinels_name"] = pod_of(agreed)
    report = drill.report()
    figures["drill"] = {k: report[k] for k in ("seconds", "wait", "plain")}
    # What each Sentinel's start-up found on its state volume.
    figures["start_up"] = {}
    for pod in pods:
        log = stack.kubectl("logs", pod, "-c", "sentinel", timeout=20)
        figures["start_up"][pod] = next((line for line in log.splitlines() if "sentinel-start:" in line), "")
    show("delete-every-sentinel-after-failover", figures)
    assert agreed == after != seeded, figures
    assert sentinel_masters(stack) == {s.name: after for s in sentinel_nodes(stack)}
    assert wait_for("a healthy topology after the drill", lambda: healthy(stack), timeout=90, interval=1) == after
    for pod, line in figures["start_up"].items():
        assert "state found" in line and pod_of(after) in line, (pod, line)
    assert_no_loss(report)


@pytest.mark.destructive
def test_a_rolling_restart_under_two_writers_loses_no_acknowledged_write(stack: Stack) -> None:
    before = wait_for("a healthy topology before the drill", lambda: healthy(stack), timeout=90, interval=1)
    name = redis_statefulset(stack)
    old_revision = stack.api.get("apps/v1", "StatefulSet", name, stack.namespace)["status"]["updateRevision"]
    figures: dict[str, Any] = {"master_before": pod_of(before)}
    with Drill(stack.verify_outputs()) as drill:
        started = time.monotonic()
        # What `kubectl rollout restart` sends: a pod template annotation, its own field manager.
        restarted = {"kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        patch = {"spec": {"template": {"metadata": {"annotations": restarted}}}}
        stack.api.request(
            "PATCH",
            stack.api.path("apps/v1", "StatefulSet", name, stack.namespace),
            params={"fieldManager": "kubectl-rollout"},
            data=json.dumps(patch),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )

        def rolled() -> dict[str, Any] | None:
            status = statefulset_awaited(stack.api, stack.namespace, name)
            return status if status and status["updateRevision"] != old_revision else None

        wait_for(f"the rollout of {name}", rolled, timeout=420, interval=1)
        figures["rollout_s"] = round(time.monotonic() - started, 1)
    report = drill.report()
    after = wait_for("a healthy topology after the rollout", lambda: healthy(stack), timeout=90, interval=1)
    figures["master_after"] = pod_of(after)
    figures["drill"] = {k: report[k] for k in ("seconds", "wait", "plain")}
    show("rolling-restart", figures)
    assert_no_loss(report)


def pdb_status(stack: Stack, name: str) -> dict[str, Any]:
    pdb = stack.api.get("policy/v1", "PodDisruptionBudget", name, stack.namespace)
    status = pdb.get("status", {})
    return status if status.get("observedGeneration") == pdb["metadata"]["generation"] else {}


def evict(stack: Stack, pod: str) -> ApiError | None:
    """POST an Eviction of `pod`; the API error when it is refused, None when granted."""
    try:
        stack.api.request(
            "POST",
            stack.api.path("v1", "Pod", pod, stack.namespace) + "/eviction",
            json={
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod, "namespace": stack.namespace},
            },
        )
    except ApiError as e:
        return e
    return None


@pytest.mark.destructive
def test_the_pdb_refuses_evicting_a_redis_pod_while_another_is_not_ready(stack: Stack) -> None:
    master = wait_for("a healthy topology before the drill", lambda: healthy(stack), timeout=90, interval=1)
    pdb = redis_statefulset(stack)  # the Redis PDB has the StatefulSet's name
    replicas = sorted(pod_of(n.hostname) for n in redis_nodes(stack) if n.hostname != master)
    # All ready: the PDB (maxUnavailable 1) allows one disruption.
    status = wait_for("the PDB to allow one disruption", lambda: pdb_status(stack, pdb).get("disruptionsAllowed") == 1)
    # One replica goes away (deleted, as a crash or a drain elsewhere would): none is allowed now.
    gone_uid = uid_of(stack, replicas[0])
    stack.api.delete("v1", "Pod", replicas[0], stack.namespace)
    status = wait_for(
        "the PDB to count one pod fewer",
        lambda: (s := pdb_status(stack, pdb)) and s.get("disruptionsAllowed") == 0 and s,
        timeout=30,
        interval=0.2,
    )
    refused = evict(stack, replicas[1])
    figures: dict[str, Any] = {"while_one_not_ready": status}
    assert refused is not None, "the eviction was granted while a Redis pod was not ready"
    assert refused.status == 429, refused
    assert "disruption budget" in refused.message, refused.message
    figures["refused"] = f"{refused.status} {refused.message}"
    # Once it is back, the budget allows one again, and an eviction is granted.
    wait_replaced(stack, replicas[0], gone_uid)
    wait_for("the PDB to allow one disruption again", lambda: pdb_status(stack, pdb).get("disruptionsAllowed") == 1)
    evicted_uid = uid_of(stack, replicas[1])
    granted = evict(stack, replicas[1])
    assert granted is None, granted
    figures["granted_when_all_ready"] = True
    wait_replaced(stack, replicas[1], evicted_uid)
    assert wait_for("a healthy topology after the drill", lambda: healthy(stack), timeout=90, interval=1)
    show("pdb-eviction", figures)
