"""Open-loop latency of GET/SET through the Sentinel-discovered master of the deployed
dev topology, beside a bare redis-server with its defaults at the same rates, same run.

bench/loadgen (Go, built by its build.sh) sends requests at a fixed rate from this host:
request i is due at start + i/rate and its latency counts from that due time, so a
stall shows for every request due during it (docs/performance.md). The deployed target
is found as applications find it: the Sentinels asked as `sentinel-client`, the
master's announced name dialled, the `admin` user; passwords go to the loadgen on stdin.
`--path network` (the default) dials every node at its fixed address on the
deployment's network, as an application container there does (the host reaches the
bridge directly); `--path published` goes through the published ports, that is
Docker's userland proxy, which saturated near 3,800 ops/s on this machine. The baseline is Debian's
redis-server on 127.0.0.1 with default settings except the port, removed afterwards.
Both get the same preload and the same rates; each rate runs after a warm-up.

    python bench/latency.py [--keys 1000000 | --ten-million] [--rates 10000,50000]
        [--seconds 30] [--warmup 5] [--path network|published] [--no-fence] [--out NAME]
                                                           -> bench/results/latency.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import ROOT, dev_topology, nodes, table, write

from tests.support.redis_servers import free_port, terminate
from tests.verify import faults
from tests.verify.access import Node, Outputs
from tests.verify.topology_state import wait_healthy

USER = "admin"


def build_loadgen() -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "bench/loadgen/build.sh")], check=True, capture_output=True, text=True, timeout=900
    )
    return Path(done.stdout.strip().splitlines()[-1])


def loadgen(binary: Path, target: list[str], secrets: dict[str, str] | None, *args: str) -> dict[str, Any]:
    """One loadgen run; its JSON. Passwords only on stdin."""
    argv = [str(binary), *target, *args]
    if secrets is not None:
        argv.append("--auth-stdin")
    done = subprocess.run(argv, input=json.dumps(secrets or {}), capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def endpoint(node: Node, path: str) -> str:
    """Where this host dials the node: its fixed address on the deployment's network
    (components/docker/addresses.py) or its published port."""
    if path == "network":
        address = faults.fixed_address(node)
        if not address:
            raise SystemExit(f"{node.name} has no fixed address (a deployment of an older toolkit?)")
        return f"{address}:{node.port}"
    published = node.spec.get("hostEndpoint")
    if not published:
        raise SystemExit(f"{node.name} has no published port (publishPorts must be true for this bench)")
    return str(published)


def deployed_target(outputs: Outputs, all_nodes: list[Node], path: str) -> list[str]:
    """Loadgen flags for the deployment: its Sentinels' endpoints, and a --map from
    every address a Sentinel announces (the nodes' hostnames, which resolve only inside
    the deployment's network) to that node's endpoint on this host, as
    tests/verify/clients.py's MappedSentinel does for redis-py."""
    maps = [x for node in all_nodes for x in ("--map", f"{node.hostname}:{node.port}={endpoint(node, path)}")]
    sentinels = ",".join(endpoint(n, path) for n in all_nodes if n.kind == "sentinel")
    master_name = outputs.deployment["masterName"]
    sentinel_user = outputs.deployment["users"]["sentinelClient"]
    return [
        "--sentinels",
        sentinels,
        "--master-name",
        master_name,
        "--user",
        USER,
        "--sentinel-user",
        sentinel_user,
        *maps,
    ]


@contextlib.contextmanager
def bare_redis() -> Iterator[int]:
    """Debian's redis-server, defaults except the port (and 127.0.0.1 only), in a
    directory of its own (its default snapshots land there); ended by its process id."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rhbench-lat-") as tmp, Path(tmp, "redis.log").open("wb") as log:
        command = ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        proc = subprocess.Popen(command, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {Path(tmp, 'redis.log').read_text()}")
                time.sleep(0.1)
            yield port
        finally:
            terminate(proc, grace=30)


def measure(binary: Path, target: list[str], secrets: dict[str, str] | None, args: argparse.Namespace) -> dict:
    common = ["--keys", str(args.keys), "--get-ratio", str(args.get_ratio), "--workers", str(args.workers)]
    result: dict[str, Any] = {"preload": loadgen(binary, target, secrets, *common, "--preload", "--rate", "0")}
    result["rates"] = {}
    for rate in args.rates:
        timing = ["--rate", str(rate), "--duration", f"{args.seconds}s", "--warmup", f"{args.warmup}s"]
        result["rates"][str(rate)] = loadgen(binary, target, secrets, *common, *timing)
    return result


def rates(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--rates: comma-separated positive integers, got {text!r}")
    return values


def rows(results: dict[str, dict]) -> list[tuple[str, str]]:
    out = []
    for target, result in results.items():
        for rate, r in result["rates"].items():
            flag = "  GENERATOR SATURATED" if r["saturated"] else ""
            out.append(
                (
                    f"{target} @ {int(rate):,}/s",
                    f"p50 {r['p50_us']:,.0f} us  p99 {r['p99_us']:,.0f} us  p99.9 {r['p99_9_us']:,.0f} us  "
                    f"max {r['max_us']:,.0f} us  achieved {r['rate_achieved']:,.0f}/s  "
                    f"late {r['late_fraction']:.2%}  errors {r['errors']}{flag}",
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys preloaded (~100-byte values)")
    parser.add_argument("--ten-million", action="store_true", help="preload 10,000,000 keys (the design's size)")
    parser.add_argument("--rates", type=rates, default=[10_000, 50_000], help="ops/s, comma-separated")
    parser.add_argument("--seconds", type=int, default=30, help="measured seconds per rate")
    parser.add_argument("--warmup", type=int, default=5, help="seconds at the rate before measuring")
    parser.add_argument("--workers", type=int, default=32, help="loadgen connections")
    parser.add_argument("--get-ratio", type=float, default=0.5, help="share of GETs, 0..1")
    parser.add_argument("--maxmemory", default="2gb", help="the deployment's maxmemory (the design's 2 GB)")
    parser.add_argument("--out", default="latency", help="result name: bench/results/<out>.json")
    parser.add_argument(
        "--no-fence", dest="fence", action="store_false", help="deploy with fence: false (the fence's own cost)"
    )
    parser.add_argument(
        "--path",
        choices=("network", "published"),
        default="network",
        help="dial the nodes on the deployment's network (default) or through their published ports",
    )
    args = parser.parse_args()
    if args.ten_million:
        args.keys = 10_000_000
    if not 0 <= args.get_ratio <= 1 or args.keys < 1 or args.seconds < 1 or args.workers < 1:
        parser.error("--get-ratio must be within 0..1; --keys, --seconds and --workers must be >= 1")
    binary = build_loadgen()
    results: dict[str, dict] = {}
    with dev_topology("rhbench-lat", maxmemory=args.maxmemory, fence=args.fence) as (_, outputs):
        redis_nodes, sentinels = nodes(outputs, "redis"), nodes(outputs, "sentinel")
        master = wait_healthy(outputs, redis_nodes, sentinels).master
        secrets = {
            "password": outputs.passwords[USER],
            "sentinel_password": outputs.passwords[outputs.deployment["users"]["sentinelClient"]],
        }
        target = deployed_target(outputs, redis_nodes + sentinels, args.path)
        results["deployed"] = measure(binary, target, secrets, args)
        results["deployed"]["master"] = master.name
        with bare_redis() as port:
            results["bare"] = measure(binary, ["--addr", f"127.0.0.1:{port}"], None, args)
    keys = ("keys", "rates", "seconds", "warmup", "workers", "get_ratio", "maxmemory", "path", "fence")
    config = {k: getattr(args, k) for k in keys}
    path = write(args.out, {"config": config, "targets": results})
    table([*rows(results), ("results", str(path))])


if __name__ == "__main__":
    main()
