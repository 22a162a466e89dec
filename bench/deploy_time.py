"""Deploy time: from program start to a verified-healthy topology, on the real engine.

Each round runs the program (under Pulumi's mocks, as the e2e tests do), creates its
Docker resources, and stops the clock when every Sentinel names the same master and
every replica's link is up. The baseline in the same run is one default redis-server
container from `docker run` to its first PONG. Teardown is not timed.

    python bench/deploy_time.py [--rounds 3]     -> bench/results/deploy_time.json
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from harness import build_images, nodes, summary, table, write

from tests.support.e2e_stack import deploy
from tests.verify.access import Outputs
from tests.verify.topology_state import wait_healthy


def deploy_once(client: docker.DockerClient) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        deployment = deploy(f"rhbench-deploy-{secrets.token_hex(3)}", Path(tmp), client)
        try:
            outputs = Outputs.load(deployment.outputs_path)
            wait_healthy(outputs, nodes(outputs, "redis"), nodes(outputs, "sentinel"), timeout=120)
            return time.monotonic() - started
        finally:
            deployment.applier.destroy(deployment.applied)


def baseline_once() -> float:
    name = f"rhbench-single-{secrets.token_hex(3)}"
    started = time.monotonic()
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "redis-ha-test/redis:7.0", "redis-server"],
        check=True,
        capture_output=True,
    )
    try:
        while (
            subprocess.run(["docker", "exec", name, "redis-cli", "ping"], capture_output=True, text=True).stdout.strip()
            != "PONG"
        ):
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    build_images()
    client = docker.from_env()
    topology, single = [], []
    for _ in range(args.rounds):
        topology.append(deploy_once(client))
        single.append(baseline_once())
    result = {
        "topology_seconds": summary(topology),
        "single_redis_seconds": summary(single),
        "ratio": summary(topology)["median"] / summary(single)["median"],
    }
    path = write("deploy_time", result)
    table(
        [
            ("rounds", str(args.rounds)),
            ("topology: program start to healthy (median s)", f"{result['topology_seconds']['median']:.1f}"),
            ("one default redis-server container (median s)", f"{result['single_redis_seconds']['median']:.2f}"),
            ("results", str(path)),
        ]
    )


if __name__ == "__main__":
    main()
