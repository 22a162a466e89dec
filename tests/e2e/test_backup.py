"""The backup drills on the real Docker engine (issue: backup and restore, proven by
restoring into a fresh deployment).

Sentinel topology: load every data structure, back up through the deployment's own
worker (`redis-ha backup`), destroy the deployment and its volumes, deploy a new one of
the same settings, restore (`redis-ha restore`) and compare key by key on the master
and on every replica; then a bad FLUSHALL on the running deployment is undone by a
restore that triggers no failover; then a tampered backup is refused with nothing
changed. The Redis Cluster topology: the same round trip, each key back on the shard
that owns its slot.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from redis_ha import backups
from tests.e2e.day2 import Stack, deployed
from tests.support import dataset
from tests.verify.access import Outputs
from tests.verify.clients import MappedSentinel, _endpoint
from tests.verify.topology_state import sentinel_master

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("test_images")]

WORKER_IMAGE = "redis-ha-test/python-client:3.11"


@contextmanager
def backups_volume(client: docker.DockerClient, name: str) -> Iterator[str]:
    """The stack's backups volume, which outlives the stack: removed by the test."""
    volume = f"{name}-backups"
    try:
        yield volume
    finally:
        with suppress(docker.errors.NotFound):
            client.volumes.get(volume).remove(force=True)


def _admin(outputs: Outputs, spec: dict[str, Any], db: int) -> redis.Redis:
    endpoint = _endpoint(spec)
    assert endpoint is not None, spec["name"]
    return redis.Redis(*endpoint, db=db, username="admin", password=outputs.passwords["admin"], socket_timeout=10)


def _master_spec(stack: Stack) -> dict[str, Any]:
    outputs = stack.outputs
    sentinel = MappedSentinel(outputs)
    host, port = sentinel.discover_master(outputs.deployment["masterName"])
    return next(s for s in outputs.nodes("redis") if _endpoint(s) == (host, port))


def _on(outputs: Outputs, spec: dict[str, Any]) -> Callable[[int], redis.Redis]:
    return lambda db: _admin(outputs, spec, db)


def _taken_id(text: str) -> str:
    """The backup id from the worker's JSON lines."""
    for line in reversed(text.splitlines()):
        with suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("id"):
                return str(event["id"])
    raise AssertionError(f"no backup id in the worker's output: {text!r}")


def _worker_exec(stack: Stack, *command: str) -> str:
    name = stack.outputs.deployment["backup"]["testinfraHost"].removeprefix("docker://")
    done = subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _sentinel_epochs(stack: Stack) -> dict[str, str]:
    outputs = stack.outputs
    sentinel = MappedSentinel(outputs)
    epochs = {}
    for i, s in enumerate(sentinel.sentinels):
        master = s.execute_command("SENTINEL MASTER", outputs.deployment["masterName"])
        fields = dict(zip(master[::2], master[1::2], strict=False)) if isinstance(master, list) else master
        epochs[str(i)] = str(fields.get("config-epoch", fields.get(b"config-epoch")))
    return epochs


def _every_node_matches(stack: Stack, expected: dict[str, Any]) -> None:
    outputs = stack.outputs
    for spec in outputs.nodes("redis"):
        found = dataset.snapshot(_on(outputs, spec))
        problems = dataset.differences(expected, found)
        assert not problems, f"{spec['name']}: {problems[:5]} ({len(problems)} in all)"


def test_backup_destroy_redeploy_restore(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    name = f"rhbk-{secrets.token_hex(3)}"
    config = {"backupTarget": "volume", "backupImage": WORKER_IMAGE}
    with backups_volume(docker_client, name) as volume:
        with deployed(docker_client, tmp_path, name=name, **config) as first:
            first.healthy()
            outputs = first.outputs
            master = _master_spec(first)
            dataset.load(_on(outputs, master))
            master_client = _admin(outputs, master, 0)
            assert master_client.wait(2, 10_000) == 2
            expected = dataset.snapshot(_on(outputs, master))
            assert len(expected) > 400

            backup_id = _taken_id(backups.take(outputs.deployment))
            manifest = json.loads(_worker_exec(first, "cat", f"/backups/{name}/{backup_id}/manifest.json"))
            # Taken from a replica, never the master.
            sources = [f.get("source", {}) for f in manifest["files"]]
            assert sources and all(s.get("role") in ("slave", "replica") for s in sources), sources
            assert master["host"] not in json.dumps(sources), sources
            assert sum(sum(int(v) for v in f["keys"].values()) for f in manifest["files"]) == len(expected)
            first_volumes = [f"{n.name}-data" for n in first.nodes("redis") + first.nodes("sentinel")]
        # The deployment and its own volumes are gone; the backups volume is not.
        left = {v.name for v in docker_client.volumes.list()}
        assert not set(first_volumes) & left
        assert volume in left

        with deployed(docker_client, tmp_path, name=name, **config) as second:
            second.healthy()
            outputs = second.outputs
            assert backup_id in backups.listing(outputs.deployment)
            master = _master_spec(second)
            assert dataset.snapshot(_on(outputs, master)) == {}
            backups.restore(outputs.deployment, outputs.passwords["admin"], backup_id)
            _every_node_matches(second, expected)
            second.healthy()

            # A bad FLUSHALL on the running deployment, undone without a failover.
            epochs = _sentinel_epochs(second)
            master_before = {s.name: sentinel_master(s, outputs) for s in second.nodes("sentinel")}
            _admin(outputs, master, 0).execute_command("FLUSHALL")
            backups.restore(outputs.deployment, outputs.passwords["admin"], backup_id)
            _every_node_matches(second, expected)
            assert {s.name: sentinel_master(s, outputs) for s in second.nodes("sentinel")} == master_before
            assert _sentinel_epochs(second) == epochs
            second.healthy()

            # A tampered backup is refused and changes nothing.
            _admin(outputs, master, 0).set("after-restore", "kept")
            rdb = next(f["name"] for f in manifest["files"])
            path = f"/backups/{name}/{backup_id}/{rdb}"
            _worker_exec(second, "sh", "-c", f"printf Z | dd of={path} bs=1 seek=4096 conv=notrunc 2>/dev/null")
            with pytest.raises(backups.BackupError, match="sha256|checksum"):
                backups.restore(outputs.deployment, outputs.passwords["admin"], backup_id)
            assert _admin(outputs, master, 0).get("after-restore") == b"kept"
