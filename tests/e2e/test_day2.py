"""Day 2 on the real Docker engine: changes, restarts and switchovers under two writers.

Each drill runs a `Drill` (tests/verify/drill.py: one writer acknowledging after
`WAIT 1`, one after the plain reply, both through Sentinel discovery), does the
operation, then reads back every acknowledged key. Planned operations (an update that
replaces every Redis container, an image change, a switchover) must lose no
acknowledged write of either kind; unplanned ones (everything restarted at once) no
WAIT-acknowledged write. Afterwards the topology must be healthy: one master named by
every Sentinel, every replica linked.

The drills run in order on one deployment, as an operator's day would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import docker
import pytest

from tests.e2e import day2
from tests.e2e.day2 import Stack
from tests.support.e2e_stack import ROOT

# The planned switchover's write gap (issue: ~10 s before the zero-loss hand-over).
MAX_SWITCHOVER_GAP = 2.0


@pytest.fixture(scope="module")
def stack(
    test_images: None, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with day2.deployed(docker_client, tmp_path_factory.mktemp("day2")) as deployed:
        deployed.healthy()
        yield deployed


def _show(name: str, report: dict) -> None:
    print(f"{name}: {json.dumps(report, sort_keys=True)}")


def _assert_no_loss(report: dict, *, plain: bool) -> None:
    assert report["wait"]["lost"] == 0, report
    if plain:
        assert report["plain"]["lost"] == 0, report
    # The writers got through again after the operation: a drill that wrote nothing proves nothing.
    for kind in ("wait", "plain"):
        assert report[kind]["acknowledged_after_operation"] >= 50, report


def _replaced(actions: list[str]) -> set[str]:
    return {a.split(" ", 1)[1] for a in actions if a.startswith("replaced ")}


def test_planned_switchover_loses_nothing_and_pauses_writes_briefly(stack: Stack) -> None:
    before = stack.healthy().master
    report, done = day2.drilled(stack, lambda: day2.switch_master(stack))
    _show("switchover", report)
    print("\n".join(done["log"]))
    assert done["from"] == before.name and done["to"] != before.name, done
    _assert_no_loss(report, plain=True)
    assert report["plain"]["longest_gap_s"] <= MAX_SWITCHOVER_GAP, report
    assert report["wait"]["longest_gap_s"] <= MAX_SWITCHOVER_GAP, report
    state = stack.healthy()
    assert state.master.name == done["to"]


def test_redis_ha_switchover_command_on_a_replica_names_the_master(stack: Stack) -> None:
    """The CLI hands over from the master whichever node it starts from."""
    before = stack.healthy().master
    result = subprocess.run(
        [sys.executable, "-m", "redis_ha.cli", "switchover", "--outputs", str(stack.outputs_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"redis-ha switchover: {before.name} -> " in result.stdout, result.stdout
    assert stack.healthy().master.name != before.name
    # No password on what the command printed.
    assert not [p for p in stack.outputs.passwords.values() if p in result.stdout + result.stderr]


def test_update_after_a_failover_that_replaces_every_redis_container(stack: Stack) -> None:
    # After a failover the deploy-time master (redis-1) is a replica; its redis.conf says otherwise.
    if stack.healthy().master.name.endswith("-redis-1"):
        day2.switch_master(stack)
    master = stack.healthy().master
    assert not master.name.endswith("-redis-1")
    report, actions = day2.drilled(stack, lambda: stack.update(maxmemory="200mb"))
    _show("update-redis-conf", report)
    # Every Redis node (a settings change), and the secrets writers of the Redis nodes,
    # whose redis.conf changed too.
    redis = {n.name for n in stack.nodes("redis")}
    assert _replaced(actions) == redis | {f"{n}-secrets" for n in redis}, actions
    _assert_no_loss(report, plain=True)
    state = stack.healthy()
    for node in stack.nodes("redis"):
        assert node.cli("admin", "CONFIG", "GET", "maxmemory").splitlines()[1] == str(200 * 1024 * 1024)
    assert len(state.replicas) == 2


def test_image_change_rolls_every_container(stack: Stack, docker_client: docker.DockerClient) -> None:
    tag = day2.retag_image(stack, docker_client)
    report, actions = day2.drilled(stack, lambda: stack.update(redisImage=tag))
    _show("image-change", report)
    replaced = _replaced(actions)
    assert {n.name for n in stack.nodes("redis") + stack.nodes("sentinel")} <= replaced, actions
    _assert_no_loss(report, plain=True)
    stack.healthy()
    for name in replaced - {f"{stack.name}-exporter", f"{stack.name}-sentinel-exporter"}:
        assert docker_client.containers.get(name).attrs["Config"]["Image"] == tag, name


def test_everything_restarted_at_once_after_a_failover(stack: Stack) -> None:
    if stack.healthy().master.name.endswith("-redis-1"):
        day2.switch_master(stack)
    master = stack.healthy().master
    report, _ = day2.drilled(stack, lambda: day2.restart_all_at_once(stack))
    _show("restart-all", report)
    # Unplanned for the clients: the plain writer may lose what was in flight; WAIT must hold.
    _assert_no_loss(report, plain=False)
    state = stack.healthy(timeout=120)
    # The data survived: the master that came back has every WAIT-acknowledged key (checked
    # above), and it is one of the nodes, not a fresh deploy-time master with nothing.
    assert state.master.name in {n.name for n in stack.nodes("redis")}
    print(f"restart-all: master before {master.name}, after {state.master.name}")


def test_a_restarted_sentinel_names_the_current_master_at_once(stack: Stack) -> None:
    if stack.healthy().master.name.endswith("-redis-1"):
        day2.switch_master(stack)
    master = stack.healthy().master
    sentinel = stack.nodes("sentinel")[0]
    subprocess.run(["docker", "restart", sentinel.name], check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 20
    named = None
    while time.monotonic() < deadline:
        named = day2.sentinels_name(stack)[sentinel.name]
        if named is not None:
            break
        time.sleep(0.2)
    # Its first answer is the current master, from its own state, not the deploy-time one.
    assert named == master.hostname, (named, master.hostname)
    state = stack.healthy()
    assert state.master.name == master.name
