"""Shared by the backup engine's live tests (and bench/backup_local.py): the `backup`
ACL user with exactly the commands the engine documents, a Sentinel deployment ready
to be backed up, configs for the engine, and tampering helpers."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from redis_ha.backup import crc
from redis_ha.backup.manifest import MANIFEST
from tests.support.live import LiveDeployment, wait_until

BACKUP_USER = "backup"
# The engine's documented needs (redis_ha/backup/__init__.py); nothing more.
REDIS_BACKUP_COMMANDS = ("info", "replconf", "sync")
CLUSTER_BACKUP_COMMANDS = (*REDIS_BACKUP_COMMANDS, "cluster|shards")


def create_backup_user(client: redis.Redis, password: str, commands: tuple[str, ...]) -> None:
    rules = ["reset", "on", f">{password}", "resetchannels", "-@all", *[f"+{c}" for c in commands]]
    client.execute_command("ACL", "SETUSER", BACKUP_USER, *rules)


@contextmanager
def backup_deployment(
    base: Path,
    passwords: dict[str, str],
    backup_password: str,
    config: dict[str, Any] | None = None,
    *,
    replica: bool = True,
) -> Iterator[LiveDeployment]:
    """A live deployment with three Sentinels and the `backup` user on its data nodes,
    stopped on the way out whatever happened (a start that times out included).

    With a replica, it is handed over only once the Sentinels list that replica with
    its link up: the engine picks its source from SENTINEL REPLICAS, and before then it
    would find no replica and refuse."""
    live = LiveDeployment(base, passwords, config, sentinels=3)
    try:
        live.start(replica=replica)
        for node in (live.master, live.replica) if replica else (live.master,):
            create_backup_user(live.client(node), backup_password, REDIS_BACKUP_COMMANDS)
        if replica:
            sentinel = live.client(live.sentinel, "sentinel-client")
            name = live.settings.master_name

            def listed() -> bool:
                entries = sentinel.execute_command("SENTINEL", "REPLICAS", name)
                return any("master-link-status" in e and "ok" in e for e in map(list, entries))

            wait_until(listed, 30, "the Sentinels to list the replica with its link up")
        yield live
    finally:
        live.stop()


def write_secret(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def sentinel_config(
    base: Path, deployment: Any, backup_password: str, target: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    base.mkdir(parents=True, exist_ok=True)
    work = base / "work"
    work.mkdir(exist_ok=True)
    return {
        "deployment": "redis-ha",
        "topology": "sentinel",
        "masterName": deployment.settings.master_name,
        "sentinels": [["127.0.0.1", live.port] for live in deployment.sentinels],
        "backupUser": {"user": BACKUP_USER, "passwordFile": write_secret(base, "backup.password", backup_password)},
        "sentinelUser": {
            "user": "sentinel-client",
            "passwordFile": write_secret(base, "sentinel.password", deployment.passwords["sentinel-client"]),
        },
        "restoreUser": "admin",
        "schedule": "0 */6 * * *",
        "retention": 3,
        "target": target,
        "workDir": str(work),
        "waitTimeoutSeconds": 30,
        **extra,
    }


def backup_file(root: Path, backup_id: str, name: str) -> Path:
    return root / backup_id / name


def rewrite_rdb(path: Path, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) in an RDB file and fix its CRC-64."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) == 1, old
    body = data[:-8].replace(old, new)
    path.write_bytes(body + struct.pack("<Q", crc.crc64(body)))


def reseal_manifest(root: Path, backup_id: str, name: str, **changes: Any) -> None:
    """Update a file's size and sha256 in the manifest (as if the backup had been
    taken that way), plus any other field changes."""
    manifest_path = root / backup_id / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    data = (root / backup_id / name).read_bytes()
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry.update(sizeBytes=len(data), sha256=hashlib.sha256(data).hexdigest(), **changes)
    manifest_path.write_text(json.dumps(manifest))


def wait_replicated(live: Any, timeout: float = 10.0) -> None:
    """Until the replica has applied everything the master has (same offset): equal
    key counts alone would not show a consumer group read still on its way."""
    import time

    master, replica = live.client(live.master), live.client(live.replica)
    deadline = time.monotonic() + timeout
    while True:
        offset = master.info("replication")["master_repl_offset"]
        if replica.info("replication")["master_repl_offset"] >= offset:
            return
        assert time.monotonic() < deadline, "the replica did not catch up with its master"
        time.sleep(0.05)
