"""`redis-ha up` returns only once what it changed has rolled out.

pulumi-kubernetes' StatefulSet await can report an *update* ready before the
controller has started rolling the pods: it never compares `status.observedGeneration`
(pulumi/pulumi-kubernetes#3329, fixed upstream after the provider this project builds).
So after the engine's `up`, every StatefulSet the update created or changed is read
until the controller has observed its generation and every replica runs the new
revision and is ready, and every Job it created until it completed.

The objects are read with `kubectl` through the credentials the provider used: the
stack's `kubernetes:kubeconfig` (a path or the file's content) and
`kubernetes:context`, else KUBECONFIG / ~/.kube/config as the provider reads them.
kubectl rather than a client library: no Kubernetes client is a dependency of the
toolkit, and kubectl is there wherever a kubeconfig is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Pulumi resource type -> the kubectl resource it is.
KINDS = {"kubernetes:apps/v1:StatefulSet": "statefulset", "kubernetes:batch/v1:Job": "job"}
# The steps after which the object on the cluster is a new generation of it.
CHANGING_OPS = {"create", "update", "replace", "create-replacement"}
DEFAULT_TIMEOUT_S = 600.0


class RolloutError(Exception):
    """What did not roll out (one line)."""


@dataclass(frozen=True, order=True)
class Workload:
    kind: str  # "statefulset" or "job"
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} in namespace {self.namespace}"


@dataclass
class ChangedWorkloads:
    """An `on_event` callback for `Stack.up`: the StatefulSets and Jobs the update changed."""

    found: set[Workload] = field(default_factory=set)

    def __call__(self, event: Any) -> None:
        outputs_event = getattr(event, "res_outputs_event", None)
        if outputs_event is None:
            return
        meta = outputs_event.metadata
        kind = KINDS.get(meta.type)
        op = str(getattr(meta.op, "value", meta.op))
        if kind is None or op not in CHANGING_OPS or meta.new is None:
            return
        metadata = (meta.new.outputs or {}).get("metadata") or {}
        if metadata.get("name"):
            self.found.add(Workload(kind, str(metadata.get("namespace") or "default"), str(metadata["name"])))


def statefulset_pending(obj: Mapping[str, Any]) -> str | None:
    """Why a StatefulSet has not rolled out yet; None once it has."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if observed is None or generation is None or observed < generation:
        return f"generation {generation} not observed yet (observed {observed})"
    replicas = spec.get("replicas", 1)
    counts = {k: status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas")}
    if any(count != replicas for count in counts.values()):
        return f"{replicas} replicas wanted, " + ", ".join(f"{k} {v}" for k, v in counts.items())
    if status.get("currentRevision") != status.get("updateRevision"):
        return f"revision {status.get('currentRevision')} still current, {status.get('updateRevision')} wanted"
    return None


def job_pending(obj: Mapping[str, Any]) -> str | None:
    """Why a Job is not complete yet; None once complete. A failed Job raises."""
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    if (conditions.get("Failed") or {}).get("status") == "True":
        reason = conditions["Failed"].get("message") or conditions["Failed"].get("reason") or "no reason given"
        raise RolloutError(f"job/{obj['metadata']['name']} failed: {reason}")
    if (conditions.get("Complete") or {}).get("status") == "True":
        return None
    return "not complete"


def pending(workload: Workload, obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return "not found"
    return statefulset_pending(obj) if workload.kind == "statefulset" else job_pending(obj)


Reader = Callable[[Workload], "dict[str, Any] | None"]


def wait(
    workloads: set[Workload],
    read: Reader,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Until every workload has rolled out; RolloutError naming what has not after `timeout` s."""
    deadline = clock() + timeout
    left = sorted(workloads)
    while True:
        reasons = {w: pending(w, read(w)) for w in left}
        left = [w for w, reason in reasons.items() if reason is not None]
        if not left:
            return
        if clock() >= deadline:
            detail = "; ".join(f"{w}: {reasons[w]}" for w in left)
            raise RolloutError(f"not rolled out after {timeout:g} s: {detail}")
        sleep(interval)


@contextmanager
def kubectl_reader(config: Mapping[str, str], env: Mapping[str, str] | None = None) -> Iterator[Reader]:
    """A reader of live objects with kubectl and the provider's credentials
    (`config`: the stack's config, `kubernetes:*` keys with plain values)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RolloutError("kubectl is not on PATH: it is needed to wait for the StatefulSets to roll out")
    with tempfile.TemporaryDirectory(prefix="redis-ha-kube-") as tmp:
        args = [kubectl]
        kubeconfig = config.get("kubernetes:kubeconfig")
        if kubeconfig and os.path.isfile(os.path.expanduser(kubeconfig)):
            args += ["--kubeconfig", os.path.expanduser(kubeconfig)]
        elif kubeconfig:
            # The content itself (as the provider accepts it): a private file for kubectl.
            path = os.path.join(tmp, "kubeconfig")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(kubeconfig)
            args += ["--kubeconfig", path]
        if config.get("kubernetes:context"):
            args += ["--context", config["kubernetes:context"]]

        def read(workload: Workload) -> dict[str, Any] | None:
            command = [*args, "get", workload.kind, workload.name, "-n", workload.namespace, "-o", "json"]
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=60, check=False, env=dict(env or os.environ)
            )
            if result.returncode != 0:
                if "NotFound" in result.stderr:
                    return None
                lines = result.stderr.strip().splitlines() or ["no message"]
                raise RolloutError(f"kubectl get {workload.kind}/{workload.name} failed: {lines[-1]}")
            return dict(json.loads(result.stdout))

        yield read


def stack_kubernetes_config(stack: Any) -> dict[str, str]:
    """The stack's `kubernetes:*` config, secrets included (the kubeconfig may be one)."""
    return {key: item.value for key, item in stack.get_all_config().items() if key.startswith("kubernetes:")}


def wait_for_stack(stack: Any, workloads: set[Workload], timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """After `up` of `stack`: every one of `workloads` rolled out, else RolloutError."""
    if not workloads:
        return
    env = {**os.environ, **(getattr(stack.workspace, "env_vars", None) or {})}
    with kubectl_reader(stack_kubernetes_config(stack), env) as read:
        wait(workloads, read, timeout)
