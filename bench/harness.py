"""Shared by the benchmarks: a dev topology on the real Docker engine (the e2e
machinery), JSON results, a printed table. Every benchmark removes what it created."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from tests.support.e2e_stack import REDIS_IMAGE, Deployment, deploy  # noqa: E402
from tests.verify.access import Node, Outputs  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "revision": revision,  # the code measured
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": docker.from_env().version()["Version"],
    }


def build_images() -> None:
    """The e2e's images: tests/images/build.sh's, and the default engine's (engines.sh)."""
    subprocess.run(["bash", str(ROOT / "tests/images/build.sh")], check=True, capture_output=True)
    subprocess.run(["bash", str(ROOT / "tests/images/engines.sh"), REDIS_IMAGE], check=True, capture_output=True)


@contextlib.contextmanager
def dev_topology(prefix: str, **overrides: object) -> Iterator[tuple[Deployment, Outputs]]:
    build_images()
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        deployment = deploy(f"{prefix}-{secrets.token_hex(3)}", Path(tmp), client, **overrides)
        try:
            yield deployment, Outputs.load(deployment.outputs_path)
        finally:
            errors = deployment.applier.destroy(deployment.applied)
            if errors:
                print(f"teardown errors: {errors}", file=sys.stderr)


def nodes(outputs: Outputs, kind: str) -> list[Node]:
    return [Node(spec, outputs) for spec in outputs.nodes(kind)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "max": max(values),
        "min": min(values),
        "n": len(values),
    }


def write(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = {"benchmark": name, "time": stamp, "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
