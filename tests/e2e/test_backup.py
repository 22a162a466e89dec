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
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from redis_ha import backup_ops
from tests.e2e.day2 import Stack, deployed
from tests.support import dataset
from tests.support.e2e_nodes import admin as _admin
from tests.support.e2e_nodes import master_spec as _master_spec
from tests.verify.access import Outputs
from tests.verify.clients import MappedSentinel
from tests.verify.cluster_access import cluster_client, forget_node_ids, wait_healthy_cluster
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


def _wait_first_backup(endpoint: str, timeout: float = 90) -> float:
    """redis_ha_backup_last_success_timestamp_seconds from the worker's /metrics, once > 0."""
    deadline = time.monotonic() + timeout
    page = ""
    while time.monotonic() < deadline:
        with suppress(OSError):
            page = urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=5).read().decode()
            for line in page.splitlines():
                if line.startswith("redis_ha_backup_last_success_timestamp_seconds{"):
                    value = float(line.rsplit(" ", 1)[1])
                    if value > 0:
                        return value
        time.sleep(1)
    raise AssertionError(f"no backup reported by the worker's metrics within {timeout}s: {page[-500:]!r}")


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
            # A new deployment is backed up at once (its target holds none): the metric the
            # backup alerts read is set within seconds, not at the first fire time.
            taken_at = _wait_first_backup(outputs.deployment["backup"]["metricsEndpoint"])
            assert taken_at > time.time() - 300
            master = _master_spec(first)
            dataset.load(_on(outputs, master))
            master_client = _admin(outputs, master, 0)
            assert master_client.wait(2, 10_000) == 2
            expected = dataset.snapshot(_on(outputs, master))
            assert len(expected) > 400

            backup_id = _taken_id(backup_ops.take(outputs.deployment))
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
            assert backup_id in backup_ops.listing(outputs.deployment)
            master = _master_spec(second)
            assert dataset.snapshot(_on(outputs, master)) == {}
            backup_ops.restore(outputs.deployment, outputs.passwords["admin"], backup_id)
            _every_node_matches(second, expected)
            second.healthy()

            # A bad FLUSHALL on the running deployment, undone without a failover.
            epochs = _sentinel_epochs(second)
            master_before = {s.name: sentinel_master(s, outputs) for s in second.nodes("sentinel")}
            _admin(outputs, master, 0).execute_command("FLUSHALL")
            backup_ops.restore(outputs.deployment, outputs.passwords["admin"], backup_id)
            _every_node_matches(second, expected)
            assert {s.name: sentinel_master(s, outputs) for s in second.nodes("sentinel")} == master_before
            assert _sentinel_epochs(second) == epochs
            second.healthy()

            # A tampered backup is refused and changes nothing.
            _admin(outputs, master, 0).set("after-restore", "kept")
            rdb = next(f["name"] for f in manifest["files"])
            path = f"/backups/{name}/{backup_id}/{rdb}"
            _worker_exec(second, "sh", "-c", f"printf Z | dd of={path} bs=1 seek=4096 conv=notrunc 2>/dev/null")
            with pytest.raises(backup_ops.BackupError, match="sha256|checksum"):
                backup_ops.restore(outputs.deployment, outputs.passwords["admin"], backup_id)
            assert _admin(outputs, master, 0).get("after-restore") == b"kept"


# --- the Redis Cluster topology, backups in S3 ------------------------------------

S3_IMAGE = "redis-ha-test/s3:versitygw"
S3_PORT = 7070


@pytest.fixture(scope="module")
def s3_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """A one-binary image of the S3 server the unit tests use (versitygw, built from its
    Go module by scripts/s3/build.sh), so that the backup worker reaches it on the
    deployment's network like any object store."""
    from tests.support.s3 import build_server

    binary = build_server()
    with tempfile.TemporaryDirectory() as root:
        for directory, mode in (("data", 0o777), ("tmp", 0o1777)):
            Path(root, directory).mkdir()
            Path(root, directory).chmod(mode)
        shutil.copy(binary, Path(root, "versitygw"))
        tar = subprocess.run(
            ["tar", "-C", root, "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."],
            capture_output=True,
            check=True,
        ).stdout
    subprocess.run(
        ["docker", "import", "--change", 'ENTRYPOINT ["/versitygw"]', "-", S3_IMAGE],
        input=tar,
        capture_output=True,
        check=True,
    )
    try:
        yield S3_IMAGE
    finally:
        with suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            docker_client.images.remove(S3_IMAGE)


@contextmanager
def s3_server(client: docker.DockerClient, image: str, name: str) -> Iterator[dict[str, Any]]:
    """The S3 server as a container of its own (removed afterwards), published on
    127.0.0.1 only; attached to a deployment's network with `attach`."""
    access, secret = "rhbk" + secrets.token_hex(6), secrets.token_urlsafe(24)
    container = client.containers.run(
        image,
        ["--quiet", "--port", f":{S3_PORT}", "posix", "/data"],
        name=f"{name}-s3",
        detach=True,
        environment={"ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret},
        ports={f"{S3_PORT}/tcp": ("127.0.0.1", None)},
        user="999",
    )
    try:
        container.reload()
        port = int(container.ports[f"{S3_PORT}/tcp"][0]["HostPort"])
        from redis_ha.backup.config import BackupError
        from redis_ha.backup.s3 import S3Target

        target = S3Target(f"http://127.0.0.1:{port}", "backups", access_key=access, secret_key=secret)
        deadline = time.monotonic() + 30
        while True:
            try:
                target.create_bucket()
                break
            except BackupError:  # not listening yet: docker-proxy resets the connection
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield {"container": container, "access": access, "secret": secret, "target": target, "host": f"{name}-s3"}
    finally:
        container.remove(force=True, v=True)


@contextmanager
def attached(client: docker.DockerClient, server: dict[str, Any], network: str) -> Iterator[None]:
    """The S3 server on a deployment's network, and off it again before the stack's
    network is removed (a container still attached would keep the network)."""
    client.networks.get(network).connect(server["container"], aliases=[server["host"]])
    try:
        yield
    finally:
        with suppress(docker.errors.NotFound, docker.errors.APIError):
            client.networks.get(network).disconnect(server["container"], force=True)


def _replicas_in_sync(outputs: Outputs, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        lagging = []
        for spec in outputs.nodes("cluster"):
            r = _admin(outputs, spec, 0)
            info = {**r.info("replication"), **r.info("persistence")}
            if info["role"] == "slave" and (info.get("master_link_status") != "up" or info.get("loading")):
                lagging.append(spec["name"])
        if not lagging:
            return
        assert time.monotonic() < deadline, f"replicas not in sync after {timeout}s: {lagging}"
        time.sleep(0.5)


def _cluster_check(stack: Stack, expected: dict[str, Any]) -> None:
    """Every key through the slot map, and each shard's replicas holding its master's keys."""
    outputs = stack.outputs
    state = wait_healthy_cluster(outputs, stack.nodes("cluster"))
    client = cluster_client(outputs, decode_responses=False, socket_timeout=10.0)
    problems = dataset.differences(expected, dataset.snapshot(lambda db: client, databases=(0,)))
    assert not problems, f"{problems[:5]} ({len(problems)} in all)"
    specs = {spec["name"]: spec for spec in outputs.nodes("cluster")}
    total = 0
    for master, replicas in state.masters.items():
        keys = _admin(outputs, specs[master], 0).dbsize()
        total += keys
        for replica in replicas:
            assert _admin(outputs, specs[replica.name], 0).dbsize() == keys, f"{replica.name} differs from {master}"
    assert total == len(expected)


def test_cluster_backup_to_s3_and_restore_into_a_new_cluster(
    docker_client: docker.DockerClient, tmp_path: Path, s3_image: str
) -> None:
    name = f"rhbc-{secrets.token_hex(3)}"
    with s3_server(docker_client, s3_image, name) as s3:
        config = {
            "topology": "cluster",
            "backupTarget": "s3",
            "backupImage": WORKER_IMAGE,
            "backupS3Endpoint": f"http://{s3['host']}:{S3_PORT}",
            "backupS3Bucket": "backups",
            "backupS3AccessKeyId": s3["access"],
            "backupS3SecretAccessKey": s3["secret"],
        }
        network = f"{name}-cluster-net"
        with deployed(docker_client, tmp_path, name=name, **config) as first, attached(docker_client, s3, network):
            outputs = first.outputs
            wait_healthy_cluster(outputs, first.nodes("cluster"))
            client = cluster_client(outputs, decode_responses=False, socket_timeout=10.0)
            dataset.load(lambda db: client, databases=(0,))
            for spec in outputs.nodes("cluster"):
                r = _admin(outputs, spec, 0)
                if r.info("replication")["role"] == "master":
                    assert r.wait(1, 10_000) == 1, spec["name"]
            # A replica still loading its first full sync is no source for a backup (the
            # worker refuses it): wait until every replica is in sync.
            _replicas_in_sync(outputs)
            expected = dataset.snapshot(lambda db: client, databases=(0,))
            taken = json.loads(backup_ops.take(outputs.deployment).splitlines()[0])
            s3["target"].prefix = f"{name}/{name}-cluster"
            stored = s3["target"].keys()
            keys = [k for k in stored if f"/{taken['id']}/" in k]
            # One RDB per shard and the manifest, in the bucket.
            assert len([k for k in keys if k.endswith(".rdb")]) == 3, keys
            assert any(k.endswith("manifest.json") for k in keys), keys

        # The new cluster's nodes have the old names and new ids.
        forget_node_ids()
        with deployed(docker_client, tmp_path, name=name, **config) as second, attached(docker_client, s3, network):
            outputs = second.outputs
            wait_healthy_cluster(outputs, second.nodes("cluster"))
            empty = cluster_client(outputs, decode_responses=False, socket_timeout=10.0)
            assert dataset.snapshot(lambda db: empty, databases=(0,)) == {}
            assert taken["id"] in backup_ops.listing(outputs.deployment)
            backup_ops.restore(outputs.deployment, outputs.passwords["admin"], taken["id"])
            _cluster_check(second, expected)
