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
pod deleted, a rolling restart under two writers, an eviction the PDB refuses.

Host processes (the drill's writers, the verification suite's Sentinel-aware clients)
resolve the hostnames Sentinel announces through the node's CoreDNS
(tests/k8s/cluster_dns.py), and reach the pods on the CNI bridge.

Skipped when the cluster has no Ready node (start.sh without its node stage).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.k8s import cluster_dns, volumes
from tests.k8s.api import Api, ApiError, wait_for
from tests.k8s.conftest import ROOT, SCRIPTS, kubectl_env
from tests.k8s.test_node import ready_nodes
from tests.k8s.test_server_side_apply import FIELD_MANAGER, create_restricted_namespace, delete_namespace, manifests_of
from tests.support.program import run_program, stack_config
from tests.verify.access import Node, Outputs
from tests.verify.drill import Drill

pytestmark = pytest.mark.k8s

# The Docker e2e's test images (tests/images/build.sh; tests/e2e/conftest.py).
REDIS_IMAGE = "redis-ha-test/redis:7.0"
EXPORTER_IMAGE = "redis-ha-test/redis-exporter:1.45"
POD_CONFIG = {
    "redisImage": REDIS_IMAGE,
    "exporterImage": EXPORTER_IMAGE,
    "redisVersion": "7.0",  # the Debian redis in the test image
    # 256 MiB + headroom: 512Mi a Redis pod, not 3200Mi (the prod default of 2gb).
    "maxmemory": "256mb",
}
# How long pulumi-kubernetes would wait is 10 minutes; pods here are up in well under one.
AWAIT_SECONDS = float(os.environ.get("REDIS_HA_K8S_AWAIT", "240"))
NODE_IP = os.environ.get("K8S_NODE_IP", "10.89.0.1")  # scripts/k8s/common.sh
# The verification suite's host-side clients resolve cluster.local through CoreDNS.
VERIFY_PLUGIN = ["-p", "tests.k8s.cluster_dns"]


# --- deploying -------------------------------------------------------------------------


@dataclass
class Stack:
    api: Api
    namespace: str
    manifests: list[dict[str, Any]]
    outputs: dict[str, Any]
    outputs_path: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def verify_outputs(self) -> Outputs:
        return Outputs.load(self.outputs_path)

    def kubectl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            ["kubectl", "-n", self.namespace, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def prod_sentinel_stack(namespace: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    config = {**stack_config("prod"), **POD_CONFIG, "namespace": namespace}
    run = run_program(config, stack="prod")
    return manifests_of(run), run.outputs


def on_one_node(manifests: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifests with every StatefulSet's *required* pod anti-affinity made preferred
    (weight 100), and the names of the StatefulSets changed. The program requires one
    Redis pod and one Sentinel per Kubernetes node (one node failure is one lost member);
    this cluster has one node, where only the first pod of each would be scheduled
    ("didn't match pod anti-affinity rules"). Nothing else changes."""
    out, changed = json.loads(json.dumps(manifests)), []
    for m in out:
        if m["kind"] != "StatefulSet":
            continue
        anti = m["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
        required = anti.pop("requiredDuringSchedulingIgnoredDuringExecution", None)
        if required:
            preferred = [{"weight": 100, "podAffinityTerm": term} for term in required]
            anti["preferredDuringSchedulingIgnoredDuringExecution"] = preferred + anti.get(
                "preferredDuringSchedulingIgnoredDuringExecution", []
            )
            changed.append(m["metadata"]["name"])
    return out, changed


def host_reachable_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """The stack outputs with every Redis node's and Sentinel's own hostname as its host
    endpoint: the host resolves it through CoreDNS, so clients on the host follow a pod
    to its new address after a restart."""
    doc = json.loads(json.dumps(outputs))
    for node in doc["redisHa"]["nodes"]:
        if node["kind"] in ("redis", "sentinel"):
            node["hostEndpoint"] = f"{node['host']}:{node['port']}"
    return doc


def statefulset_awaited(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    """pulumi-kubernetes' StatefulSet await: the controller saw the spec, every replica
    is ready, and the rollout is over (currentRevision == updateRevision)."""
    sts = api.get("apps/v1", "StatefulSet", name, namespace)
    status, replicas = sts.get("status", {}), sts["spec"]["replicas"]
    done = (
        status.get("observedGeneration") == sts["metadata"]["generation"]
        and status.get("readyReplicas", 0) == replicas
        and status.get("updatedReplicas", 0) == replicas
        and status.get("currentRevision") == status.get("updateRevision")
    )
    return status if done else None


def job_awaited(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    status = api.get("batch/v1", "Job", name, namespace).get("status", {})
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if conditions.get("Failed") == "True":
        raise AssertionError(f"Job {name} failed: {status}")
    return status if conditions.get("Complete") == "True" else None


def diagnostics(stack: Stack) -> str:
    """Pod phases and container states, the namespace's events, and the last lines of
    every container's log (the previous instance's too, after a restart)."""
    api, ns = stack.api, stack.namespace
    lines = ["--- pods"]
    for pod in api.list("v1", "Pod", ns):
        status = pod.get("status", {})
        lines.append(f"{pod['metadata']['name']}: {status.get('phase')} ip={status.get('podIP')}")
        for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
            lines.append(f"  {c['name']}: ready={c.get('ready')} restarts={c.get('restartCount')} {c.get('state')}")
    lines.append("--- events")
    events = sorted(api.list("v1", "Event", ns), key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    for e in events[-60:]:
        obj = e["involvedObject"]
        lines.append(f"{obj['kind']}/{obj['name']}: {e.get('type')} {e.get('reason')}: {e.get('message', '')[:300]}")
    lines.append("--- logs")
    for pod in api.list("v1", "Pod", ns):
        spec = pod["spec"]
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            for previous in (False, True):
                args = ["logs", pod["metadata"]["name"], "-c", c["name"], "--tail", "25"]
                try:
                    text = stack.kubectl(*args, *(["--previous"] if previous else []), timeout=20)
                except (AssertionError, subprocess.TimeoutExpired) as e:
                    text = "" if previous else f"(no log: {e})"
                if text:
                    lines.append(f"[{pod['metadata']['name']}/{c['name']}{' previous' if previous else ''}]")
                    lines += ["  " + line for line in text.splitlines()]
    return "\n".join(lines)


def await_workloads(stack: Stack, timeout: float = AWAIT_SECONDS) -> float:
    """Seconds until every StatefulSet and Job is what pulumi-kubernetes waits for; on a
    timeout, fails with the diagnostics."""
    started = time.monotonic()
    try:
        for sts in stack.of_kind("StatefulSet"):
            left = max(1.0, timeout - (time.monotonic() - started))
            wait_for(
                f"StatefulSet {sts['metadata']['name']} ready",
                lambda n=sts["metadata"]["name"]: statefulset_awaited(stack.api, stack.namespace, n),
                timeout=left,
                interval=1,
            )
        for job in stack.of_kind("Job"):
            left = max(1.0, timeout - (time.monotonic() - started))
            wait_for(
                f"Job {job['metadata']['name']} complete",
                lambda n=job["metadata"]["name"]: job_awaited(stack.api, stack.namespace, n),
                timeout=left,
                interval=1,
            )
    except AssertionError as e:
        report = diagnostics(stack)
        print(report)
        raise AssertionError(f"{e}\n{report[-6000:]}") from None
    return time.monotonic() - started


def import_images(api: Api, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPTS / "images.sh"), REDIS_IMAGE, EXPORTER_IMAGE],
        env={**env, "K8S_STATE": str(api.state)},
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        pytest.fail(f"scripts/k8s/images.sh: {lines[-1] if lines else result.returncode}", pytrace=False)


def wait_pods_gone(api: Api, namespace: str, timeout: float = 120) -> None:
    wait_for(f"the pods of {namespace} to go", lambda: not api.list("v1", "Pod", namespace), timeout=timeout)


@pytest.fixture(scope="module")
def stack(k8s: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not ready_nodes(k8s):
        pytest.skip("no Ready node: start.sh ran without its node stage (REDIS_HA_K8S_NODE=1 runs it)")
    env = kubectl_env(k8s.state)
    import_images(k8s, env)
    namespace = f"rh-pods-{secrets.token_hex(3)}"
    program, outputs = prod_sentinel_stack(namespace)
    manifests, relaxed = on_one_node(program)
    # The program's own spread, which a one-node cluster cannot meet (see on_one_node).
    assert sorted(relaxed) == sorted(s["metadata"]["name"] for s in program if s["kind"] == "StatefulSet"), relaxed
    outputs_path = tmp_path_factory.mktemp("k8s-pods") / "outputs.json"
    outputs_path.write_text(json.dumps(host_reachable_outputs(outputs)))
    os.chmod(outputs_path, 0o600)
    deployed = Stack(k8s, namespace, manifests, outputs, outputs_path, env)
    started = time.monotonic()
    create_restricted_namespace(k8s, namespace)
    made = volumes.create_for_claims(k8s, namespace, manifests)
    with pytest.MonkeyPatch.context() as patch:
        # testinfra's kubectl:// backend and the verify suite's `kubectl exec` use these.
        patch.setenv("KUBECONFIG", env["KUBECONFIG"])
        patch.setenv("PATH", env["PATH"])
        cluster_dns.install(NODE_IP)
        try:
            for m in manifests:
                try:
                    k8s.apply(m, field_manager=FIELD_MANAGER, force=True)
                except ApiError as e:
                    pytest.fail(f"server-side apply of {m['kind']}/{m['metadata']['name']}: {e}", pytrace=False)
            deployed.timings["apply_to_healthy_s"] = await_workloads(deployed)
            deployed.timings["namespace_to_healthy_s"] = time.monotonic() - started
            print(f"k8s pods: {namespace} healthy: {json.dumps(deployed.timings)}")
            yield deployed
        finally:
            cluster_dns.uninstall()
            k8s.delete("v1", "Namespace", namespace)
            try:
                wait_pods_gone(k8s, namespace)
            finally:
                delete_namespace(k8s, namespace)
                volumes.delete(k8s, made)


# --- what runs -------------------------------------------------------------------------


def redis_nodes(stack: Stack) -> list[Node]:
    outputs = stack.verify_outputs()
    return [Node(spec, outputs) for spec in outputs.nodes("redis")]


def sentinel_nodes(stack: Stack) -> list[Node]:
    outputs = stack.verify_outputs()
    return [Node(spec, outputs) for spec in outputs.nodes("sentinel")]


def sentinel_masters(stack: Stack) -> dict[str, str]:
    """Sentinel pod -> the master hostname it names (or its error)."""
    name = stack.outputs["redisHa"]["masterName"]
    answers = {}
    for sentinel in sentinel_nodes(stack):
        try:
            reply = sentinel.cli("sentinel-client", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).splitlines()
        except AssertionError as e:  # the pod is not there (yet): kubectl exec failed
            reply = [str(e)]
        answers[sentinel.name] = reply[0] if len(reply) == 2 else f"no answer: {reply}"
    return answers


def agreed_master(stack: Stack) -> str | None:
    answers = set(sentinel_masters(stack).values())
    return answers.pop() if len(answers) == 1 and not next(iter(answers)).startswith("no answer") else None


def replication(stack: Stack) -> dict[str, dict[str, str]]:
    return {n.hostname: n.info("admin", "replication") for n in redis_nodes(stack)}


def healthy(stack: Stack, old_master: str | None = None) -> str | None:
    """The master hostname when the Sentinels agree on it (and it is not `old_master`),
    it is master with 2 connected replicas, and both replicas follow it with the link up."""
    master = agreed_master(stack)
    if master is None or master == old_master:
        return None
    try:
        info = replication(stack)
    except AssertionError:  # a pod is not there (yet): kubectl exec failed
        return None
    if info.get(master, {}).get("role") != "master" or info[master].get("connected_slaves") != "2":
        return None
    for host, replica in info.items():
        if host == master:
            continue
        if replica.get("role") != "slave" or replica.get("master_host") != master:
            return None
        if replica.get("master_link_status") != "up":
            return None
    return master


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
    env = {**stack.env, "REDIS_HA_K8S_DNS": NODE_IP, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tests.verify.cli", "--outputs", str(stack.outputs_path), "--", *VERIFY_PLUGIN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    stack.timings["verify_s"] = time.monotonic() - started
    print(result.stdout[-8000:])
    print(result.stderr[-2000:])
    assert result.returncode == 0, result.stdout[-4000:]
    assert "properties hold, 0 do not" in result.stdout


# --- drills through Kubernetes ---------------------------------------------------------


def pod_of(hostname: str) -> str:
    return hostname.split(".", 1)[0]


def show(name: str, figures: dict[str, Any]) -> None:
    print(f"k8s drill {name}: {json.dumps(figures, sort_keys=True)}")


def assert_no_loss(report: dict[str, Any]) -> None:
    for kind in ("wait", "plain"):
        assert report[kind]["lost"] == 0, report
        # The writers got through again after the operation: a drill that wrote nothing proves nothing.
        assert report[kind]["acknowledged_after_operation"] >= 50, report


def wait_replaced(stack: Stack, pod: str, old_uid: str, timeout: float = 180) -> None:
    """Until the StatefulSet made `pod` again (a new uid) and every replica is ready."""

    def replaced() -> bool:
        try:
            uid = stack.api.get("v1", "Pod", pod, stack.namespace)["metadata"]["uid"]
        except ApiError:
            return False
        return uid != old_uid and statefulset_awaited(stack.api, stack.namespace, redis_statefulset(stack)) is not None

    wait_for(f"{pod} back and every Redis pod ready", replaced, timeout=timeout, interval=1)


def uid_of(stack: Stack, pod: str) -> str:
    return str(stack.api.get("v1", "Pod", pod, stack.namespace)["metadata"]["uid"])


def redis_statefulset(stack: Stack) -> str:
    return next(s["metadata"]["name"] for s in stack.of_kind("StatefulSet") if s["metadata"]["name"].endswith("-redis"))


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
