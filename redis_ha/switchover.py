"""`redis-ha switchover`: a planned, zero-loss change of master.

The hand-over itself is the nodes' own start script (`redis-start.sh switchover`, the
same code that runs on SIGTERM and as the Kubernetes preStop hook): it holds writes on
the master, waits until every replica has applied the whole replication stream, asks
a Sentinel to fail over and demotes the old master as soon as the Sentinels name the
new one. This module only finds the master and runs the script inside it, through the
node's testinfra host from the stack outputs (`docker://<container>` with
`docker exec`, `kubectl://<pod>?namespace=..&container=..` with `kubectl exec`), so it
needs no network path to the nodes and no password.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlparse


class SwitchoverError(Exception):
    """The switchover could not be done; the message says why."""


def exec_prefix(testinfra_host: str) -> list[str]:
    """The command that runs a program inside the node."""
    url = urlparse(testinfra_host)
    if url.scheme == "docker":
        return ["docker", "exec", url.netloc]
    if url.scheme == "kubectl":
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        prefix = ["kubectl", "exec", url.netloc]
        if "namespace" in query:
            prefix += ["-n", query["namespace"]]
        if "container" in query:
            prefix += ["-c", query["container"]]
        return [*prefix, "--"]
    raise SwitchoverError(f"cannot run a command on {testinfra_host!r} (docker:// and kubectl:// hosts only)")


def _run(node: Mapping[str, Any], script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [*exec_prefix(node["testinfraHost"]), "sh", script, *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as error:
        raise SwitchoverError(f"{command[0]} is not installed: {error}") from None
    except subprocess.TimeoutExpired:
        raise SwitchoverError(f"{node['name']}: `{script} {' '.join(args)}` did not finish in {timeout:.0f}s") from None


def current_master(deployment: Mapping[str, Any], timeout: float = 30) -> Mapping[str, Any]:
    """The Redis node most Sentinels name, asked from inside the first node that answers."""
    nodes = [n for n in deployment["nodes"] if n["kind"] == "redis"]
    script = deployment["startScript"]
    reasons = []
    for node in nodes:
        result = _run(node, script, "master", timeout=timeout)
        words = result.stdout.split()
        if result.returncode != 0 or len(words) != 2:
            reasons.append(f"{node['name']}: {result.stderr.strip().splitlines()[-1:] or result.returncode}")
            continue
        for candidate in nodes:
            if candidate["host"] == words[0] and str(candidate["port"]) == words[1]:
                return candidate
        raise SwitchoverError(f"the Sentinels name {words[0]}:{words[1]}, which is not a node of this deployment")
    raise SwitchoverError("no node could ask the Sentinels for the master: " + "; ".join(reasons))


def switchover(deployment: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Hand mastership from the current master to a replica; returns what happened."""
    if "startScript" not in deployment:
        raise SwitchoverError("the stack outputs describe no Sentinel deployment (no redisHa.startScript)")
    script = deployment["startScript"]
    limit = timeout or deployment["failoverTimeout"] / 1000 + 60
    old = current_master(deployment)
    started = time.monotonic()
    result = _run(old, script, "switchover", timeout=limit)
    seconds = time.monotonic() - started
    log = result.stderr.strip()
    if result.returncode != 0:
        raise SwitchoverError(
            f"{old['name']} is still the master: {log.splitlines()[-1] if log else result.returncode}"
        )
    new = current_master(deployment)
    if new["name"] == old["name"]:
        raise SwitchoverError(f"the script reported success but the Sentinels still name {old['name']}")
    return {"from": old["name"], "to": new["name"], "seconds": round(seconds, 2), "log": log.splitlines()}


def main(outputs: Mapping[str, Any], print_line: Any = print) -> int:
    try:
        done = switchover(outputs["redisHa"])
    except SwitchoverError as error:
        print_line(f"redis-ha switchover: {error}")
        return 1
    for line in done["log"]:
        print_line(f"  {line}")
    print_line(f"redis-ha switchover: {done['from']} -> {done['to']} in {done['seconds']}s")
    return 0


__all__: Sequence[str] = ("SwitchoverError", "current_master", "exec_prefix", "main", "switchover")
