"""A prod variant of the stack deployed on the local node, for the k8s tests and
bench/k8s.py.

`deployed(api, workdir, ...)` is a context manager: it imports the test images into the
node's containerd (scripts/k8s/images.sh), runs the prod program under Pulumi's mocks
with the test images and a small maxmemory (plus any variant settings, e.g.
`topology: cluster`), makes the required pod anti-affinity preferred (one node),
creates a restricted namespace and a hostPath PersistentVolume per claim
(volumes.py), applies every manifest by server-side apply and awaits the workloads as
pulumi-kubernetes does. Inside the block, KUBECONFIG and PATH name the cluster's own
kubectl (testinfra's kubectl:// backend and the verify suite's `kubectl exec` use
them) and `*.cluster.local` resolves through the node's CoreDNS (cluster_dns.py). On
the way out it deletes the namespace, waits for its pods to go, and deletes the
volumes.

`local_cluster()` is for scripts: the cluster of REDIS_HA_K8S_STATE or of the default
state dir when one is running there, otherwise one started by scripts/k8s/start.sh
(with its node stage) and stopped by stop.sh at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.k8s import cluster_dns, volumes
from tests.k8s.api import Api, ApiError, wait_for
from tests.support.k8s_cluster import (
    FIELD_MANAGER,
    SCRIPTS,
    create_restricted_namespace,
    delete_namespace,
    env_file,
    kubectl_env,
    manifests_of,
)
from tests.support.program import run_program, stack_config
from tests.verify.access import Node, Outputs

# The Docker e2e's test images (tests/images/build.sh; tests/e2e/conftest.py).
REDIS_IMAGE = "redis-ha-test/redis:7.0"
EXPORTER_IMAGE = "redis-ha-test/redis-exporter:1.45"
POD_CONFIG = {
    "redisImage": REDIS_IMAGE,
    "exporterImage": EXPORTER_IMAGE,
    "engine": "redis",
    "engineVersion": "7.0",  # the Debian redis in the test image
    # 256 MiB + headroom: 512Mi a Redis pod, not 3200Mi (the prod default of 2gb).
    "maxmemory": "256mb",
}
# How long pulumi-kubernetes would wait is 10 minutes; pods here are up in well under one.
AWAIT_SECONDS = float(os.environ.get("REDIS_HA_K8S_AWAIT", "240"))
NODE_IP = os.environ.get("K8S_NODE_IP", "10.89.0.1")  # scripts/k8s/common.sh
DEFAULT_STATE = Path(os.environ.get("TMPDIR", "/tmp")) / "redis-ha-k8s"  # scripts/k8s/common.sh


class DeployError(Exception):
    """The deployment could not be made (images, apply, await): the message says why."""


@dataclass
class Stack:
    api: Api
    namespace: str
    manifests: list[dict[str, Any]]
    outputs: dict[str, Any]
    outputs_path: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    relaxed: list[str] = field(default_factory=list)  # StatefulSets whose anti-affinity was made preferred
    program_statefulsets: list[str] = field(default_factory=list)
    applied_at: float = 0.0  # time.monotonic() when the first manifest was applied

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


def prod_stack(namespace: str, variant: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    config = {**stack_config("prod"), **POD_CONFIG, **(variant or {}), "namespace": namespace}
    run = run_program(config, stack="prod")
    return manifests_of(run), run.outputs


def prod_sentinel_stack(namespace: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return prod_stack(namespace)


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
    """The stack outputs with every Redis node's, Sentinel's and cluster node's own
    hostname as its host endpoint: the host resolves it through CoreDNS, so clients on
    the host follow a pod to its new address after a restart."""
    doc = json.loads(json.dumps(outputs))
    for node in doc["redisHa"]["nodes"]:
        if node["kind"] in ("redis", "sentinel", "cluster"):
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
        raise DeployError(f"scripts/k8s/images.sh: {lines[-1] if lines else result.returncode}")


def wait_pods_gone(api: Api, namespace: str, timeout: float = 120) -> None:
    wait_for(f"the pods of {namespace} to go", lambda: not api.list("v1", "Pod", namespace), timeout=timeout)


@contextlib.contextmanager
def cluster_environment(env: dict[str, str]) -> Iterator[None]:
    """KUBECONFIG and PATH of `env` in os.environ, and cluster.local through CoreDNS."""
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "PATH")}
    os.environ["KUBECONFIG"], os.environ["PATH"] = env["KUBECONFIG"], env["PATH"]
    cluster_dns.install(NODE_IP)
    try:
        yield
    finally:
        cluster_dns.uninstall()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def deployed(
    api: Api, workdir: Path, variant: dict[str, str] | None = None, prefix: str = "rh-pods"
) -> Iterator[Stack]:
    """The prod stack (with `variant`'s settings) running in a fresh namespace, awaited;
    `stack.timings` has apply_to_healthy_s and namespace_to_healthy_s."""
    env = kubectl_env(api.state)
    import_images(api, env)
    namespace = f"{prefix}-{secrets.token_hex(3)}"
    program, outputs = prod_stack(namespace, variant)
    manifests, relaxed = on_one_node(program)
    workdir.mkdir(parents=True, exist_ok=True)
    outputs_path = workdir / f"outputs-{namespace}.json"
    outputs_path.write_text(json.dumps(host_reachable_outputs(outputs)))
    os.chmod(outputs_path, 0o600)
    stack = Stack(api, namespace, manifests, outputs, outputs_path, env)
    stack.relaxed = relaxed
    stack.program_statefulsets = [m["metadata"]["name"] for m in program if m["kind"] == "StatefulSet"]
    started = time.monotonic()
    create_restricted_namespace(api, namespace)
    made = volumes.create_for_claims(api, namespace, manifests)
    with cluster_environment(env):
        try:
            applied = stack.applied_at = time.monotonic()
            for m in manifests:
                try:
                    api.apply(m, field_manager=FIELD_MANAGER, force=True)
                except ApiError as e:
                    raise DeployError(f"server-side apply of {m['kind']}/{m['metadata']['name']}: {e}") from None
            stack.timings["apply_to_healthy_s"] = await_workloads(stack)
            stack.timings["apply_started_s"] = applied - started
            stack.timings["namespace_to_healthy_s"] = time.monotonic() - started
            print(f"k8s pods: {namespace} healthy: {json.dumps(stack.timings)}")
            yield stack
        finally:
            api.delete("v1", "Namespace", namespace)
            try:
                wait_pods_gone(api, namespace)
            finally:
                delete_namespace(api, namespace)
                volumes.delete(api, made)
                with contextlib.suppress(OSError):
                    outputs_path.unlink()


# --- what runs ----------------------------------------------------------------------


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


def pod_of(hostname: str) -> str:
    return hostname.split(".", 1)[0]


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


def sentinel_statefulset(stack: Stack) -> str:
    return next(
        s["metadata"]["name"] for s in stack.of_kind("StatefulSet") if s["metadata"]["name"].endswith("-sentinel")
    )


# --- a cluster for scripts -----------------------------------------------------------


def _running(state: Path) -> Api | None:
    if not (state / "env").exists():
        return None
    try:
        api = Api(env_file(state)["K8S_API"], state)
    except (KeyError, OSError):
        return None
    return api if api.ready() else None


@contextlib.contextmanager
def local_cluster() -> Iterator[tuple[Api, bool]]:
    """(the Api, whether this call started it): the cluster of REDIS_HA_K8S_STATE or the
    default state dir when it is running, else start.sh (node stage) ... stop.sh."""
    existing = os.environ.get("REDIS_HA_K8S_STATE")
    state = Path(existing) if existing else DEFAULT_STATE
    api = _running(state)
    if api is not None:
        yield api, False
        return
    if existing:
        raise DeployError(f"REDIS_HA_K8S_STATE={existing}: the apiserver there is not ready")
    env = {**os.environ, "K8S_STATE": str(state), "K8S_NODE": "1"}
    try:
        for script in ("build.sh", "start.sh"):
            result = subprocess.run(
                ["nice", "-n", "19", "bash", str(SCRIPTS / script)], env=env, capture_output=True, text=True
            )
            if result.returncode != 0:
                lines = (result.stderr or result.stdout).strip().splitlines()
                raise DeployError(f"scripts/k8s/{script}: {lines[-1] if lines else result.returncode}")
        api = _running(state)
        if api is None:
            raise DeployError("start.sh finished but the apiserver is not ready")
        yield api, True
    finally:
        result = subprocess.run(["bash", str(SCRIPTS / "stop.sh")], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DeployError(f"scripts/k8s/stop.sh: {(result.stderr or result.stdout).strip()[-500:]}")
