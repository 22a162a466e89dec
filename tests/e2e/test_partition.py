"""Partitions on the real Docker engine (docs/partitions.md): iptables rules in the
stack's own containers' network namespaces cut a master off while clients on the host
still reach it, under three writers through Sentinel discovery (plain, WAIT 1, WAIT
<all replicas>). After every heal: one master, every replica following it, the
Sentinels agreeing, and every write the WAIT-all writer got acknowledged present.

The fence's promises (issue 23): a master cut off from the Sentinels stops
acknowledging within fenceAfterMilliseconds plus one round, so the plain and WAIT 1
writes it took are lost only in that window; a Sentinel minority cut off fences
nothing. The full scenario set, with and without the fence, is bench/partition.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest
from redis_ha.components.settings_load import load_settings

from tests.e2e import day2, partition
from tests.e2e.day2 import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.destructive]

ROUND_S = 0.25
# fence.sh confirms the master as of the arrival of the answer that made a majority: it
# fences at most fenceAfter + one round after the last answer it got before the cut.
# The fence's own forks (redis-cli for every question and for CONFIG SET) and the
# writers' timestamps on a loaded 2-core CI machine: measured 0.3 to 0.4 s on a quiet one.
SLACK_S = 1.0


@pytest.fixture(scope="module")
def stack(
    test_images: None, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with day2.deployed(docker_client, tmp_path_factory.mktemp("partition"), prefix="rhpt", fence="true") as deployed:
        deployed.healthy()
        yield deployed


def _show(name: str, report: dict) -> None:
    print(f"{name}: {json.dumps(report, sort_keys=True)}")


def _after_heal(report: dict) -> None:
    assert report["wait-all"]["lost"] == 0, report
    assert len(report["sentinels_name"]) == 1, report
    for kind in partition.KINDS:
        assert report[kind]["acknowledged_after_operation"] >= 50, report


def _cut_off(client: docker.DockerClient, stack: Stack, name: str, scenario: partition.Scenario) -> tuple[dict, float]:
    """A master cut off from the Sentinels: after the heal another node is master, and
    the plain and WAIT 1 writes lost fall in a window of at most fenceAfter + one round.
    Returns the report and fenceAfter in seconds."""
    report = partition.run_scenario(client, stack, scenario)
    _show(name, report)
    _after_heal(report)
    assert report["master_after"] != report["master_before"], report
    fence_after = load_settings(stack.config).fence_after_milliseconds / 1000
    for kind in ("plain", "wait"):
        assert report[kind]["loss_window_s"] <= fence_after + ROUND_S + SLACK_S, report
    return report, fence_after


def test_master_cut_off_from_everything_stops_acknowledging_within_the_fence(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    report, fence_after = _cut_off(docker_client, stack, "master isolated", partition.master_isolated(12))
    # Fenced from fenceAfter into the partition until the Sentinels demote it after the
    # heal (they reconfigure a returning old master within about their hello period and
    # the 10 s a converted replica waits: harmless, it takes no acknowledged write then).
    assert 12 - fence_after - 1 <= report["fenced_seconds"] <= 12 + 20, report


def test_a_sentinel_minority_cut_off_changes_nothing(stack: Stack, docker_client: docker.DockerClient) -> None:
    report = partition.run_scenario(docker_client, stack, partition.sentinel_minority(8))
    _show("sentinel minority", report)
    _after_heal(report)
    assert report["master_after"] == report["master_before"], report
    assert report["fenced_seconds"] == 0, report
    for kind in partition.KINDS:
        assert report[kind]["lost"] == 0 and report[kind]["errors"] == 0, report


def test_master_and_a_replica_cut_off_stop_acknowledging_within_the_fence(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    """The split that loses the most without the fence: the cut-off master keeps a
    replica, so `min-replicas-to-write 1` and `WAIT 1` go on succeeding on its side
    (bench/results/partition.json: every such write of the partition lost)."""
    _cut_off(docker_client, stack, "master and a replica", partition.master_and_replica(12))


def test_a_bare_sentinel_failover_fences_the_old_master_within_a_round(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    """SENTINEL FAILOVER with the old master alive: the promoted replica's own answer
    fences the old master before the Sentinels name the new one."""
    report = partition.run_scenario(docker_client, stack, partition.bare_failover)
    _show("bare failover", report)
    _after_heal(report)
    assert report["master_after"] != report["master_before"], report
    assert report["fenced_seconds"] >= 1, report
    for kind in ("plain", "wait"):
        # One round of questions after the promotion, and the writers' own timing.
        assert report[kind]["loss_window_s"] <= 2 * ROUND_S + SLACK_S, report
