"""The backup engine's parts that need no server: the cron schedule, retention, the
directory target, the manifest, the config, Signature V4, and the zipapp."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_ha.backup import zipapp
from redis_ha.backup.config import ConfigError, config_from_dict
from redis_ha.backup.manifest import FileEntry, Manifest, backup_id
from redis_ha.backup.s3 import sign
from redis_ha.backup.schedule import ScheduleError, next_fire, parse
from redis_ha.backup.targets import DirectoryTarget, Listing, retention_plan

T0 = datetime(2026, 12, 2, 0, 50, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */6 * * *", datetime(2026, 12, 2, 6, 0)),
        ("*/15 * * * *", datetime(2026, 12, 2, 1, 0)),
        ("50 0 * * *", datetime(2026, 12, 3, 0, 50)),  # this minute has begun: the next one
        ("51 0 * * *", datetime(2026, 12, 2, 0, 51)),
        ("30 2 * * 0", datetime(2026, 12, 6, 2, 30)),  # Sunday as 0
        ("30 2 * * 7", datetime(2026, 12, 6, 2, 30)),  # and as 7
        ("0 0 29 2 *", datetime(2028, 2, 29, 0, 0)),
        ("0 0 1,15 * 1", datetime(2026, 12, 7, 0, 0)),  # day 1 or 15, or a Monday
        ("5-10/2 3 * * *", datetime(2026, 12, 2, 3, 5)),
        ("0 12 * 1-3 *", datetime(2027, 1, 1, 12, 0)),
        ("7/20 * * * *", datetime(2026, 12, 2, 1, 7)),
    ],
)
def test_next_fire_times(expression: str, expected: datetime) -> None:
    assert next_fire(expression, T0) == expected.replace(tzinfo=UTC)
    assert parse(expression).matches(expected.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("* * *", "has 3 fields"),
        ("* * * * * *", "has 6 fields"),
        ("60 * * * *", "outside 0-59"),
        ("* 24 * * *", "outside 0-23"),
        ("* * 0 * *", "outside 1-31"),
        ("* * * 13 *", "outside 1-12"),
        ("* * * * 8", "outside 0-7"),
        ("*/0 * * * *", "bad step"),
        ("a * * * *", "not a number"),
        ("@daily", "has 1 fields"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty item"),
        ("* * * JAN *", "not a number"),
        ("0 0 31 2 *", "no day that exists"),
    ],
)
def test_bad_schedules_name_the_setting_and_what_is_allowed(expression: str, why: str) -> None:
    with pytest.raises(ScheduleError, match=why) as raised:
        parse(expression)
    assert "redis-ha:backupSchedule" in str(raised.value)


def _listing(ident: str, complete: bool = True) -> Listing:
    return Listing(ident, complete, ("manifest.json",) if complete else ("x.rdb",))


def test_retention_keeps_the_newest_complete_and_drops_older_leftovers() -> None:
    listings = [
        _listing("20260101T000000Z"),
        _listing("20260102T000000Z", complete=False),
        _listing("20260103T000000Z"),
        _listing("20260104T000000Z"),
        _listing("20260105T000000Z", complete=False),  # newer than every complete one: kept
    ]
    assert retention_plan(listings, 2) == ["20260101T000000Z", "20260102T000000Z"]
    assert retention_plan(listings, 5) == ["20260102T000000Z"]
    assert retention_plan([_listing("20260105T000000Z", complete=False)], 1) == []


def test_the_directory_target_writes_atomically_and_lists(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path, prefix="p")
    source = tmp_path / "file"
    source.write_bytes(b"x" * 3_000_000)
    target.put_file("20260101T000000Z", "a.rdb", source)
    target.put_bytes("20260101T000000Z", "manifest.json", b"{}")
    target.put_bytes("20260102T000000Z", "b.rdb", b"b")
    assert [p.name for p in (tmp_path / "p" / "20260101T000000Z").iterdir() if p.name.startswith(".")] == []
    assert target.list() == [
        Listing("20260101T000000Z", True, ("a.rdb", "manifest.json")),
        Listing("20260102T000000Z", False, ("b.rdb",)),
    ]
    copy = tmp_path / "copy"
    target.get_file("20260101T000000Z", "a.rdb", copy)
    assert copy.read_bytes() == source.read_bytes()
    target.delete("20260101T000000Z")
    assert [item.id for item in target.list()] == ["20260102T000000Z"]
    for bad in (("../x", "a"), ("20260101T000000Z", "../a"), ("20260101T000000Z", ".hidden")):
        with pytest.raises(ValueError):
            target.put_bytes(*bad, b"")


def test_the_manifest_round_trips_in_camel_case() -> None:
    entry = FileEntry(
        name="shard-0.rdb",
        shard="shard-0",
        source={"address": "h:1", "runId": "r", "role": "slave"},
        replication={"replid": "x" * 40, "offset": 5},
        keys={"0": 3},
        info_keyspace={"0": 3},
        size_bytes=10,
        sha256="0" * 64,
        redis_version="7.0.15",
        rdb_version=10,
    )
    manifest = Manifest("20260101T000000Z", "2026-01-01T00:00:00Z", "d", "cluster", [entry], [{"shard": "shard-0"}])
    data = json.loads(manifest.to_json())
    assert data["files"][0]["sizeBytes"] == 10 and data["files"][0]["infoKeyspace"] == {"0": 3}
    assert data["files"][0]["redisVersion"] == "7.0.15" and data["files"][0]["rdbVersion"] == 10
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert backup_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20260102T030405Z"
    with pytest.raises(ValueError):
        Manifest.from_json('{"format": 99}')


def _config(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "topology": "sentinel",
        "masterName": "m",
        "sentinels": [["h", 26379]],
        "backupUser": {"user": "backup", "passwordFile": "/x"},
        "target": {"kind": "directory", "path": "/b"},
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"topology": "x"}, "topology must be"),
        ({"backupUser": {"user": "backup", "password": "secret"}}, "no password in the config"),
        ({"target": {"kind": "ftp"}}, "target must be"),
        ({"sentinels": []}, "needs masterName and sentinels"),
        ({"topology": "cluster"}, "needs clusterNodes"),
        ({"retention": 0}, "retention"),
    ],
)
def test_bad_configs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_config(**changes))


def test_the_address_map_changes_what_is_dialled() -> None:
    config = config_from_dict(_config(addressMap={"redis-0:6379": "127.0.0.1:7000"}))
    assert config.dial("redis-0", 6379) == ("127.0.0.1", 7000)
    assert config.dial("redis-1", 6379) == ("redis-1", 6379)


def test_signature_v4_matches_the_published_example() -> None:
    # The GET Object example of the Signature V4 documentation for S3.
    headers = sign(
        "GET",
        "/test.txt",
        {},
        {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"},
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        moment=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["authorization"].endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in headers["authorization"]


def test_the_zipapp_runs_with_the_system_python_alone(tmp_path: Path) -> None:
    archive = zipapp.build(tmp_path / "redis-ha-backup.pyz")
    store = tmp_path / "store"
    DirectoryTarget(store).put_bytes("20260101T000000Z", "manifest.json", b"{}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(target={"kind": "directory", "path": str(store)})))
    # -I: isolated, no site-packages, no PYTHONPATH: nothing but the archive.
    helped = subprocess.run(["/usr/bin/python3", "-I", str(archive), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "take" in helped.stdout, helped.stderr
    listed = subprocess.run(
        ["/usr/bin/python3", "-I", str(archive), "list", "--config", str(config)], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["id"] == "20260101T000000Z"
    bad = subprocess.run(
        ["/usr/bin/python3", "-I", str(archive), "list", "--config", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "cannot read the config" in bad.stderr


def _shard(ranges: list[int], *nodes: tuple[str, int, str]) -> list[object]:
    return [
        b"slots",
        ranges,
        b"nodes",
        [
            [
                b"id",
                ident.encode(),
                b"port",
                port,
                b"ip",
                b"10.0.0.1",
                b"endpoint",
                b"10.0.0.1",
                b"role",
                role.encode(),
                b"replication-offset",
                10,
                b"health",
                b"online",
            ]
            for ident, port, role in nodes
        ],
    ]


def test_the_cluster_slot_map_must_be_whole() -> None:
    from redis_ha.backup.config import Refused
    from redis_ha.backup.discovery import parse_shards

    whole = [
        _shard([8192, 16383], ("b", 2, "master"), ("b2", 12, "replica")),
        _shard([0, 100, 101, 8191], ("a", 1, "master"), ("a2", 11, "replica")),
        _shard([], ("spare", 3, "master")),  # no slots: holds no data, left out
    ]
    shards = parse_shards(whole)
    assert [s.master.id for s in shards] == ["a", "b"]
    assert shards[0].ranges == [(0, 100), (101, 8191)] and shards[0].replicas[0].port == 11
    with pytest.raises(Refused, match="1 of 16384 slots have no shard"):
        parse_shards([_shard([0, 8190], ("a", 1, "master")), _shard([8192, 16383], ("b", 2, "master"))])
    with pytest.raises(Refused, match="2 masters"):
        parse_shards([_shard([0, 16383], ("a", 1, "master"), ("b", 2, "master"))])


def test_the_engine_needs_no_more_than_the_deployed_backup_user_allows() -> None:
    # The engine's documented needs (the live tests' `backup` user has exactly these)
    # are within the allowlists components/security.py deploys.
    from redis_ha.components import security

    from tests.support.backup_live import CLUSTER_BACKUP_COMMANDS, REDIS_BACKUP_COMMANDS

    assert set(REDIS_BACKUP_COMMANDS) <= set(security.BACKUP_COMMANDS)
    assert set(CLUSTER_BACKUP_COMMANDS) <= set(security.BACKUP_CLUSTER_COMMANDS)
    assert "psync" not in security.BACKUP_COMMANDS
    import redis_ha.backup as package

    for command in REDIS_BACKUP_COMMANDS:
        assert command in (package.__doc__ or "")


def test_the_deployed_worker_layout_runs_with_the_system_python_alone(tmp_path: Path) -> None:
    # components/backup_plan.py ships the package as plain files next to a launcher.
    from redis_ha.components.backup_plan import program_files

    program = tmp_path / "program"
    for name, text in program_files().items():
        (program / name).parent.mkdir(parents=True, exist_ok=True)
        (program / name).write_text(text)
    store = tmp_path / "store"
    DirectoryTarget(store).put_bytes("20260101T000000Z", "x.rdb", b"")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(target={"kind": "directory", "path": str(store)})))
    listed = subprocess.run(
        ["/usr/bin/python3", "-I", str(program), "list", "--config", str(config)], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"complete": False, "files": ["x.rdb"], "id": "20260101T000000Z"}
