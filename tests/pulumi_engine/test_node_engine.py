"""The prod stack under the real Pulumi engine on the local node, with the provider's
awaits: no `pulumi.com/skipAwait` anywhere.

The built CLI and pulumi-kubernetes provider (conftest.py) run the product's program
inline through the Automation API, against the cluster of tests/k8s with its node stage
(REDIS_HA_K8S_NODE=1; skipped, saying why, without a Ready node). As in tests/k8s: the
Docker e2e's test images imported into the node's containerd and a small maxmemory
(deployment.POD_CONFIG, set as stack config), a hostPath PersistentVolume pre-bound to
every claim the StatefulSets will make (volumes.py; the claims read from a mocked run of
the same settings, in a subprocess so that no mock is left in this process), and, since
there is one node, the program's *required* pod anti-affinity made preferred: the one
resource transform of the test's program (one_node_program), the same change as
deployment.on_one_node.

For each topology, Sentinel first, then Redis Cluster (a stack and namespace each), in
order: a bad value fails `preview` and creates nothing; `up` returns only when every
StatefulSet is ready (and the cluster-create Job complete), then `redis-ha-verify`
passes against the stack outputs; a no-change `preview` and a `refresh` without drift;
(Sentinel) a `maxmemory` change rolled by `up` under the two drill writers, with no
acknowledged write lost, then `preview`/`refresh` again; no password in plain text in
`stack export`; `destroy` leaves no object of the stack (the namespace, and with it the
PVCs, is deleted). Figures are printed on one line (`node engine <topology>: {...}`)
at the end of each topology.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import automation as auto

from redis_ha.engine import last_line, stack_outputs, stack_program, up_and_roll_out
from redis_ha.rollout import RolloutError
from tests.k8s import volumes
from tests.k8s.api import Api, wait_for
from tests.k8s.deployment import (
    NODE_IP,
    POD_CONFIG,
    DeployError,
    Stack,
    cluster_environment,
    healthy,
    host_reachable_outputs,
    import_images,
    job_awaited,
    statefulset_awaited,
)
from tests.support.engine_stack import SECRET_SIG, Engine, new_engine, plain_passwords
from tests.support.k8s_cluster import ROOT, kubectl_env, run_verify
from tests.support.pod_logs import PodLogs
from tests.verify.access import Outputs
from tests.verify.drill import Drill

pytestmark = pytest.mark.k8s

# The topologies, as the k8s suite deploys them (test_pods.py, test_cluster_pods.py).
TOPOLOGIES = {"sentinel": {}, "cluster": {"topology": "cluster"}}
ROLLOUT_TIMEOUT_S = 420.0
# The log lines of a hand-over: redis-start.sh's and fence.sh's, Redis's role changes,
# the Sentinels' events.
HAND_OVER_WORDS = (
    "prestop",
    "hand",
    "fence",
    "master",
    "MASTER",
    "REPLICAOF",
    "switch",
    "failover",
    "sdown",
    "odown",
    "convert",
    "demot",
    "role",
    "SIGTERM",
    "PSYNC",
    "sync",
)


def _preferred_anti_affinity(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """A StatefulSet's required pod anti-affinity made preferred (weight 100): one node."""
    if args.type_ != "kubernetes:apps/v1:StatefulSet":
        return None
    props: dict[str, Any] = dict(args.props)
    spec = dict(props["spec"])
    template = dict(spec["template"])
    pod = dict(template["spec"])
    affinity = dict(pod.get("affinity") or {})
    anti = dict(affinity.get("podAntiAffinity") or {})
    required = anti.pop("requiredDuringSchedulingIgnoredDuringExecution", None)
    if not required:
        return None
    preferred = [{"weight": 100, "podAffinityTerm": term} for term in required]
    anti["preferredDuringSchedulingIgnoredDuringExecution"] = preferred + list(
        anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    )
    affinity["podAntiAffinity"], pod["affinity"] = anti, affinity
    template["spec"], spec["template"], props["spec"] = pod, template, spec
    return pulumi.ResourceTransformResult(props, args.opts)


def one_node_program() -> None:
    """Test only: the product's program (redis_ha.stack.run) with its anti-affinity preferred."""
    pulumi.runtime.register_resource_transform(_preferred_anti_affinity)
    stack_program()()


_CLAIMS_SCRIPT = """
import json, sys
from tests.k8s.deployment import prod_stack
manifests, _ = prod_stack(sys.argv[1], json.loads(sys.argv[2]))
print(json.dumps([m for m in manifests if m["kind"] == "StatefulSet"]))
"""


def statefulsets_of(namespace: str, variant: dict[str, str]) -> list[dict[str, Any]]:
    """The StatefulSets a mocked run of the same settings makes (their claim templates)."""
    result = subprocess.run(
        [sys.executable, "-c", _CLAIMS_SCRIPT, namespace, json.dumps(variant)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module", params=list(TOPOLOGIES))
def engine(
    request: pytest.FixtureRequest, pulumi_bin: Path, node_cluster: Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    api, topology = node_cluster, str(request.param)
    variant = TOPOLOGIES[topology]
    env = kubectl_env(api.state)
    try:
        import_images(api, env)
    except DeployError as error:
        pytest.fail(str(error), pytrace=False)
    namespace = f"rh-engine-{topology[:4]}-{secrets.token_hex(3)}"
    made = volumes.create_for_claims(api, namespace, statefulsets_of(namespace, variant))
    tmp = tmp_path_factory.mktemp(f"node-engine-{topology}")
    settings = {**POD_CONFIG, **variant, "namespace": namespace}
    eng: Engine | None = None
    try:
        eng = new_engine(tmp, pulumi_bin, api, f"prod-node-{topology}", one_node_program, settings)
        eng.results.update(namespace=namespace, kubectl_env=env, topology=topology, figures={"topology": topology})
        with cluster_environment(env):
            yield eng
    finally:
        if eng is not None:
            print(f"node engine {topology}: {json.dumps(eng.results['figures'], sort_keys=True)}")
            eng.remove()
        (tmp / "outputs.json").unlink(missing_ok=True)  # it holds the passwords
        if api.exists("v1", "Namespace", namespace):
            api.delete("v1", "Namespace", namespace)
        volumes.delete(api, made)


def figures(engine: Engine) -> dict[str, Any]:
    return dict(engine.results["figures"])


def record(engine: Engine, **values: Any) -> None:
    engine.results["figures"].update(values)


def namespace(engine: Engine) -> str:
    return str(engine.results["namespace"])


def statefulset_names(engine: Engine) -> list[str]:
    return [s["metadata"]["name"] for s in engine.api.list("apps/v1", "StatefulSet", namespace(engine))]


def timed_up(engine: Engine, what: str) -> auto.UpResult:
    """`up` as `redis-ha up` runs it (redis_ha.engine.up_and_roll_out: the engine's `up`,
    then the wait for what it changed to roll out), its output kept for a failure's
    message; the seconds recorded as `what`, the engine's own share as `what`_engine."""
    lines: list[str] = []
    started = time.monotonic()
    try:
        result, rolled = up_and_roll_out(engine.stack(), ROLLOUT_TIMEOUT_S, on_output=lines.append, color="never")
    except auto.CommandError as error:
        pytest.fail(f"up failed: {last_line(error)}\n{''.join(lines[-40:])}", pytrace=False)
    except RolloutError as error:
        pytest.fail(f"up: {error}", pytrace=False)
    record(engine, **{what: round(time.monotonic() - started, 1)})
    # The engine prints its own duration ("Duration: 4s") before the rollout wait.
    durations = [line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("Duration:")]
    record(engine, **{f"{what}_engine": durations[-1] if durations else "?"})
    record(engine, **{f"{what}_waited_for": [f"{w.kind}/{w.name}" for w in rolled]})
    engine.results["last_up"] = "".join(lines[-60:])
    return result


def changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """OpType -> count, without zero counts."""
    return {str(getattr(op, "value", op)): n for op, n in (summary or {}).items() if n}


def write_outputs(engine: Engine) -> Path:
    """The stack outputs (secrets shown) with host-reachable endpoints, in a 0600 file."""
    path = engine.project.parent / "outputs.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(host_reachable_outputs(stack_outputs(engine.stack()))))
    return path


def test_a_bad_value_fails_preview_naming_the_key_and_creates_nothing(engine: Engine) -> None:
    engine.set_config("quorum", "5")
    try:
        with pytest.raises(auto.CommandError) as raised:
            engine.stack().preview(color="never")
    finally:
        engine.set_config("quorum", "2")
    line = last_line(raised.value)
    assert line.startswith("error: ") and "redis-ha:quorum" in line, line
    assert not engine.api.exists("v1", "Namespace", namespace(engine)), "preview created the namespace"
    assert not engine.api.list("apps/v1", "StatefulSet", namespace(engine))


def test_up_returns_with_every_statefulset_ready_then_verify_passes(engine: Engine) -> None:
    result = timed_up(engine, "up_s")
    # Right when `up` returns, before any wait of the test's own: the provider awaited them.
    names, ns = statefulset_names(engine), namespace(engine)
    assert len(names) == (2 if engine.results["topology"] == "sentinel" else 1), names
    not_ready = [n for n in names if statefulset_awaited(engine.api, ns, n) is None]
    assert not not_ready, f"up returned before these StatefulSets were ready: {not_ready}"
    jobs = [j["metadata"]["name"] for j in engine.api.list("batch/v1", "Job", ns)]
    assert len(jobs) == (1 if engine.results["topology"] == "cluster" else 0), jobs
    not_complete = [j for j in jobs if job_awaited(engine.api, ns, j) is None]
    assert not not_complete, f"up returned before these Jobs were complete: {not_complete}"
    assert changes(result.summary.resource_changes).get("create", 0) > 0
    for kind in ("StatefulSet", "Service", "Secret", "ConfigMap"):
        api_version = "apps/v1" if kind == "StatefulSet" else "v1"
        for obj in engine.api.list(api_version, kind, namespace(engine)):
            assert "pulumi.com/skipAwait" not in (obj["metadata"].get("annotations") or {}), obj["metadata"]["name"]
    engine.results["up"] = True
    outputs = write_outputs(engine)
    engine.results["outputs"] = outputs
    started = time.monotonic()
    verify = run_verify(outputs, engine.results["kubectl_env"], NODE_IP)
    record(engine, verify_s=round(time.monotonic() - started, 1))
    record(engine, up_to_verified_s=round(figures(engine)["up_s"] + figures(engine)["verify_s"], 1))
    summary = [line for line in verify.stdout.splitlines() if "properties hold" in line]
    record(engine, verify=summary[-1] if summary else "no summary")
    print(verify.stdout[-6000:])
    assert verify.returncode == 0, verify.stdout[-4000:] + verify.stderr[-1000:]
    assert "properties hold, 0 do not" in verify.stdout


def no_change_preview_and_refresh(engine: Engine, label: str) -> None:
    started = time.monotonic()
    preview = engine.stack().preview(color="never")
    record(engine, **{f"preview_{label}_s": round(time.monotonic() - started, 1)})
    assert set(changes(preview.change_summary)) == {"same"}, preview.change_summary
    refresh = engine.stack().refresh(color="never")
    drift = {op: n for op, n in changes(refresh.summary.resource_changes).items() if op != "same"}
    assert not drift, f"refresh found drift: {drift}"


def test_preview_after_up_shows_no_change_and_refresh_no_drift(engine: Engine) -> None:
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    no_change_preview_and_refresh(engine, "after_up")


def test_a_maxmemory_change_rolls_redis_under_two_writers_losing_nothing(engine: Engine) -> None:
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    if engine.results["topology"] != "sentinel":
        pytest.skip("the drill writers reach the master through the Sentinels: Sentinel topology only")
    ns, api = namespace(engine), engine.api
    redis_sts = next(n for n in statefulset_names(engine) if n.endswith("-redis"))
    before = api.get("apps/v1", "StatefulSet", redis_sts, ns)["status"]["updateRevision"]
    engine.set_config("maxmemory", "200mb")
    outputs = Outputs.load(engine.results["outputs"])
    logs = PodLogs(api, ns, engine.results["kubectl_env"], engine.project.parent / "pod-logs")
    with logs, Drill(outputs) as drill:
        time.sleep(3)  # the writers are writing before the change starts
        started = time.monotonic()
        result = timed_up(engine, "rolling_up_s")
        at_return = statefulset_awaited(api, ns, redis_sts)
        engine.results["rolled_when_up_returned"] = at_return is not None and at_return["updateRevision"] != before

        # The writers keep writing until the rollout is over, whether or not `up` waited for it.
        def rolled() -> dict[str, Any] | None:
            status = statefulset_awaited(api, ns, redis_sts)
            return status if status and status["updateRevision"] != before else None

        wait_for(f"the rollout of {redis_sts}", rolled, timeout=420, interval=1)
        record(engine, rollout_s=round(time.monotonic() - started, 1))
    report = drill.report()
    assert changes(result.summary.resource_changes).get("update", 0) >= 1
    gaps = {kind: report[kind]["longest_gap_s"] for kind in ("wait", "plain")}
    record(
        engine,
        rolling_writes={k: {"acknowledged": report[k]["acknowledged"], "lost": report[k]["lost"]} for k in gaps},
        rolling_longest_gap_s=gaps,
    )
    print(f"rolling up drill: {json.dumps({k: report[k] for k in ('seconds', 'wait', 'plain')})}")
    if any(report[kind]["lost"] for kind in ("wait", "plain")):
        # Who was master when, as the pods (the rolled ones included) and the Sentinels said.
        print("\n".join(logs.lines(*HAND_OVER_WORDS)[-300:]))
    for kind in ("wait", "plain"):
        assert report[kind]["lost"] == 0, report
        assert report[kind]["acknowledged_after_operation"] >= 50, report
    # The helpers' view of this namespace: Sentinels agree, the master has 2 replicas.
    doc = json.loads(Path(engine.results["outputs"]).read_text())
    view = Stack(api, ns, [], doc, engine.results["outputs"], engine.results["kubectl_env"])
    assert wait_for("a healthy topology after the rolling up", lambda: healthy(view), timeout=60, interval=1)
    engine.results["rolled"] = True


def test_the_rolling_up_returned_only_after_the_rollout(engine: Engine) -> None:
    """The provider's own await may return mid-rollout (pulumi-kubernetes#3329, see
    redis_ha/rollout.py); `redis-ha up` must not: read the moment it returned."""
    if not engine.results.get("rolled"):
        pytest.skip("the rolling up did not run")
    assert engine.results["rolled_when_up_returned"], f"up returned mid-rollout: {engine.results['last_up']}"
    assert any(w.endswith("-redis") for w in figures(engine)["rolling_up_s_waited_for"]), figures(engine)


def test_preview_after_the_rolling_up_shows_no_change_and_refresh_no_drift(engine: Engine) -> None:
    if not engine.results.get("rolled"):
        pytest.skip("the rolling up did not run")
    no_change_preview_and_refresh(engine, "after_roll")


def test_stack_export_holds_no_password_in_plain_text(engine: Engine) -> None:
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    text = engine.export_text()
    assert SECRET_SIG in text
    assert not plain_passwords(text, engine.passwords), "a password (or its hash) in plain text in the stack state"


def test_destroy_leaves_no_object_of_the_stack(engine: Engine) -> None:
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    deployment = engine.stack().export_stack().deployment or {}
    objects = [
        (r["outputs"]["apiVersion"], r["outputs"]["kind"], r["outputs"]["metadata"])
        for r in deployment.get("resources", [])
        if r.get("custom") and r["type"].startswith("kubernetes:") and "apiVersion" in r.get("outputs", {})
    ]
    assert objects
    started = time.monotonic()
    engine.stack().destroy(color="never")
    record(engine, destroy_s=round(time.monotonic() - started, 1))
    engine.results["destroyed"] = True
    left = [
        f"{kind}/{meta['name']}"
        for api_version, kind, meta in objects
        if engine.api.exists(api_version, kind, meta["name"], meta.get("namespace"))
    ]
    assert not left, f"left after destroy: {left}"
    # The namespace went, and with it every PVC (README / docs/operations.md "Destroy").
    assert not engine.api.exists("v1", "Namespace", namespace(engine))
    left_state = (engine.stack().export_stack().deployment or {}).get("resources") or []
    assert not [r["urn"] for r in left_state if r["type"] != "pulumi:pulumi:Stack"], left_state
