"""Password rotation on the real Docker engine: every password, two `pulumi up`s, under load.

One dev stack (tests/e2e/day2.py: `Stack.deployed`, updates as `pulumi up` after a
config change through tests/support/updates.py and the applier) with a configured
admin password and every other password generated. The drill rotates all of them
(docs/redis-notes.md#rotating-passwords):

- phase 1: `adminPassword` new, `previousAdminPassword` the old one, and
  `passwordGeneration 1` with `previousPasswordGeneration 0` for the generated ones;
- the application (the drill's two writers, as the `cache` role, through the
  Sentinels) then reads its new credentials, as it would on reading its Secret, and
  reconnects with them;
- phase 2: both previous settings removed.

Throughout, two writers (tests/verify/drill.py: one counts a write after `WAIT 1`, one
after the plain reply) write, and a sampler reads every Redis node's replication state
and every Sentinel's view of the master over connections opened before the rotation.
Must hold: no acknowledged write lost, no write failed, the replication links and the
Sentinel quorum up all the time, no node container replaced (the same container ids:
only the secrets writers and the exporters are), and afterwards every old password is
refused on every node while every new one works.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import redis
from redis_ha.components import security
from redis_ha.components.settings_load import load_settings

from tests.e2e import day2
from tests.e2e.day2 import Stack
from tests.support.rotation_live import accepts
from tests.verify.drill import Drill

OLD_ADMIN = "Rotation-Old-Admin-0001"
NEW_ADMIN = "Rotation-New-Admin-0002"
# The application whose password rotates under the drill, and a key pattern it may write.
pytestmark = pytest.mark.e2e

APP_USER = "cache"
APP_PREFIX = "cache:drill:"


@pytest.fixture(scope="module")
def stack(
    test_images: None, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with day2.deployed(
        docker_client, tmp_path_factory.mktemp("rotation"), prefix="rhrot", adminPassword=OLD_ADMIN
    ) as s:
        s.healthy()
        yield s


def _endpoint(spec: dict[str, Any]) -> tuple[str, int]:
    host, port = spec["hostEndpoint"].rsplit(":", 1)
    return host, int(port)


def _connect(spec: dict[str, Any], user: str, password: str) -> redis.Redis:
    host, port = _endpoint(spec)
    return redis.Redis(
        host=host,
        port=port,
        username=user,
        password=password,
        protocol=2,
        decode_responses=True,
        socket_timeout=3,
        socket_connect_timeout=3,
        retry_on_timeout=False,
    )


def logs_in(spec: dict[str, Any], user: str, password: str) -> bool:
    return accepts(lambda: _connect(spec, user, password))


class Sampler(threading.Thread):
    """Every Redis node's replication and every Sentinel's view of the master, five
    times a second, over connections opened before the rotation (a connection stays
    authenticated when its user's password changes)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        outputs = stack.outputs
        self.master_name = outputs.deployment["masterName"]
        self.redis = {s["name"]: _connect(s, "admin", outputs.passwords["admin"]) for s in outputs.nodes("redis")}
        self.sentinels = {
            s["name"]: _connect(s, "admin", outputs.passwords["admin"]) for s in outputs.nodes("sentinel")
        }
        for client in [*self.redis.values(), *self.sentinels.values()]:
            assert client.ping()
        self.halt = threading.Event()
        self.samples = 0
        self.problems: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                masters = 0
                for name, client in self.redis.items():
                    info = client.info("replication")
                    if info["role"] == "master":
                        masters += 1
                    elif info.get("master_link_status") != "up" or "master_link_down_since_seconds" in info:
                        self.problems.append(f"{name}: link {info.get('master_link_status')}")
                if masters != 1:
                    self.problems.append(f"{masters} masters")
                for name, client in self.sentinels.items():
                    master = client.execute_command("SENTINEL", "MASTER", self.master_name)
                    flags = dict(zip(master[0::2], master[1::2], strict=False)).get("flags", "")
                    # `disconnected` for a moment: SENTINEL SET auth-pass reopening its links.
                    if set(str(flags).split(",")) - {"master", "disconnected"}:
                        self.problems.append(f"{name}: master flags {flags}")
                    quorum = client.execute_command("SENTINEL", "CKQUORUM", self.master_name)
                    if not str(quorum).startswith("OK"):
                        self.problems.append(f"{name}: {quorum}")
                self.samples += 1
            except (redis.RedisError, OSError) as error:
                self.problems.append(f"sampler: {error!r}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


@contextlib.contextmanager
def sampled(stack: Stack) -> Iterator[Sampler]:
    sampler = Sampler(stack)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def _replaced_or_created(actions: list[str]) -> set[str]:
    return {a.split(" ", 1)[1] for a in actions if a.startswith(("replaced ", "created "))}


def _acknowledged(drill: Drill) -> list[int]:
    return [len(w.stats.acknowledged) for w in drill.writers]


def _wait_for_writes(drill: Drill, marks: list[int], count: int = 50, timeout: float = 60) -> None:
    """Until each writer has acknowledged `count` more writes (with its new credentials)."""
    deadline = time.monotonic() + timeout
    while any(now < mark + count for now, mark in zip(_acknowledged(drill), marks, strict=True)):
        assert time.monotonic() < deadline, f"the writers stalled after switching passwords: {drill.summary()}"
        time.sleep(0.1)


def test_every_password_rotates_under_load_without_a_restart(stack: Stack, docker_client: docker.DockerClient) -> None:
    old = dict(stack.outputs.passwords)
    assert old["admin"] == OLD_ADMIN and len(old) == 13
    nodes = [n.name for n in stack.nodes("redis") + stack.nodes("sentinel")]
    ids = {name: docker_client.containers.get(name).id for name in nodes}
    writers = {f"{name}-secrets" for name in nodes}
    exporters = {f"{stack.name}-exporter", f"{stack.name}-sentinel-exporter"}
    master = stack.healthy().master.name

    with Drill(stack.outputs, user=APP_USER, key_prefix=APP_PREFIX) as drill, sampled(stack) as sampler:
        phase1 = stack.update(
            adminPassword=NEW_ADMIN, previousAdminPassword=OLD_ADMIN, passwordGeneration=1, previousPasswordGeneration=0
        )
        # The application reads its rotated Secret and reconnects with the new password.
        marks = _acknowledged(drill)
        drill.switch(stack.outputs)
        _wait_for_writes(drill, marks)
        phase2 = stack.update(unset=("previousAdminPassword", "previousPasswordGeneration"))
        _wait_for_writes(drill, _acknowledged(drill))
    report = drill.report()
    print(f"rotation: {json.dumps(report, sort_keys=True)}")
    print(f"rotation: phase 1 {phase1}; phase 2 {phase2}; {sampler.samples} samples")

    # Only what delivers the secrets was replaced (and in phase 1 the exporters, which
    # read their password file at start, and their writers); the same node containers
    # ran throughout.
    exporter_writers = {f"{name}-secrets" for name in exporters}
    assert _replaced_or_created(phase1) == writers | exporters | exporter_writers, phase1
    assert _replaced_or_created(phase2) == writers, phase2
    assert {name: docker_client.containers.get(name).id for name in nodes} == ids
    # No write lost or failed, and the writers went on after the rotation.
    for kind in ("wait", "plain"):
        assert report[kind]["lost"] == 0, report
        assert report[kind]["errors"] == 0, report
        assert report[kind]["acknowledged_after_operation"] >= 50, report
    assert sampler.samples >= 20, sampler.samples
    assert not sampler.problems, sampler.problems[:10]
    state = stack.healthy()
    assert state.master.name == master and len(state.replicas) == 2

    # Every old password is refused on every node, every new one works.
    new = stack.outputs.passwords
    assert new["admin"] == NEW_ADMIN and all(new[u] != old[u] for u in old)
    settings = load_settings(stack.config)
    for kind in ("redis", "sentinel"):
        users = [u.name for u in security.server_users(settings, kind)]
        for spec in stack.outputs.nodes(kind):
            for user in users:
                assert not logs_in(spec, user, old[user]), f"{spec['name']} still takes the old password of {user}"
                assert logs_in(spec, user, new[user]), f"{spec['name']} refuses the new password of {user}"
    # The Redis nodes' exporter (restarted with its new password file) logs in again.
    for spec in stack.outputs.nodes("exporter"):
        with urllib.request.urlopen(f"http://{spec['hostEndpoint']}/metrics", timeout=10) as response:
            assert re.search(r"^redis_up 1$", response.read().decode(), re.MULTILINE), spec["name"]
