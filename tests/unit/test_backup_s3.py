"""The backup engine against a real S3-compatible server (versitygw, tests/support/s3.py):
backup from the replica of a live Sentinel deployment, list (paginated), retention,
restore, and the refusals, every request signed with Signature V4 and checked by the
server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_ha.backup import config as backup_config
from redis_ha.backup.config import BackupError, Refused
from redis_ha.backup.engine import list_backups, prune, take_backup, verify_backup
from redis_ha.backup.restore import restore
from redis_ha.backup.s3 import S3Target
from redis_ha.backup.targets import make_target
from tests.support import redis_data
from tests.support.backup_live import backup_deployment, sentinel_config, wait_replicated
from tests.support.live import LiveDeployment
from tests.support.s3 import S3Server


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str], backup_password: str
) -> Iterator[LiveDeployment]:
    with backup_deployment(tmp_path_factory.mktemp("s3-deployment"), passwords, backup_password) as live:
        yield live


def _db(live: LiveDeployment) -> Any:
    password = live.passwords["admin"]
    return lambda db: redis.Redis(host="127.0.0.1", port=live.master.port, username="admin", password=password, db=db)


def _config(
    live: LiveDeployment, base: Path, password: str, target: dict[str, Any], **extra: Any
) -> backup_config.Config:
    return backup_config.config_from_dict(sentinel_config(base, live, password, target, **extra))


def test_backup_list_retention_restore_through_s3(
    deployment: LiveDeployment, s3_server: S3Server, backup_password: str, tmp_path: Path
) -> None:
    spec = s3_server.spec(tmp_path / "s3.json", prefix="redis-ha/dev", pageSize=2)
    config = _config(deployment, tmp_path, backup_password, spec, retention=2)
    redis_data.populate(_db(deployment), databases=(0, 1))
    wait_replicated(deployment)
    expected = redis_data.snapshot(_db(deployment), (0, 1))
    target = make_target(spec)
    # A leftover of an interrupted backup, older than any complete one.
    target.put_bytes("20000101T000000Z", "node-x.rdb", b"partial")
    manifests = [take_backup(config) for _ in range(3)]
    assert all(m.files[0].source["role"] == "slave" for m in manifests)
    listed = list_backups(config)  # three pages and more, at two keys a page
    assert [b["id"] for b in listed if b["complete"]] == [m.id for m in manifests]
    assert {b["id"] for b in listed if not b["complete"]} == {"20000101T000000Z"}
    # An incomplete backup newer than the newest complete one may be in progress: kept.
    target.put_bytes("29990101T000000Z", "node-x.rdb", b"in progress")
    deleted = prune(config)
    assert deleted == ["20000101T000000Z", manifests[0].id]
    remaining = {b["id"]: b["complete"] for b in list_backups(config)}
    assert remaining == {manifests[1].id: True, manifests[2].id: True, "29990101T000000Z": False}
    target.delete("29990101T000000Z")
    # The objects sit where the layout says.
    keys = S3Target.from_spec(spec).keys()
    assert f"redis-ha/dev/{manifests[2].id}/manifest.json" in keys
    assert f"redis-ha/dev/{manifests[2].id}/{manifests[2].files[0].name}" in keys

    verify_backup(config, manifests[2].id)
    _db(deployment)(0).flushdb()
    _db(deployment)(1).set("db1:int8", "overwritten")
    report = restore(config, manifests[2].id, deployment.passwords["admin"])
    assert redis_data.same_contents(expected, redis_data.snapshot(_db(deployment), (0, 1))) == []
    assert report["keysRestored"] == manifests[2].files[0].keys


def test_a_tampered_object_is_refused_and_nothing_changes(
    deployment: LiveDeployment, s3_server: S3Server, backup_password: str, tmp_path: Path
) -> None:
    spec = s3_server.spec(tmp_path / "s3.json", prefix="tamper")
    config = _config(deployment, tmp_path, backup_password, spec)
    _db(deployment)(0).set("marker", "here")
    manifest = take_backup(config)
    name = manifest.files[0].name
    target = make_target(spec)
    data = bytearray(target.get_bytes(manifest.id, name))
    data[100] ^= 0xFF
    target.put_bytes(manifest.id, name, bytes(data))
    _db(deployment)(0).set("after-backup", "kept")
    with pytest.raises(Refused, match="sha256"):
        restore(config, manifest.id, deployment.passwords["admin"])
    assert _db(deployment)(0).get("after-backup") == b"kept"


def test_a_wrong_secret_fails_with_the_servers_error_and_no_secret(
    deployment: LiveDeployment, s3_server: S3Server, backup_password: str, tmp_path: Path
) -> None:
    spec = s3_server.spec(tmp_path / "s3.json")
    (tmp_path / "bad.json").write_text(json.dumps({"accessKeyId": s3_server.access_key, "secretAccessKey": "wrong"}))
    spec["credentialsFile"] = str(tmp_path / "bad.json")
    with pytest.raises(BackupError, match="403 SignatureDoesNotMatch") as raised:
        list_backups(_config(deployment, tmp_path, backup_password, spec))
    assert s3_server.secret_key not in str(raised.value)
