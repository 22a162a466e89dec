"""Redis Cluster partitions on the dev topology (docs/partitions-cluster.md): one
shard's master cut off from every other cluster node, its replica included, under
three writers through a cluster-aware client (tests/e2e/cluster_partition.py).

Two scenarios, each run `--rounds` times, on the next master (in CLUSTER NODES order) each round: the master
cut off for twice cluster-node-timeout (Redis Cluster's own fence and a failover), and
for 0.6 of it (nothing may change). Per round and writer (plain SET, WAIT 1, WAIT
<replicas of the shard>): acknowledged, lost (acknowledged, then missing through the
cluster client after the heal), the loss window (first lost acknowledgement to the
last), errors by kind and the longest gap between two acknowledgements; per round
when the cut master failed its cluster state (its fence) and when its replica was
promoted, in seconds after the cut, and the server-side errors by code.

    python bench/cluster_partition.py [--rounds N] [--quick]   -> bench/results/cluster_partition.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import docker
from harness import build_images, table, write

from tests.e2e import cluster_partition, day2
from tests.e2e.partition import KINDS

WRITER_FIELDS = ("acknowledged", "lost", "loss_window_s", "errors", "error_kinds", "longest_gap_s")
ROUND_FIELDS = (
    "master_before",
    "master_after",
    "cut_took_s",
    "fenced_after_s",
    "promoted_after_s",
    "unfenced_after_heal_s",
    "server_errors",
    "seconds",
)


def brief(report: dict[str, Any]) -> dict[str, Any]:
    result = {key: report[key] for key in ROUND_FIELDS}
    result["failed_over"] = report["master_before"] != report["master_after"]
    for kind in KINDS:
        result[kind] = {key: report[kind][key] for key in WRITER_FIELDS}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario, a different shard each")
    parser.add_argument("--quick", action="store_true", help="one round per scenario")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    build_images()
    client = docker.from_env()
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, Any]]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        day2.deployed(client, Path(tmp), prefix="rhbcp", topology="cluster") as stack,
    ):
        node_timeout = stack.outputs.deployment["cluster"]["nodeTimeout"] / 1000
        shards = stack.outputs.deployment["cluster"]["shards"]
        scenarios = {
            "master cut off for 2x cluster-node-timeout": 2 * node_timeout,
            "master cut off for 0.6x cluster-node-timeout": 0.6 * node_timeout,
        }
        for name, seconds in scenarios.items():
            results[name] = []
            for shard in range(rounds):
                print(f"{name}, round {shard + 1} (master {shard % shards} in CLUSTER NODES order)", flush=True)
                try:
                    report = brief(cluster_partition.run_scenario(client, stack, seconds, shard=shard % shards))
                except AssertionError as error:
                    report = {"error": str(error)[:500]}
                    cluster_partition.converged(stack.outputs, stack.nodes("cluster"))
                print(f"  {report}", flush=True)
                results[name].append(report)
    result = {
        "cluster_node_timeout_s": node_timeout,
        "settings": {"clusterShards": 3, "clusterReplicasPerShard": 1, "minReplicasToWrite": 1},
        "load_average_1m": {"start": load_before, "end": os.getloadavg()[0]},
        "writers": {
            "plain": "SET; acknowledged by the reply",
            "wait": "SET, then WAIT 1 1000 on the key's master: acknowledged when a replica confirmed",
            "wait-all": "SET, then WAIT <replicas of the shard> 1000 on the key's master",
        },
        "scenarios": results,
    }
    path = write("cluster_partition", result)
    rows = []
    for name, reports in results.items():
        for i, report in enumerate(reports, 1):
            if "error" in report:
                rows.append((f"{name} #{i}", report["error"][:80]))
                continue
            cells = ", ".join(
                f"{k} lost {report[k]['lost']}/{report[k]['acknowledged']} ({report[k]['loss_window_s']} s)"
                for k in KINDS
            )
            rows.append((f"{name} #{i}", f"{cells}; fenced after {report['fenced_after_s']} s"))
    table(rows)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
