"""Day-2 operations on a dev stack deployed on the real Docker engine, shared by the
e2e drills (tests/e2e/test_day2.py) and bench/day2.py.

A `Stack` is one deployment that can be updated as `pulumi up` after a config change
would update it: the program runs again with the previous run's generated passwords
(tests/support/updates.py) and the applier applies the difference with the engine's
semantics (tests/support/applier.py). Each operation here runs while a `Drill`
(tests/verify/drill.py) writes through the Sentinels, and returns the drill's report.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from redis_ha import switchover
from tests.support.applier import Applied, DockerApplier
from tests.support.e2e_stack import e2e_config
from tests.support.program import ProgramRun, run_program
from tests.support.updates import run_update
from tests.verify.access import Node, Outputs
from tests.verify.drill import Drill
from tests.verify.topology_state import LiveState, sentinel_master, wait_healthy


@dataclass
class Stack:
    name: str
    config: dict[str, Any]
    run: ProgramRun
    applier: DockerApplier
    outputs_path: Path
    applied: Applied = field(default_factory=Applied)
    # image tags this stack created (removed with it)
    tags: list[str] = field(default_factory=list)

    def write_outputs(self) -> None:
        self.outputs_path.write_text(json.dumps(self.run.outputs))
        os.chmod(self.outputs_path, 0o600)

    @property
    def outputs(self) -> Outputs:
        return Outputs.load(self.outputs_path)

    def nodes(self, kind: str) -> list[Node]:
        outputs = self.outputs
        return [Node(spec, outputs) for spec in outputs.nodes(kind)]

    def healthy(self, timeout: float = 90) -> LiveState:
        return wait_healthy(self.outputs, self.nodes("redis"), self.nodes("sentinel"), timeout=timeout)

    def update(self, unset: tuple[str, ...] = (), **changes: Any) -> list[str]:
        """`pulumi up` after `pulumi config rm` of `unset` and `pulumi config set` of
        `changes`; returns the applier's actions."""
        config = {k: v for k, v in self.config.items() if k not in unset} | changes
        new = run_update(config, self.run, stack="dev")
        actions = self.applier.update(new, self.applied, self.run)
        self.config, self.run = config, new
        self.write_outputs()
        return actions


@contextmanager
def deployed(
    client: docker.DockerClient, directory: Path, prefix: str = "rhd2", name: str = "", **overrides: Any
) -> Iterator[Stack]:
    """A fresh stack (`name`, default a new `<prefix>-<random>`), destroyed afterwards."""
    name = name or f"{prefix}-{secrets.token_hex(3)}"
    config = e2e_config(name, **overrides)
    stack = Stack(name, config, run_program(config, stack="dev"), DockerApplier(client), directory / f"{name}.json")
    try:
        stack.applier.apply(stack.run, stack.applied)
        stack.write_outputs()
        yield stack
    finally:
        errors = stack.applier.destroy(stack.applied)
        for tag in stack.tags:
            with suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, noprune=True)
        stack.outputs_path.unlink(missing_ok=True)
        assert not errors, f"teardown left resources behind: {errors}"


def drilled(stack: Stack, operation: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Run `operation` under the two writers; (the drill's report, what it returned)."""
    with Drill(stack.outputs) as drill:
        result = operation()
    report = drill.report()
    return report, result


def switch_master(stack: Stack) -> dict[str, Any]:
    """The planned switchover, as `redis-ha switchover` runs it."""
    return switchover.switchover(stack.outputs.deployment)


def restart_all_at_once(stack: Stack) -> None:
    """`docker restart` of every Redis and Sentinel container at the same moment."""
    names = [n.name for n in stack.nodes("redis") + stack.nodes("sentinel")]
    errors: list[str] = []

    def restart(name: str) -> None:
        result = subprocess.run(["docker", "restart", name], capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            errors.append(f"{name}: {result.stderr.strip()}")

    threads = [threading.Thread(target=restart, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def retag_image(stack: Stack, client: docker.DockerClient) -> str:
    """A new tag of the same Redis image (an image change, as a patch release is)."""
    source = stack.config["redisImage"]
    tag = f"{source.split(':', 1)[0]}:{source.split(':', 1)[1].split('-', 1)[0]}-{stack.name}"
    client.images.get(source).tag(tag)
    stack.tags.append(tag)
    return tag


def sentinels_name(stack: Stack) -> dict[str, str | None]:
    outputs = stack.outputs
    return {s.name: sentinel_master(s, outputs) for s in stack.nodes("sentinel")}
