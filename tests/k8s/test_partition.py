"""Partitions on the local Kubernetes node (issue 23, docs/partitions-kubernetes.md): the
prod stack's Sentinel variant deployed as test_pods.py deploys it, iptables DROP rules
between pod IPs inside the pods' own network namespaces (tests/k8s/partition.py), and
the three drill writers on the host (plain, WAIT 1, WAIT <all replicas>) reaching the
pods over the CNI bridge throughout.

- The master pod cut off from every Sentinel and replica pod past downAfterMilliseconds
  and a failover: another pod is master after the heal, the WAIT-all writer lost
  nothing, and the plain and WAIT 1 writes lost fall in a window of at most fenceAfter
  plus one round (the bound of tests/e2e/test_partition.py); the fence shows in the old
  master's log and INFO errorstats.
- One Sentinel pod cut off from everything: nothing changes, nothing is fenced, lost or
  refused.

Skipped when the cluster has no Ready node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis_ha.components.settings_fence import FENCE_INTERVAL_MS

from tests.e2e.partition import KINDS, master_isolated, sentinel_minority
from tests.k8s import partition
from tests.k8s.api import Api
from tests.k8s.deployment import DeployError, Stack, deployed
from tests.support.k8s_cluster import require_node

pytestmark = [pytest.mark.k8s, pytest.mark.destructive]

ROUND_S = FENCE_INTERVAL_MS / 1000
# As in the Docker drill (tests/e2e/test_partition.py): the fence's own forks and the
# writers' timestamps on a loaded 2-core machine.
SLACK_S = 1.0
# Longer than downAfterMilliseconds (5 s) plus a failover, as the Docker drill's 12 s.
CUT_S = 12.0


@pytest.fixture(scope="module")
def stack(k8s: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_node(k8s)
    try:
        with deployed(k8s, tmp_path_factory.mktemp("k8s-partition"), prefix="rh-part") as deployed_stack:
            yield deployed_stack
    except DeployError as e:
        pytest.fail(str(e), pytrace=False)


def show(name: str, report: dict[str, Any]) -> None:
    """The report as one JSON line, without each writer's first errors (in the
    assertion messages still)."""
    line = {k: {**v, "first_errors": len(v["first_errors"])} if k in KINDS else v for k, v in report.items()}
    print(f"k8s partition {name}: {json.dumps(line, sort_keys=True)}")


def after_heal(report: dict[str, Any]) -> None:
    assert report["rules_left"] == {}, report
    assert report["wait-all"]["lost"] == 0, report
    assert len(report["sentinels_name"]) == 1, report
    assert report["sentinels_name"][0].split(".", 1)[0] == report["master_after"], report
    for kind in KINDS:
        # The writers got through again after the heal: a drill that wrote nothing proves nothing.
        assert report[kind]["acknowledged_after_operation"] >= 50, report


def test_master_pod_cut_off_from_everything_stops_acknowledging_within_the_fence(stack: Stack) -> None:
    fence_after = partition.fence_after_s(stack)
    assert 0 < fence_after < CUT_S, fence_after
    report = partition.run_scenario(stack, master_isolated(CUT_S))
    report["fence_after_s"] = fence_after
    show("master isolated", report)
    after_heal(report)
    assert report["master_after"] != report["master_before"], report
    for kind in ("plain", "wait"):
        assert report[kind]["loss_window_s"] <= fence_after + ROUND_S + SLACK_S, report
    # The fence is visible: its log line on the old master's container stderr, and the
    # FENCED error counted once a second from fenceAfter into the cut until the
    # Sentinels demote it after the heal. (The new master may log a short fence of its
    # own right after its promotion: docs/partitions-kubernetes.md.)
    assert report["fenced_lines"].get(report["master_before"], 0) >= 1, report
    assert CUT_S - fence_after - 1 <= report["fenced_seconds"] <= CUT_S + 20, report


def test_a_sentinel_pod_cut_off_changes_nothing(stack: Stack) -> None:
    report = partition.run_scenario(stack, sentinel_minority(8))
    show("sentinel minority", report)
    after_heal(report)
    assert report["master_after"] == report["master_before"], report
    assert report["fenced_seconds"] == 0 and report["fenced_lines"] == {}, report
    for kind in KINDS:
        assert report[kind]["lost"] == 0 and report[kind]["errors"] == 0, report
