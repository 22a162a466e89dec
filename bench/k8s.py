"""The prod Sentinel variant on the local Kubernetes (scripts/k8s), measured under the
two writers of tests/verify/drill.py (one acknowledging after `WAIT 1`, one after the
plain reply, both through Sentinel discovery resolved by the node's CoreDNS).

- deploy: server-side apply of every manifest to the StatefulSets ready (what
  pulumi-kubernetes awaits), and to verified healthy (a master with 2 replicas, link
  up, and all 3 Sentinels naming it with 2 replicas and 2 other Sentinels known);
- baseline: a bare `SENTINEL FAILOVER` (no hand-over), its write gap and losses;
- unplanned failover, `--kills` (3) times: the master pod deleted (graceful, so its
  preStop hand-over runs); delete -> the Sentinels agree on a new master, and delete
  -> the first write acknowledged after they agree (polled: every Sentinel read is a
  `kubectl exec`, so both are upper bounds to about 1 s); the longest write gap;
- rolling restart of the Redis StatefulSet (`kubectl rollout restart`'s patch): its
  duration, write gap and lost writes of both writers.

It uses the cluster of REDIS_HA_K8S_STATE or the default state dir when one is running,
else starts one (scripts/k8s/start.sh with its node stage) and stops it at the end
(stop.sh, which checks nothing is left behind).

    python bench/k8s.py [--kills 3]      -> bench/results/k8s.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import ROOT, summary, table, write

sys.path.insert(0, str(ROOT))

from tests.k8s.api import wait_for  # noqa: E402
from tests.k8s.deployment import (  # noqa: E402
    Stack,
    agreed_master,
    deployed,
    healthy,
    local_cluster,
    pod_of,
    redis_statefulset,
    sentinel_nodes,
    statefulset_awaited,
    uid_of,
    wait_replaced,
)
from tests.support.k8s_cluster import ready_nodes  # noqa: E402
from tests.verify.drill import Drill  # noqa: E402


def _row(report: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {k: report[kind][k] for k in ("acknowledged", "lost", "errors", "longest_gap_s")}
        for kind in ("wait", "plain")
    }


def sentinels_complete(stack: Stack) -> bool:
    name = stack.outputs["redisHa"]["masterName"]
    for sentinel in sentinel_nodes(stack):
        lines = sentinel.cli("sentinel-client", "SENTINEL", "MASTER", name).splitlines()
        state = dict(zip(lines[0::2], lines[1::2], strict=False))
        if state.get("num-slaves") != "2" or state.get("num-other-sentinels") != "2":
            return False
    return True


def verified_healthy(stack: Stack, timeout: float = 120) -> str:
    def check() -> str | None:
        master = healthy(stack)
        return master if master and sentinels_complete(stack) else None

    return wait_for("a verified healthy topology", check, timeout=timeout, interval=0.5)


def bare_sentinel_failover(stack: Stack) -> dict[str, Any]:
    before = verified_healthy(stack)
    name = stack.outputs["redisHa"]["masterName"]
    with Drill(stack.verify_outputs()) as drill:
        started = time.monotonic()
        assert sentinel_nodes(stack)[0].cli("admin", "SENTINEL", "FAILOVER", name) == "OK"
        wait_for("a new master", lambda: (m := agreed_master(stack)) and m != before and m, timeout=60, interval=0.2)
        agreed = time.monotonic() - started
    report = drill.report()
    verified_healthy(stack)
    return {"sentinels_agree_s": round(agreed, 2), **_row(report)}


def delete_master_pod(stack: Stack) -> dict[str, Any]:
    before = verified_healthy(stack)
    old_pod = pod_of(before)
    old_uid = uid_of(stack, old_pod)
    with Drill(stack.verify_outputs()) as drill:
        wait_writer = drill.writers[0]
        started = time.monotonic()
        stack.api.delete("v1", "Pod", old_pod, stack.namespace)
        wait_for("a new master", lambda: (m := agreed_master(stack)) and m != before and m, timeout=60, interval=0.2)
        agreed = time.monotonic()
        mark = len(wait_writer.stats.acknowledged)
        wait_for("a write acknowledged after the failover", lambda: len(wait_writer.stats.acknowledged) > mark)
        first_write = time.monotonic()
        wait_replaced(stack, old_pod, old_uid)
    report = drill.report()
    verified_healthy(stack)
    return {
        "deleted": old_pod,
        "sentinels_agree_s": round(agreed - started, 2),
        "first_acknowledged_write_s": round(first_write - started, 2),
        **_row(report),
    }


def rolling_restart(stack: Stack) -> dict[str, Any]:
    verified_healthy(stack)
    name = redis_statefulset(stack)
    old_revision = stack.api.get("apps/v1", "StatefulSet", name, stack.namespace)["status"]["updateRevision"]
    with Drill(stack.verify_outputs()) as drill:
        started = time.monotonic()
        restarted = {"kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        stack.api.request(
            "PATCH",
            stack.api.path("apps/v1", "StatefulSet", name, stack.namespace),
            params={"fieldManager": "kubectl-rollout"},
            data=json.dumps({"spec": {"template": {"metadata": {"annotations": restarted}}}}),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )

        def rolled() -> dict[str, Any] | None:
            status = statefulset_awaited(stack.api, stack.namespace, name)
            return status if status and status["updateRevision"] != old_revision else None

        wait_for(f"the rollout of {name}", rolled, timeout=420, interval=1)
        rollout = time.monotonic() - started
    report = drill.report()
    verified_healthy(stack)
    return {"rollout_s": round(rollout, 1), **_row(report)}


def _gaps(row: dict[str, Any]) -> str:
    w, p = row["wait"], row["plain"]
    return f"gap wait {w['longest_gap_s']:.2f}s, plain {p['longest_gap_s']:.2f}s; lost {w['lost']}/{p['lost']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with local_cluster() as (api, started_here), tempfile.TemporaryDirectory() as tmp:
        if not ready_nodes(api):
            raise SystemExit("the local cluster has no Ready node (start.sh without its node stage)")
        with deployed(api, Path(tmp), prefix="rh-bench") as stack:
            ready_s = stack.timings["apply_to_healthy_s"]
            verified_healthy(stack)
            verified_s = time.monotonic() - stack.applied_at
            baseline = bare_sentinel_failover(stack)
            kills = [delete_master_pod(stack) for _ in range(args.kills)]
            rollout = rolling_restart(stack)
    agree = [k["sentinels_agree_s"] for k in kills]
    first = [k["first_acknowledged_write_s"] for k in kills]
    gaps = [k["wait"]["longest_gap_s"] for k in kills]
    result = {
        "cluster_started_by_the_bench": started_here,
        "deploy": {
            "apply_to_statefulsets_ready_s": round(ready_s, 1),
            "apply_to_verified_healthy_s": round(verified_s, 1),
        },
        "baseline_bare_sentinel_failover": baseline,
        "unplanned_master_pod_deleted": {
            "sentinels_agree_s": summary(agree),
            "first_acknowledged_write_s": summary(first),
            "write_gap_s": summary(gaps),
            "lost": {kind: sum(k[kind]["lost"] for k in kills) for kind in ("wait", "plain")},
            "each": kills,
        },
        "rolling_restart": rollout,
    }
    path = write("k8s", result)
    u = result["unplanned_master_pod_deleted"]
    rows = [
        ("apply -> StatefulSets ready", f"{ready_s:.1f}s"),
        ("apply -> verified healthy", f"{verified_s:.1f}s"),
        ("baseline SENTINEL FAILOVER", f"agree {baseline['sentinels_agree_s']:.1f}s; {_gaps(baseline)}"),
        (
            f"master pod deleted (median of {len(kills)})",
            f"agree {statistics.median(agree):.1f}s, first ack {statistics.median(first):.1f}s, "
            f"gap {statistics.median(gaps):.2f}s; lost {u['lost']['wait']}/{u['lost']['plain']}",
        ),
        ("rolling restart", f"{rollout['rollout_s']:.0f}s; {_gaps(rollout)}"),
        ("results", str(path)),
    ]
    table(rows)


if __name__ == "__main__":
    main()
