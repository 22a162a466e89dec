"""Taking, listing, verifying and pruning backups, and the scheduler loop."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from . import discovery, metrics, rdb, schedule
from .config import BackupError, Config, Refused, as_config
from .manifest import MANIFEST, FileEntry, Manifest, backup_id, now_utc
from .replication import fetch_rdb
from .resp import RespError
from .targets import Target, make_target, retention_plan


def log_event(event: str, out: TextIO | None = None, **fields: Any) -> None:
    """One JSON line on stdout. Callers pass no secret: passwords never reach here."""
    line = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "event": event, **fields}
    print(json.dumps(line, sort_keys=True, default=str), file=out or sys.stdout, flush=True)


def _work_dir(config: Config, name: str) -> Path:
    path = config.work_dir / f"redis-ha-backup-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _new_id(target: Target) -> str:
    taken = {item.id for item in target.list()}
    while True:
        candidate = backup_id(now_utc())
        if candidate not in taken:
            return candidate
        time.sleep(1.05 - (time.time() % 1))


@dataclass(frozen=True)
class _Job:
    name: str
    shard: str | None
    source: discovery.Source


def take_backup(config: Config | dict[str, Any] | str | Path, *, target: Target | None = None) -> Manifest:
    """Snapshot a replica (of every shard), store the files, then the manifest."""
    config = as_config(config)
    started = time.monotonic()
    target = target or make_target(config.target)
    slots: list[dict[str, Any]] = []
    if config.topology == "sentinel":
        view = discovery.sentinel_view(config)
        source = discovery.pick_sentinel_source(config, view)
        jobs = [_Job(f"node-{source.host}-{source.port}.rdb", None, source)]
    else:
        shards = discovery.cluster_shards(config, config.backup_user)
        jobs = []
        for index, shard in enumerate(shards):
            name = f"shard-{index}"
            jobs.append(_Job(f"{name}.rdb", name, discovery.pick_shard_source(config, shard)))
            slots.append(
                {
                    "shard": name,
                    "ranges": [list(r) for r in shard.ranges],
                    "masterId": shard.master.id,
                    "master": f"{shard.master.host}:{shard.master.port}",
                }
            )
    new_id = _new_id(target)
    work = _work_dir(config, new_id)
    files = []
    try:
        for job in jobs:
            files.append(_snapshot(config, target, new_id, job, work / job.name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = Manifest(
        id=new_id,
        created=now_utc().strftime("%Y-%m-%dT%H:%M:%SZ"),
        deployment=config.deployment,
        topology=config.topology,
        files=files,
        slots=slots,
        seconds=round(time.monotonic() - started, 3),
    )
    target.put_bytes(new_id, MANIFEST, manifest.to_json().encode())
    return manifest


def _snapshot(config: Config, target: Target, new_id: str, job: _Job, path: Path) -> FileEntry:
    source = job.source
    try:
        with config.connect(source.host, source.port, config.backup_user, timeout=config.sync_timeout) as conn:
            snapshot = fetch_rdb(conn, path, diskless=config.diskless, timeout=config.sync_timeout)
    except (OSError, RespError) as error:
        raise BackupError(f"the snapshot of {source.host}:{source.port} failed: {error}") from None
    try:
        summary = rdb.walk(str(path))
    except rdb.RdbError as error:
        raise BackupError(f"the snapshot of {source.host}:{source.port} does not parse: {error}") from None
    target.put_file(new_id, job.name, path, snapshot.sha256)
    return FileEntry(
        name=job.name,
        shard=job.shard,
        source={
            "address": f"{source.host}:{source.port}",
            "runId": source.run_id,
            "role": source.role,
            "lagBytes": source.lag,
        },
        replication={
            "replid": snapshot.replid or summary.aux.get("repl-id", ""),
            "offset": snapshot.offset if snapshot.offset is not None else int(summary.aux.get("repl-offset", -1)),
        },
        keys={str(db): n for db, n in sorted(summary.keys.items())},
        info_keyspace={str(db): n for db, n in sorted(source.keyspace.items())},
        size_bytes=snapshot.size,
        sha256=snapshot.sha256,
        redis_version=summary.redis_version,
        rdb_version=summary.rdb_version,
        functions=len(summary.functions),
    )


def list_backups(config: Config | dict[str, Any] | str | Path, *, target: Target | None = None) -> list[dict[str, Any]]:
    """Every backup of the target, oldest first; complete ones with their summary."""
    config = as_config(config)
    target = target or make_target(config.target)
    result = []
    for item in target.list():
        entry: dict[str, Any] = {"id": item.id, "complete": item.complete, "files": list(item.names)}
        if item.complete:
            try:
                manifest = Manifest.from_json(target.get_bytes(item.id, MANIFEST))
                entry.update(
                    topology=manifest.topology,
                    deployment=manifest.deployment,
                    keys=manifest.total_keys(),
                    bytes=sum(f.size_bytes for f in manifest.files),
                    redisVersion=manifest.redis_version,
                )
            except (ValueError, TypeError, KeyError, BackupError) as error:
                entry.update(complete=False, error=f"unreadable manifest: {error}")
        result.append(entry)
    return result


def read_manifest(target: Target, backup: str) -> Manifest:
    try:
        return Manifest.from_json(target.get_bytes(backup, MANIFEST))
    except (OSError, BackupError) as error:
        raise Refused(f"backup {backup}: no manifest in {target.description} ({error})") from None
    except (ValueError, TypeError, KeyError) as error:
        raise Refused(f"backup {backup}: the manifest is unreadable ({error})") from None


def fetch_and_verify(
    config: Config, manifest: Manifest, work: Path, *, target: Target | None = None
) -> dict[str, rdb.Summary]:
    """Download every file of `manifest` into `work` and check it: size, sha256, a
    complete walk with the CRC-64, and the key counts of the manifest."""
    import hashlib

    target = target or make_target(config.target)
    summaries = {}
    for entry in manifest.files:
        path = work / entry.name
        try:
            target.get_file(manifest.id, entry.name, path)
        except (OSError, BackupError) as error:
            raise Refused(f"backup {manifest.id}: cannot fetch {entry.name}: {error}") from None
        size = path.stat().st_size
        if size != entry.size_bytes:
            raise Refused(f"backup {manifest.id}: {entry.name} has {size} bytes, the manifest says {entry.size_bytes}")
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != entry.sha256:
            raise Refused(f"backup {manifest.id}: the sha256 of {entry.name} differs from the manifest's")
        try:
            summary = rdb.walk(str(path))
        except rdb.RdbError as error:
            raise Refused(f"backup {manifest.id}: {entry.name} does not parse: {error}") from None
        if (summary.redis_version, summary.rdb_version) != (entry.redis_version, entry.rdb_version):
            raise Refused(
                f"backup {manifest.id}: {entry.name} was written by Redis {summary.redis_version} (RDB "
                f"{summary.rdb_version}), the manifest says {entry.redis_version} (RDB {entry.rdb_version})"
            )
        counted = {str(db): n for db, n in sorted(summary.keys.items())}
        if counted != entry.keys:
            raise Refused(f"backup {manifest.id}: {entry.name} holds keys {counted}, the manifest says {entry.keys}")
        summaries[entry.name] = summary
    return summaries


def verify_backup(
    config: Config | dict[str, Any] | str | Path, backup: str, *, target: Target | None = None
) -> Manifest:
    """Refused unless the backup is complete and every file checks out."""
    config = as_config(config)
    target = target or make_target(config.target)
    manifest = read_manifest(target, backup)
    work = _work_dir(config, f"verify-{backup}")
    try:
        fetch_and_verify(config, manifest, work, target=target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def prune(config: Config | dict[str, Any] | str | Path, *, target: Target | None = None) -> list[str]:
    """Apply the retention: returns the ids deleted."""
    config = as_config(config)
    target = target or make_target(config.target)
    doomed = retention_plan(target.list(), config.retention)
    for item in doomed:
        target.delete(item)
    return doomed


def run_schedule(
    config: Config | dict[str, Any] | str | Path,
    *,
    max_runs: int | None = None,
    now: Callable[[], datetime] = now_utc,
    sleep: Callable[[float], None] = time.sleep,
    out: TextIO | None = None,
) -> int:
    """Sleep until each fire time of the schedule, take a backup, prune. Returns the
    number of failed runs (only when `max_runs` ends the loop)."""
    config = as_config(config)
    plan = schedule.parse(config.schedule)
    log_event("schedule", out, schedule=config.schedule, retention=config.retention, topology=config.topology)
    gauges = None
    if config.metrics_port:
        gauges = metrics.Metrics(config.deployment, metrics.max_interval(plan, now()), started=now().timestamp())
        metrics.serve(gauges, config.metrics_port)
    # A target without any complete backup (a new deployment) gets one at once rather
    # than at the first fire time, hours away: from then on the alerts can tell a
    # missing backup from one not due yet.
    runs = failures = 0
    first = not _newest_backup(config, gauges, out)
    while max_runs is None or runs < max_runs:
        if not first:
            fire = plan.next_after(now())
            log_event("sleep", out, until=fire.strftime("%Y-%m-%dT%H:%M:%SZ"))
            while (remaining := (fire - now()).total_seconds()) > 0:
                sleep(min(remaining, 60.0))
        first = False
        runs += 1
        try:
            manifest = take_backup(config)
            size = sum(f.size_bytes for f in manifest.files)
            if gauges is not None:
                gauges.success(size, manifest.total_keys(), manifest.seconds, at=now().timestamp())
            log_event(
                "backup",
                out,
                id=manifest.id,
                keys=manifest.total_keys(),
                bytes=size,
                seconds=manifest.seconds,
                sources=[f.source["address"] for f in manifest.files],
            )
            log_event("prune", out, deleted=prune(config))
        except (BackupError, OSError) as error:
            failures += 1
            if gauges is not None:
                gauges.failure(at=now().timestamp())
            log_event("failure", out, error=str(error), kind=type(error).__name__)
    return failures


def _newest_backup(config: Config, gauges: metrics.Metrics | None, out: TextIO | None) -> str | None:
    """The id of the newest complete backup in the target (recorded in the gauges), or
    None when there is none or the target cannot be read (then the first run tells)."""
    try:
        complete = [entry["id"] for entry in list_backups(config) if entry.get("complete")]
    except (BackupError, OSError) as error:
        log_event("failure", out, error=f"cannot list the backups: {error}", kind=type(error).__name__)
        return None
    if not complete:
        return None
    newest = max(complete)
    if gauges is not None:
        taken = datetime.strptime(newest, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        gauges.known_backup(taken.timestamp())
    return str(newest)
