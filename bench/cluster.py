"""Redis Cluster on the dev stack, measured on the real engine: throughput relative to
a single default redis-server in the same run, and shard failover time.

Throughput: `redis-benchmark --cluster` runs in a client container on the cluster's
network, pipelined SET and GET over random keys (so over every slot and shard),
against (a) the deployed cluster of 3 shards (ACLs, AOF everysec, a replica per shard)
and (b) a plain `redis-server` with its defaults started on the same network for this
run. Several rounds, alternating targets; the figure is the ratio of medians. On a
machine with few cores the shards share them, so the ratio says what the cluster
costs here, not what it scales to.

Failover: SIGKILL a master (no shutdown), time until a write through a cluster-aware
client (redis-py RedisCluster, announced hostnames mapped to host endpoints) to a key
of its slot range is accepted again; then the killed node is started, must come back
as a replica and the cluster must be healthy before the next drill. Deployed with
minReplicasToWrite 0: with the default 1 and one replica per shard, the shard refuses
writes (NOREPLICAS) until its second node is back, which is the loss bound working,
not the failover (tests/verify/test_cluster.py checks that behaviour).

    python bench/cluster.py [--rounds 3] [--requests 200000] [--drills 3]   -> bench/results/cluster.json
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
import uuid

import redis
from harness import dev_topology, nodes, summary, table, write
from throughput import benchmark, container, docker

from tests.verify import faults
from tests.verify.access import Outputs
from tests.verify.cluster_access import cluster_client, shard_key, wait_healthy_cluster

TESTS = ("SET", "GET")


def cluster_benchmark(client: str, host: str, requests: int, password: str) -> dict[str, float]:
    """requests/s per test of `redis-benchmark --cluster`: it reads the slot map from
    `host` and sends each key to its shard, with the options of bench/throughput.py."""
    args = ["exec", client, "redis-benchmark", "--cluster", "-h", host, "-n", str(requests), "-c", "50", "-P", "16"]
    # redis-benchmark takes no password from the environment; it stays inside this
    # process's argv and is never printed.
    args += ["-t", "set,get", "-r", "100000", "--csv", "-q", "--user", "admin", "-a", password]
    out = docker(*args)
    # In cluster mode the CSV follows lines about the cluster's nodes.
    result = {row[0]: float(row[1]) for row in csv.reader(io.StringIO(out)) if len(row) > 1 and row[0] in TESTS}
    if set(result) != set(TESTS):
        raise RuntimeError(f"redis-benchmark --cluster printed no {set(TESTS) - set(result)} result:\n{out[-2000:]}")
    return result


def first_write_after(outputs: Outputs, key: str, started: float, timeout: float) -> float:
    client = None
    while time.monotonic() - started < timeout:
        try:
            client = client or cluster_client(outputs, socket_timeout=0.5, socket_connect_timeout=0.5)
            if client.set(key, "1", ex=600):
                return time.monotonic() - started
        except (redis.RedisError, IndexError):
            # A connection to the dead master, or a slot map read while it fails over:
            # start over with a fresh client, as an application's retry would.
            client = None
        time.sleep(0.05)
    raise RuntimeError(f"no write to {key} accepted within {timeout}s of the kill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200000)
    parser.add_argument("--drills", type=int, default=3)
    args = parser.parse_args()
    deployed: dict[str, list[float]] = {"SET": [], "GET": []}
    baseline: dict[str, list[float]] = {"SET": [], "GET": []}
    times: list[float] = []
    overrides = {"topology": "cluster", "minReplicasToWrite": 0}
    with dev_topology("rhbench-cluster", **overrides) as (deployment, outputs):
        cluster_nodes = nodes(outputs, "cluster")
        node_timeout = outputs.deployment["cluster"]["nodeTimeout"]
        wait_healthy_cluster(outputs, cluster_nodes, timeout=120)
        network = next(iter(faults.networks(cluster_nodes[0])))
        name = deployment.name
        with (
            container(f"{name}-baseline", network, "redis-server", "--protected-mode", "no") as base,
            container(f"{name}-bench-client", network, "sleep", "3600") as client,
        ):
            for _ in range(args.rounds):
                password = outputs.passwords["admin"]
                for test, rps in cluster_benchmark(client, cluster_nodes[0].hostname, args.requests, password).items():
                    deployed[test].append(rps)
                for test, rps in benchmark(client, base, args.requests, None).items():
                    baseline[test].append(rps)
        for drill in range(1, args.drills + 1):
            state = wait_healthy_cluster(outputs, cluster_nodes, timeout=120)
            # A different shard each drill.
            master = state.master_nodes()[(drill - 1) % len(state.masters)]
            probe = cluster_client(outputs)
            key = shard_key(probe, master, outputs, f"redis-ha:bench:{uuid.uuid4().hex}:")
            probe.close()
            started = time.monotonic()
            faults.kill(master)
            elapsed = first_write_after(outputs, key, started, timeout=120)
            faults.start(master)
            wait_healthy_cluster(outputs, cluster_nodes, timeout=120)
            print(f"drill {drill}: a write to the shard of {master.name} accepted {elapsed:.2f}s after the kill")
            times.append(elapsed)
    result = {
        "settings": {**overrides, "clusterShards": 3, "clusterReplicasPerShard": 1, "clusterNodeTimeout": node_timeout},
        "throughput": {"requests": args.requests, "rounds": args.rounds, "pipeline": 16, "clients": 50, "tests": {}},
        "failover_seconds": summary(times),
        "failover_seconds_each": times,
        "median_within_node_timeout_plus_3s": summary(times)["median"] <= node_timeout / 1000 + 3,
    }
    rows = []
    for test in ("SET", "GET"):
        d, b = statistics.median(deployed[test]), statistics.median(baseline[test])
        result["throughput"]["tests"][test] = {
            "cluster_rps": deployed[test],
            "baseline_rps": baseline[test],
            "ratio": d / b,
        }
        rows.append((f"{test} cluster / default (median rps)", f"{d:,.0f} / {b:,.0f} = {d / b:.2f}"))
    path = write("cluster", result)
    table(
        [
            *rows,
            ("cluster-node-timeout (ms)", str(node_timeout)),
            ("shard failover median / max (s)", "{median:.2f} / {max:.2f}".format(**result["failover_seconds"])),
            ("results", str(path)),
        ]
    )


if __name__ == "__main__":
    main()
