"""Backup and restore of a Sentinel deployment, on real Redis 7.0 processes: a master,
its replica and three Sentinels from the live fixtures (tests/unit/conftest.py), the
`backup` ACL user with exactly the engine's documented commands, a directory target."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_ha.backup import config as backup_config
from redis_ha.backup.config import Refused
from redis_ha.backup.engine import list_backups, prune, run_schedule, take_backup, verify_backup
from redis_ha.backup.manifest import MANIFEST
from redis_ha.backup.restore import restore
from tests.support import redis_data
from tests.support.backup_live import (
    REDIS_BACKUP_COMMANDS,
    backup_deployment,
    backup_file,
    create_backup_user,
    reseal_manifest,
    rewrite_rdb,
    sentinel_config,
    wait_replicated,
)
from tests.support.live import LiveDeployment, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _db(live: LiveDeployment, node: Any = None) -> Any:
    node = node or live.master
    password = live.passwords["admin"]
    return lambda db: redis.Redis(
        host="127.0.0.1", port=node.port, username="admin", password=password, db=db, protocol=2
    )


@pytest.fixture(scope="module")
def source(
    tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str], backup_password: str
) -> Iterator[LiveDeployment]:
    with backup_deployment(tmp_path_factory.mktemp("source"), passwords, backup_password) as live:
        redis_data.populate(_db(live))
        wait_replicated(live)
        yield live


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str], backup_password: str
) -> Iterator[LiveDeployment]:
    with backup_deployment(tmp_path_factory.mktemp("target"), passwords, backup_password) as live:
        yield live


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backups")


def _config(live: LiveDeployment, base: Path, password: str, store: Path, **extra: Any) -> backup_config.Config:
    return backup_config.config_from_dict(
        sentinel_config(base, live, password, {"kind": "directory", "path": str(store)}, **extra)
    )


@pytest.fixture(scope="module")
def taken(
    source: LiveDeployment, store: Path, backup_password: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One backup of the source, with the source's contents at that time."""
    config = _config(source, tmp_path_factory.mktemp("cfg"), backup_password, store)
    contents = redis_data.snapshot(_db(source))
    manifest = take_backup(config)
    return {"manifest": manifest, "contents": contents, "config": config}


def test_the_backup_comes_from_the_replica_and_the_manifest_says_so(
    source: LiveDeployment, taken: dict[str, Any], store: Path
) -> None:
    manifest = taken["manifest"]
    replica = source.client(source.replica)
    info = replica.info()
    (entry,) = manifest.files
    assert entry.source["role"] == "slave"
    assert entry.source["address"] == f"127.0.0.1:{source.replica.port}"
    assert entry.source["runId"] == info["run_id"]
    assert entry.replication["replid"] == info["master_replid"]
    assert 0 < entry.replication["offset"] <= info["slave_repl_offset"]
    expected = {str(db): _db(source)(db).dbsize() for db in redis_data.DATABASES}
    assert entry.keys == expected == entry.info_keyspace
    assert entry.redis_version == info["redis_version"] and entry.rdb_version == 10
    assert manifest.topology == "sentinel" and manifest.deployment == "redis-ha"
    stored = backup_file(store, manifest.id, entry.name)
    assert stored.stat().st_size == entry.size_bytes
    # The manifest on the target is the one returned; a list shows the backup complete.
    on_disk = json.loads((store / manifest.id / MANIFEST).read_text())
    assert on_disk["files"][0]["sha256"] == entry.sha256 and on_disk["id"] == manifest.id
    listed = {b["id"]: b for b in list_backups(taken["config"])}
    assert listed[manifest.id]["complete"] and listed[manifest.id]["keys"] == sum(expected.values())
    verify_backup(taken["config"], manifest.id)


def test_a_restore_into_a_fresh_deployment_brings_back_every_key(
    target: LiveDeployment, taken: dict[str, Any], store: Path, backup_password: str, tmp_path: Path
) -> None:
    config = _config(target, tmp_path, backup_password, store)
    _db(target)(5).set("left-over", "x")
    report = restore(config, taken["manifest"].id, target.passwords["admin"])
    expected = taken["contents"]
    assert redis_data.same_contents(expected, redis_data.snapshot(_db(target))) == []
    # The replica has every key too (WAIT and the offset check ran before returning).
    assert redis_data.same_contents(expected, redis_data.snapshot(_db(target, target.replica))) == []
    assert _db(target)(5).exists("left-over") == 0  # FLUSHALL first
    assert report["keysRestored"] == taken["manifest"].files[0].keys
    assert report["skippedExpired"] == 0 and report["bytes"] > 0 and report["mbPerSecond"] > 0
    assert report["masters"][0]["replicasAcknowledged"] == 1
    assert report["sentinel"]["master"] == f"127.0.0.1:{target.master.port}"


def test_a_restore_into_the_same_deployment_undoes_overwrites(source: LiveDeployment, taken: dict[str, Any]) -> None:
    client = _db(source)
    client(1).flushdb()
    client(0).set("db0:int8", "changed")
    client(0).set("brand-new", "x")
    client(3).delete("db3:stream")
    restore(taken["config"], taken["manifest"].id, source.passwords["admin"])
    assert redis_data.same_contents(taken["contents"], redis_data.snapshot(client)) == []
    assert redis_data.same_contents(taken["contents"], redis_data.snapshot(_db(source, source.replica))) == []


def _copy_backup(store: Path, backup_id: str, new_id: str) -> Path:
    shutil.copytree(store / backup_id, store / new_id)
    manifest = json.loads((store / new_id / MANIFEST).read_text())
    manifest["id"] = new_id
    (store / new_id / MANIFEST).write_text(json.dumps(manifest))
    return store / new_id


@contextmanager
def _copy_to_spoil(target: LiveDeployment, store: Path, taken: dict[str, Any], new_id: str) -> Iterator[Path]:
    """A copy of the taken backup under `new_id`, for a test to spoil and see refused.
    A marker goes into the target first; once the test's refusals are through, the
    target must hold what it held then (a refused restore flushes and writes nothing),
    and the copy goes."""
    _db(target)(0).set("marker", "still here")
    before = redis_data.snapshot(_db(target), (0, 1, 3, 5))
    copy = _copy_backup(store, taken["manifest"].id, new_id)
    yield copy
    assert redis_data.same_contents(before, redis_data.snapshot(_db(target), (0, 1, 3, 5)), 5000) == []
    shutil.rmtree(copy)


def test_a_tampered_byte_is_refused_and_nothing_changes(
    target: LiveDeployment, taken: dict[str, Any], store: Path, backup_password: str, tmp_path: Path
) -> None:
    config = _config(target, tmp_path, backup_password, store)
    with _copy_to_spoil(target, store, taken, "20000101T000000Z") as copy:
        rdb_path = copy / taken["manifest"].files[0].name
        data = bytearray(rdb_path.read_bytes())
        data[len(data) // 3] ^= 0x20
        rdb_path.write_bytes(bytes(data))
        with pytest.raises(Refused, match="sha256"):
            restore(config, "20000101T000000Z", target.passwords["admin"])
        # Resealed (sha256 and size match), the file still fails its own CRC-64 walk.
        reseal_manifest(store, "20000101T000000Z", rdb_path.name)
        with pytest.raises(Refused, match="does not parse"):
            restore(config, "20000101T000000Z", target.passwords["admin"])


def test_a_backup_of_a_newer_redis_is_refused_and_nothing_changes(
    target: LiveDeployment, taken: dict[str, Any], store: Path, backup_password: str, tmp_path: Path
) -> None:
    config = _config(target, tmp_path, backup_password, store)
    with _copy_to_spoil(target, store, taken, "20000101T000001Z") as copy:
        entry = taken["manifest"].files[0]
        version = entry.redis_version.encode()
        newer = b"7.9" + version[3:]
        rewrite_rdb(
            copy / entry.name,
            b"\x09redis-ver" + bytes((len(version),)) + version,
            b"\x09redis-ver" + bytes((len(newer),)) + newer,
        )
        reseal_manifest(store, "20000101T000001Z", entry.name, redisVersion=newer.decode())
        with pytest.raises(Refused, match="newer than"):
            restore(config, "20000101T000001Z", target.passwords["admin"])


def test_a_missing_manifest_or_another_topology_is_refused(
    target: LiveDeployment, taken: dict[str, Any], store: Path, backup_password: str, tmp_path: Path
) -> None:
    config = _config(target, tmp_path, backup_password, store)
    with _copy_to_spoil(target, store, taken, "20000101T000002Z") as copy:
        manifest = json.loads((copy / MANIFEST).read_text())
        manifest["topology"] = "cluster"
        (copy / MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(Refused, match="cluster deployment"):
            restore(config, "20000101T000002Z", target.passwords["admin"])
        (copy / MANIFEST).unlink()
        with pytest.raises(Refused, match="no manifest"):
            restore(config, "20000101T000002Z", target.passwords["admin"])
        (copy / MANIFEST).write_text("{not json")
        with pytest.raises(Refused, match="unreadable"):
            restore(config, "20000101T000002Z", target.passwords["admin"])


def test_keys_expired_since_the_backup_are_skipped(
    source: LiveDeployment, target: LiveDeployment, store: Path, backup_password: str, tmp_path: Path
) -> None:
    _db(source)(0).set("short-lived", "x", px=1500)
    wait_until(lambda: source.client(source.replica).exists("short-lived"), 5, "the replica to get the key")
    manifest = take_backup(_config(source, tmp_path / "s", backup_password, store))
    time.sleep(1.6)
    report = restore(_config(target, tmp_path / "t", backup_password, store), manifest.id, target.passwords["admin"])
    assert report["skippedExpired"] >= 1
    assert _db(target)(0).exists("short-lived") == 0


def test_the_cli_refuses_with_exit_code_2_and_restores_with_0(
    target: LiveDeployment, taken: dict[str, Any], store: Path, backup_password: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(sentinel_config(tmp_path, target, backup_password, {"kind": "directory", "path": str(store)}))
    )
    password = target.passwords["admin"]

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "redis_ha.backup", *args, "--config", str(path)]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, cwd=ROOT)

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert taken["manifest"].id in listed.stdout
    refused = cli("restore", "--from", "19990101T000000Z", "--password-stdin", stdin=password + "\n")
    assert refused.returncode == 2 and "refused" in refused.stderr and len(refused.stderr.splitlines()) == 1
    no_stdin = cli("restore", "--from", taken["manifest"].id)
    assert no_stdin.returncode == 1
    done = cli("restore", "--from", taken["manifest"].id, "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["keysRestored"] == taken["manifest"].files[0].keys
    for output in (listed, refused, done):
        assert password not in output.stdout + output.stderr and backup_password not in output.stdout + output.stderr


def test_no_replica_is_refused_unless_the_master_is_allowed(
    tmp_path: Path, passwords: dict[str, str], backup_password: str
) -> None:
    with backup_deployment(tmp_path / "lone", passwords, backup_password, replica=False) as live:
        store = tmp_path / "store"
        with pytest.raises(Refused, match="no replica"):
            take_backup(_config(live, tmp_path / "a", backup_password, store))
        assert list_backups(_config(live, tmp_path / "a", backup_password, store)) == []
        # The config file's dict does as well as a Config.
        raw = sentinel_config(tmp_path / "b", live, backup_password, {"kind": "directory", "path": str(store)})
        manifest = take_backup({**raw, "allowMaster": True})
        assert manifest.files[0].source["role"] == "master"
        assert manifest.to_dict()["files"][0]["source"]["role"] == "master"


def test_the_schedule_takes_and_prunes_and_logs_json_lines(
    source: LiveDeployment, backup_password: str, tmp_path: Path
) -> None:
    store = tmp_path / "scheduled"
    config = _config(source, tmp_path, backup_password, store, schedule="*/5 * * * *", retention=2)
    clock = [datetime(2026, 1, 1, 0, 1, tzinfo=UTC)]

    def now() -> datetime:
        return clock[0]

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    out = StringIO()
    assert run_schedule(config, max_runs=3, now=now, sleep=sleep, out=out) == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events].count("backup") == 3
    assert [e["until"] for e in events if e["event"] == "sleep"][:2] == ["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]
    assert len([b for b in list_backups(config) if b["complete"]]) == 2  # retention 2
    assert backup_password not in out.getvalue() and source.passwords["admin"] not in out.getvalue()
    assert prune(config) == []


def test_two_replicas_the_backup_skips_a_dead_one_and_the_restore_waits_for_both(
    tmp_path: Path, passwords: dict[str, str], backup_password: str
) -> None:
    """A master, two replicas and three Sentinels: the second replica is a bare
    redis-server following the master (the live fixtures render one), with the users
    the Sentinels, the engine and the test log in as."""
    from tests.support.redis_servers import BareRedis

    with ExitStack() as cleanup:
        live = cleanup.enter_context(backup_deployment(tmp_path / "two", passwords, backup_password))
        extra = BareRedis(
            tmp_path / "replica-2",
            f"replicaof 127.0.0.1 {live.master.port}",
            "masteruser replica",
            f"masterauth {passwords['replica']}",
        )
        cleanup.callback(extra.stop)  # stopped first: the stack unwinds last in, first out
        plain = extra.client()
        for user in ("admin", "sentinel"):
            plain.execute_command("ACL", "SETUSER", user, "reset", "on", f">{passwords[user]}", "~*", "&*", "+@all")
        create_backup_user(plain, backup_password, REDIS_BACKUP_COMMANDS)
        plain.execute_command("ACL", "SETUSER", "default", "off")
        second = redis.Redis(port=extra.port, username="admin", password=passwords["admin"], protocol=2)
        wait_until(lambda: second.info("replication")["master_link_status"] == "up", 15, "the second replica's link")
        sentinel = live.client(live.sentinel, "sentinel-client")

        def both_listed() -> bool:
            entries = [list(e) for e in sentinel.execute_command("SENTINEL", "REPLICAS", live.settings.master_name)]
            return sum(1 for e in entries if "ok" in e) == 2

        wait_until(both_listed, 30, "the Sentinels to list both replicas")
        redis_data.populate(_db(live), databases=(0, 2))
        library = "#!lua name=backuplib\nredis.register_function('answer', function() return 42 end)"
        _db(live)(0).execute_command("FUNCTION", "LOAD", library)
        store = tmp_path / "store"
        config = _config(live, tmp_path / "cfg", backup_password, store)
        live.replica.stop()  # the rendered replica is gone: the backup comes from the other one
        manifest = take_backup(config)
        assert manifest.files[0].source == {
            "address": f"127.0.0.1:{extra.port}",
            "runId": second.info("server")["run_id"],
            "role": "slave",
            "lagBytes": manifest.files[0].source["lagBytes"],
        }
        live.start_node(live.replica)
        wait_until(
            lambda: live.client(live.replica).info("replication").get("master_link_status") == "up", 15, "the resync"
        )
        expected = redis_data.snapshot(_db(live), (0, 2))
        _db(live)(0).flushall()
        _db(live)(0).execute_command("FUNCTION", "FLUSH")
        report = restore(config, manifest.id, passwords["admin"])
        assert report["masters"][0]["replicasAcknowledged"] == 2
        assert manifest.files[0].functions == 1 and report["functions"] == 1
        assert _db(live)(0).execute_command("FCALL", "answer", 0) == 42
        assert "backuplib" in str(live.client(live.replica).execute_command("FUNCTION", "LIST"))
        admin = passwords["admin"]

        def on_second(db: int) -> redis.Redis:
            return redis.Redis(port=extra.port, username="admin", password=admin, db=db, protocol=2)

        for node_db in (_db(live), _db(live, live.replica), on_second):
            assert redis_data.same_contents(expected, redis_data.snapshot(node_db, (0, 2))) == []
