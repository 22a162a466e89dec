"""Partitions on the dev topology, with the self-fence and without it (the baseline),
in the same run on the same machine (docs/partitions.md).

Each scenario of tests/e2e/partition.py runs under three writers through Sentinel
discovery (plain SET, WAIT 1, WAIT <all replicas>) on a stack with `fence: true` (the
default) and on one with `fence: false`. Per scenario and writer: acknowledged, lost
(acknowledged, then missing on the master the Sentinels name after the heal), the loss
window (from the first lost write's acknowledgement to the last one's), errors and
the longest gap between two acknowledgements; per scenario the seconds the nodes
counted as fenced.

    python bench/partition.py [--only NAME ...] [--quick] [--fence-after MS] [--name NAME]
        -> bench/results/<NAME>.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import docker
from harness import build_images, table, write
from redis_ha.components.settings_load import load_settings

from tests.e2e import day2, partition

Scenario = partition.Scenario


def scenarios(quick: bool) -> dict[str, Scenario]:
    length = 10.0 if quick else 20.0
    return {
        "master isolated from every Sentinel and replica": partition.master_isolated(length),
        "master and one replica cut off from the other replica and the Sentinels": partition.master_and_replica(length),
        "a Sentinel minority cut off": partition.sentinel_minority(length),
        "flapping: the master cut off and healed every 3 s": partition.flapping(30.0 if quick else 60.0, 3.0),
        "master cut off, healed 1 s before downAfterMilliseconds": partition.healed_around_down_after(-1.0),
        "master cut off, healed 1.5 s after downAfterMilliseconds": partition.healed_around_down_after(1.5),
        "bare SENTINEL FAILOVER, the old master alive": partition.bare_failover,
        "master frozen (SIGSTOP) 3 s past downAfterMilliseconds": partition.frozen_master(3.0),
    }


def brief(report: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "fenced_seconds": report["fenced_seconds"],
        "failed_over": report["master_before"] != report["master_after"],
        "seconds": report["seconds"],
    }
    for kind in partition.KINDS:
        w = report[kind]
        result[kind] = {
            "acknowledged": w["acknowledged"],
            "lost": w["lost"],
            "loss_window_s": w["loss_window_s"],
            "errors": w["errors"],
            "error_kinds": w["error_kinds"],
            "longest_gap_s": w["longest_gap_s"],
        }
    return result


def run(
    fence: bool, chosen: dict[str, Scenario], client: docker.DockerClient, **overrides: str
) -> tuple[dict[str, Any], int]:
    """The scenarios on one stack; their reports and the stack's fenceAfterMilliseconds."""
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        day2.deployed(client, Path(tmp), prefix="rhbp", fence=str(fence).lower(), **overrides) as stack,
    ):
        fence_after = load_settings(stack.config).fence_after_milliseconds
        stack.healthy()
        for name, scenario in chosen.items():
            print(f"fence {'on' if fence else 'off'}: {name}", flush=True)
            try:
                results[name] = brief(partition.run_scenario(client, stack, scenario))
            except AssertionError as error:
                results[name] = {"error": str(error)[:500]}
                stack.healthy(timeout=180)
            print(f"  {results[name]}", flush=True)
    return results, fence_after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="scenario names containing one of these words")
    parser.add_argument("--quick", action="store_true", help="10 s partitions, 30 s of flapping")
    parser.add_argument("--name", default="partition", help="the result's name: bench/results/<name>.json")
    parser.add_argument(
        "--fence-after", type=int, help="fenceAfterMilliseconds of the fenced stack (default: the default)"
    )
    args = parser.parse_args()
    chosen = {k: v for k, v in scenarios(args.quick).items() if not args.only or any(w in k for w in args.only)}
    build_images()
    client = docker.from_env()
    # Timing drills mean little on a saturated machine: the load goes with the figures.
    load_before = os.getloadavg()[0]
    overrides = {"fenceAfterMilliseconds": str(args.fence_after)} if args.fence_after else {}
    with_fence, fence_after = run(True, chosen, client, **overrides)
    baseline, _ = run(False, chosen, client)
    result = {
        "partition_seconds": 10 if args.quick else 20,
        "fence_after_ms": fence_after,
        "load_average_1m": {"start": load_before, "end": os.getloadavg()[0]},
        "writers": {
            "plain": "SET; acknowledged by the reply",
            "wait": "SET, then WAIT 1 1000: acknowledged when a replica confirmed",
            "wait-all": "SET, then WAIT <every replica> 1000",
        },
        "scenarios": {name: {"fence": with_fence[name], "no_fence": baseline[name]} for name in chosen},
    }
    path = write(args.name, result)
    rows = []
    for name in chosen:
        for mode, report in (("fence", with_fence[name]), ("no fence", baseline[name])):
            if "error" in report:
                rows.append((f"{name} [{mode}]", report["error"][:80]))
                continue
            cells = ", ".join(
                f"{k} lost {report[k]['lost']}/{report[k]['acknowledged']} ({report[k]['loss_window_s']} s)"
                for k in partition.KINDS
            )
            rows.append((f"{name} [{mode}]", f"{cells}; fenced {report['fenced_seconds']} s"))
    table(rows)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
