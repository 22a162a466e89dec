"""Redis Cluster partitions on the real Docker engine (docs/partitions-cluster.md):
one shard's master cut off from every other cluster node, its replica included, under
three writers through a cluster-aware client (plain SET, WAIT 1, WAIT <replicas of the
shard>) writing keys of that shard (tests/e2e/cluster_partition.py).

- Past cluster-node-timeout (2x): Redis Cluster's own fence, a master that cannot
  reach a majority of the masters turns cluster_state:fail and refuses writes, so the
  plain and WAIT 1 writes it took are lost only until then: 1 to 1.5 node timeouts
  after the cut; the WAIT-all writer loses nothing; the replica takes over and the old
  master rejoins as its replica.
- Shorter than cluster-node-timeout: no failover and nothing lost by any writer.

After each heal the drill checks every node ok with all slots, each slot range served
by one master, every replica's link up, and reads back every acknowledged key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest

from tests.e2e import cluster_partition, day2
from tests.e2e.day2 import Stack
from tests.e2e.partition import KINDS

pytestmark = [pytest.mark.e2e, pytest.mark.destructive]

# The writers' own timestamps on a shared machine (thread and process scheduling).
SLACK_S = 1.0
# Redis Cluster's own fence, in node timeouts after the cut (docs/partitions-cluster.md).
FENCE_BOUND = 1.5


@pytest.fixture(scope="module")
def stack(
    test_images: None, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("cluster-partition")
    with day2.deployed(docker_client, directory, prefix="rhcp", topology="cluster") as deployed:
        cluster_partition.converged(deployed.outputs, deployed.nodes("cluster"))
        yield deployed


def _node_timeout(stack: Stack) -> float:
    return stack.outputs.deployment["cluster"]["nodeTimeout"] / 1000


def _show(name: str, report: dict) -> None:
    print(f"{name}: {json.dumps(report, sort_keys=True)}")


def _drilled(stack: Stack, client: docker.DockerClient, timeouts: float) -> dict:
    """The master cut off for `timeouts` node timeouts; the checks after every heal."""
    report = cluster_partition.run_scenario(client, stack, timeouts * _node_timeout(stack))
    _show(f"master cut off for {timeouts}x cluster-node-timeout", report)
    assert report["wait-all"]["lost"] == 0, report
    for kind in KINDS:
        # every writer got through again after the heal
        assert report[kind]["acknowledged_after_operation"] >= 50, report
    return report


def test_master_cut_off_past_node_timeout_fences_itself_and_fails_over(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    report = _drilled(stack, docker_client, 2)
    node_timeout = _node_timeout(stack)
    assert report["master_after"] != report["master_before"], report
    assert report["epoch_after"] > report["epoch_before"], report
    assert report["fenced_after_s"] is not None, report
    assert report["server_errors"]["CLUSTERDOWN"] > 0, report
    for kind in ("plain", "wait"):
        # Lost only until the fence: a node pings a peer at the latest half a timeout
        # after its last pong and flags it PFAIL a timeout after that ping, so the cut
        # master fails the cluster state 1 to 1.5 node timeouts after the cut.
        assert report[kind]["loss_window_s"] <= FENCE_BOUND * node_timeout + SLACK_S, (kind, report)
        assert report[kind]["loss_window_s"] <= report["fenced_after_s"] + SLACK_S, (kind, report)


def test_master_cut_off_shorter_than_node_timeout_changes_nothing(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    report = _drilled(stack, docker_client, 0.6)
    assert report["master_after"] == report["master_before"], report
    assert report["epoch_after"] == report["epoch_before"], report
    assert report["promoted_after_s"] is None, report
    for kind in KINDS:
        assert report[kind]["lost"] == 0, (kind, report)
