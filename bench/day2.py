"""Day-2 operations on the dev topology, measured on the real engine under two writers.

Each drill runs the two writers of tests/verify/drill.py (one acknowledging after
`WAIT 1`, one after the plain reply, both through Sentinel discovery), does the
operation, and reads back every acknowledged key. Reported per drill and writer:
acknowledged, lost, errors and the longest write gap.

Drills (as tests/e2e/test_day2.py): the planned switchover (`redis-ha switchover`), an
update after a failover that replaces every Redis container, an image change, every
Redis and Sentinel container restarted at once, a Sentinel restarted after a failover.
The baseline, in the same run on the same deployment: a bare `SENTINEL FAILOVER` (what
a switchover was before the hand-over), whose write gap and losses the planned
switchover is measured against.

Unplanned failover (`docker kill` of the master): the write gap (kill to the first
acknowledged write) against `downAfterMilliseconds` at 2000 and 5000 ms, median of
`--kills` (5) each, and the ratio to down-after.

    python bench/day2.py [--kills 5]      -> bench/results/day2.json
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from harness import ROOT, build_images, summary, table, write

sys.path.insert(0, str(ROOT))

from tests.e2e import day2  # noqa: E402
from tests.verify import faults  # noqa: E402


def _row(report: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {k: report[kind][k] for k in ("acknowledged", "lost", "errors", "longest_gap_s")}
        for kind in ("wait", "plain")
    }


def _away_from_deploy_master(stack: day2.Stack) -> None:
    if stack.healthy().master.name.endswith("-redis-1"):
        day2.switch_master(stack)
    stack.healthy()


def bare_sentinel_failover(stack: day2.Stack) -> None:
    master = stack.healthy().master
    sentinel = stack.nodes("sentinel")[0]
    assert sentinel.cli("admin", "SENTINEL", "FAILOVER", stack.outputs.deployment["masterName"]) == "OK"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        named = day2.sentinels_name(stack)
        if named and all(h is not None and h != master.hostname for h in named.values()):
            return
        time.sleep(0.1)
    raise RuntimeError("the bare failover did not complete")


def planned(stack: day2.Stack, client: docker.DockerClient) -> dict[str, Any]:
    drills: dict[str, Any] = {}
    stack.healthy()
    drills["baseline_bare_sentinel_failover"], _ = day2.drilled(stack, lambda: bare_sentinel_failover(stack))
    # Let the old master be converted and resync before the next drill.
    stack.healthy(timeout=120)
    drills["switchover"], _ = day2.drilled(stack, lambda: day2.switch_master(stack))
    _away_from_deploy_master(stack)
    drills["update_replacing_every_redis_container"], _ = day2.drilled(stack, lambda: stack.update(maxmemory="200mb"))
    stack.healthy()
    tag = day2.retag_image(stack, client)
    drills["image_change"], _ = day2.drilled(stack, lambda: stack.update(redisImage=tag))
    _away_from_deploy_master(stack)
    drills["restart_everything_at_once"], _ = day2.drilled(stack, lambda: day2.restart_all_at_once(stack))
    stack.healthy(timeout=120)
    _away_from_deploy_master(stack)
    sentinel = stack.nodes("sentinel")[0]
    drills["sentinel_restart"], _ = day2.drilled(
        stack, lambda: subprocess.run(["docker", "restart", sentinel.name], check=True, capture_output=True)
    )
    return {name: _row(report) for name, report in drills.items()}


def unplanned(client: docker.DockerClient, directory: Path, down_after: int, kills: int) -> dict[str, Any]:
    gaps: list[float] = []
    lost = {"wait": 0, "plain": 0}
    acknowledged = {"wait": 0, "plain": 0}
    with day2.deployed(client, directory, prefix="rhbd2k", downAfterMilliseconds=down_after) as stack:
        for _ in range(kills):
            master = stack.healthy(timeout=120).master
            report, _ = day2.drilled(stack, lambda m=master: faults.kill(m))
            gaps.append(report["wait"]["longest_gap_s"])
            for kind in lost:
                lost[kind] += report[kind]["lost"]
                acknowledged[kind] += report[kind]["acknowledged"]
            faults.start(master)
            stack.healthy(timeout=120)
    median = statistics.median(gaps)
    return {
        "down_after_milliseconds": down_after,
        "write_gap_seconds": summary(gaps),
        "write_gap_seconds_each": gaps,
        "ratio_to_down_after": round(median / (down_after / 1000), 2),
        "acknowledged": acknowledged,
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    build_images()
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        with day2.deployed(client, Path(tmp), prefix="rhbd2") as stack:
            drills = planned(stack, client)
        failovers = [unplanned(client, Path(tmp), ms, args.kills) for ms in (2000, 5000)]
    path = write("day2", {"drills": drills, "unplanned_failover": failovers})
    rows = []
    for name, row in drills.items():
        rows.append(
            (
                name,
                "lost wait {w[lost]}/{w[acknowledged]}, plain {p[lost]}/{p[acknowledged]}; "
                "errors {w[errors]}/{p[errors]}; longest gap {p[longest_gap_s]:.2f}s".format(
                    w=row["wait"], p=row["plain"]
                ),
            )
        )
    for f in failovers:
        rows.append(
            (
                f"kill, down-after {f['down_after_milliseconds']} ms",
                f"gap median {f['write_gap_seconds']['median']:.2f}s (x{f['ratio_to_down_after']} down-after); "
                f"lost wait {f['lost']['wait']}, plain {f['lost']['plain']}",
            )
        )
    rows.append(("results", str(path)))
    table(rows)


if __name__ == "__main__":
    main()
