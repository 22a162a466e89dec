"""Throughput of the deployed master relative to a default redis-server, same run.

redis-benchmark runs in a client container on the deployment's network against
(a) the current master of the dev topology (ACLs, AOF everysec, two replicas streaming,
min-replicas-to-write) and (b) a plain `redis-server` container with its defaults,
started on the same network for this run. Pipelined SET and GET, several rounds,
alternating targets; the figure is the ratio of medians, not an absolute number.

    python bench/throughput.py [--rounds 3] [--requests 200000]   -> bench/results/throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import statistics
import subprocess
from collections.abc import Iterator

from harness import dev_topology, nodes, table, write

from tests.verify import faults
from tests.verify.topology_state import wait_healthy

IMAGE = "redis-ha-test/redis:7.0"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=600).stdout


@contextlib.contextmanager
def container(name: str, network: str, *command: str) -> Iterator[str]:
    docker("run", "-d", "--rm", "--name", name, "--network", network, IMAGE, *command)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def benchmark(client: str, host: str, requests: int, auth: tuple[str, str] | None) -> dict[str, float]:
    """requests/s per test from redis-benchmark's CSV output."""
    args = ["exec", client, "redis-benchmark", "-h", host, "-n", str(requests), "-c", "50", "-P", "16"]
    args += ["-t", "set,get", "-r", "100000", "--csv", "-q"]
    if auth:
        # redis-benchmark takes no password from the environment; it stays inside this
        # process's argv and is never printed.
        args += ["--user", auth[0], "-a", auth[1]]
    out = docker(*args)
    rows = list(csv.reader(io.StringIO(out)))
    return {row[0]: float(row[1]) for row in rows[1:] if len(row) > 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200000)
    args = parser.parse_args()
    deployed: dict[str, list[float]] = {"SET": [], "GET": []}
    baseline: dict[str, list[float]] = {"SET": [], "GET": []}
    with dev_topology("rhbench-tput") as (deployment, outputs):
        redis_nodes, sentinels = nodes(outputs, "redis"), nodes(outputs, "sentinel")
        master = wait_healthy(outputs, redis_nodes, sentinels).master
        network = next(iter(faults.networks(master)))
        name = deployment.name
        with (
            container(f"{name}-baseline", network, "redis-server", "--protected-mode", "no") as base,
            container(f"{name}-bench-client", network, "sleep", "3600") as client,
        ):
            for _ in range(args.rounds):
                for test, rps in benchmark(
                    client, master.hostname, args.requests, ("admin", outputs.passwords["admin"])
                ).items():
                    deployed[test].append(rps)
                for test, rps in benchmark(client, base, args.requests, None).items():
                    baseline[test].append(rps)
    result = {"requests": args.requests, "rounds": args.rounds, "pipeline": 16, "clients": 50, "tests": {}}
    rows = []
    for test in ("SET", "GET"):
        d, b = statistics.median(deployed[test]), statistics.median(baseline[test])
        result["tests"][test] = {"deployed_rps": deployed[test], "baseline_rps": baseline[test], "ratio": d / b}
        rows.append((f"{test} deployed / default (median rps)", f"{d:,.0f} / {b:,.0f} = {d / b:.2f}"))
    path = write("throughput", result)
    table([*rows, ("results", str(path))])


if __name__ == "__main__":
    main()
