"""Restoring a backup into a running deployment, through its masters only.

Everything that can refuse runs before the first write: the manifest, each file's
size, sha256 and complete walk, the topology, the Redis and RDB versions of every
target master. Then: FLUSHALL SYNC on the master(s), RESTORE ... ABSTTL REPLACE in
pipelined batches (cluster: each key to the master owning its slot), the functions
(FUNCTION LOAD REPLACE), WAIT for every replica, and a check that each replica has
caught up (same offset, same key count per database) and, with Sentinels, that they
still agree on the same master at the same configuration epoch.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import discovery, rdb
from .config import BackupError, Config, Credentials, Refused, as_config
from .crc import key_slot
from .engine import _work_dir, fetch_and_verify, read_manifest
from .manifest import Manifest, version_tuple
from .resp import Connection, RespError, encode, keyspace, parse_info
from .targets import Target, make_target

# A batch ends at this many bytes too: a few large values must not pile up in memory.
_BATCH_BYTES = 16 << 20


@dataclass
class _Master:
    address: tuple[str, int]
    conn: Connection
    info: dict[str, str]
    replicas: list[tuple[str, int]]
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    db: int = -1


@dataclass
class _Stats:
    keys: dict[int, int] = field(default_factory=dict)
    expired: int = 0
    bytes: int = 0
    functions: int = 0


def restore(
    config: Config | dict[str, Any] | str | Path, backup: str, admin_password: str, *, target: Target | None = None
) -> dict[str, Any]:
    config = as_config(config)
    started = time.monotonic()
    target = target or make_target(config.target)
    manifest = read_manifest(target, backup)
    if manifest.topology != config.topology:
        raise Refused(f"backup {backup} is of a {manifest.topology} deployment; this one is {config.topology}")
    work = _work_dir(config, f"restore-{backup}")
    credentials = Credentials(config.restore_user, password=admin_password)
    try:
        summaries = fetch_and_verify(config, manifest, work, target=target)
        if config.topology == "cluster":
            stray = {name: s.keys for name, s in summaries.items() if set(s.keys) - {0}}
            if stray:
                raise Refused(f"backup {backup} holds keys outside database 0, which a cluster cannot hold: {stray}")
        if config.topology == "sentinel":
            report = _restore_sentinel(config, manifest, summaries, work, credentials)
        else:
            report = _restore_cluster(config, manifest, summaries, work, credentials)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    report.update(id=backup, seconds=round(seconds, 3), mbPerSecond=round(report["bytes"] / 1e6 / seconds, 2))
    return report


def _open_master(config: Config, address: tuple[str, int], credentials: Credentials) -> _Master:
    conn = config.connect(*address, credentials, timeout=config.sync_timeout)
    info = discovery.node_info(conn)
    if info.get("role") != "master":
        conn.close()
        raise Refused(f"{address[0]}:{address[1]} is a {info.get('role')}, not a master")
    replicas = []
    for name, value in info.items():
        if name.startswith("slave") and name[5:].isdigit():
            fields = dict(part.split("=", 1) for part in value.split(","))
            replicas.append((fields["ip"], int(fields["port"])))
    return _Master(address, conn, info, replicas)


def _check_versions(manifest: Manifest, masters: list[_Master]) -> None:
    for master in masters:
        version = master.info.get("redis_version", "")
        where = f"{master.address[0]}:{master.address[1]}"
        # Valkey reports redis_version 7.2.4 and writes no redis-ver: Redis to Redis only.
        valkey = master.info.get("valkey_version")
        if not valkey and version_tuple(manifest.redis_version) > version_tuple(version):
            raise Refused(f"backup {manifest.id} is of Redis {manifest.redis_version}, newer than {where}'s {version}")
        refusal = rdb.loads(manifest.rdb_version, master.info)
        if refusal:
            raise Refused(f"backup {manifest.id} has RDB version {manifest.rdb_version}; {refusal} (at {where})")


def _flush(master: _Master) -> None:
    if not master.pending:
        return
    payload = b"".join(master.pending)
    count = len(master.pending)
    master.pending = []
    master.pending_bytes = 0
    for reply in master.conn.pipeline_encoded(payload, count):
        if isinstance(reply, RespError):
            raise BackupError(f"restore into {master.address[0]}:{master.address[1]} failed: {reply}")


def _feed(master: _Master, entry: rdb.Entry, payload: bytes, batch: int) -> None:
    if entry.db != master.db:
        master.pending.append(encode(("SELECT", entry.db)))
        master.db = entry.db
    ttl = entry.expire_ms or 0
    command = encode((b"RESTORE", entry.key, ttl, payload, b"ABSTTL", b"REPLACE"))
    master.pending.append(command)
    master.pending_bytes += len(command)
    if len(master.pending) >= batch or master.pending_bytes >= _BATCH_BYTES:
        _flush(master)


def _load(
    paths: list[tuple[Path, rdb.Summary]], masters: list[_Master], route: list[int] | None, config: Config
) -> _Stats:
    stats = _Stats()
    for path, summary in paths:
        with path.open("rb") as stream:
            reader = rdb.RdbReader(stream)
            for entry in reader.entries():
                if entry.expire_ms is not None and entry.expire_ms <= time.time() * 1000:
                    stats.expired += 1
                    continue
                payload = rdb.dump_payload(entry.type, entry.value, summary.rdb_version)
                master = masters[route[key_slot(entry.key)]] if route else masters[0]
                _feed(master, entry, payload, config.batch_size)
                stats.keys[entry.db] = stats.keys.get(entry.db, 0) + 1
                stats.bytes += len(entry.key) + len(payload)
        for code in summary.functions:
            for master in masters:
                _flush(master)
                master.conn.call("FUNCTION", "LOAD", "REPLACE", code)
            stats.functions += 1
    for master in masters:
        _flush(master)
    return stats


def _settle(config: Config, master: _Master, credentials: Credentials) -> dict[str, Any]:
    """WAIT until every replica acknowledged, then check each one's offset and keys."""
    expected = len(master.replicas)
    deadline = time.monotonic() + config.wait_timeout
    acknowledged = 0
    while expected:
        acknowledged = master.conn.call("WAIT", expected, 1000)
        if acknowledged >= expected:
            break
        if time.monotonic() > deadline:
            raise BackupError(
                f"only {acknowledged} of {expected} replicas of {master.address[0]}:{master.address[1]} "
                f"acknowledged the restore within {config.wait_timeout:g}s"
            )
    master_keys = keyspace(parse_info(master.conn.call("INFO", "keyspace")))
    for host, port in master.replicas:
        with config.connect(host, port, credentials) as conn:
            while True:
                offset = int(parse_info(master.conn.call("INFO", "replication"))["master_repl_offset"])
                info = parse_info(conn.call("INFO", "replication"))
                info.update(parse_info(conn.call("INFO", "keyspace")))
                if int(info.get("slave_repl_offset", -1)) >= offset and keyspace(info) == master_keys:
                    break
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"replica {host}:{port} has offset {info.get('slave_repl_offset')} and keys "
                        f"{keyspace(info)}; its master {offset} and {master_keys}"
                    )
                time.sleep(0.05)
    return {
        "master": f"{master.address[0]}:{master.address[1]}",
        "replicasAcknowledged": acknowledged,
        "keys": {str(db): n for db, n in sorted(master_keys.items())},
    }


def _report(stats: _Stats, masters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "keysRestored": {str(db): n for db, n in sorted(stats.keys.items())},
        "skippedExpired": stats.expired,
        "functions": stats.functions,
        "bytes": stats.bytes,
        "masters": masters,
    }


def _restore_sentinel(
    config: Config, manifest: Manifest, summaries: dict[str, rdb.Summary], work: Path, credentials: Credentials
) -> dict[str, Any]:
    view = discovery.sentinel_view(config)
    flags = set(view.state.get("flags", "").split(","))
    if flags != {"master"} or view.state.get("failover-state", "none") not in ("none", ""):
        raise Refused(f"the Sentinels see the master with flags {view.state.get('flags')}: not restoring now")
    master = _open_master(config, view.master, credentials)
    try:
        _check_versions(manifest, [master])
        master.conn.call("FLUSHALL", "SYNC")
        stats = _load([(work / f.name, summaries[f.name]) for f in manifest.files], [master], None, config)
        settled = _settle(config, master, credentials)
    finally:
        master.conn.close()
    after = discovery.sentinel_view(config)
    epoch_before, epoch_after = view.state.get("config-epoch"), after.state.get("config-epoch")
    if after.master != view.master or epoch_after != epoch_before:
        raise BackupError(
            f"the Sentinels failed over during the restore: master {view.master} epoch {epoch_before} "
            f"became {after.master} epoch {epoch_after}; check the data on the new master"
        )
    report = _report(stats, [settled])
    report["sentinel"] = {
        "master": f"{view.master[0]}:{view.master[1]}",
        "configEpoch": epoch_after,
        "flags": after.state.get("flags"),
    }
    return report


def _restore_cluster(
    config: Config, manifest: Manifest, summaries: dict[str, rdb.Summary], work: Path, credentials: Credentials
) -> dict[str, Any]:
    shards = discovery.cluster_shards(config, credentials)
    route = [0] * discovery.SLOTS
    for index, shard in enumerate(shards):
        for start, end in shard.ranges:
            route[start : end + 1] = [index] * (end - start + 1)
    masters: list[_Master] = []
    try:
        for shard in shards:
            masters.append(_open_master(config, (shard.master.host, shard.master.port), credentials))
        _check_versions(manifest, masters)
        for master in masters:
            master.conn.call("FLUSHALL", "SYNC")
        stats = _load([(work / f.name, summaries[f.name]) for f in manifest.files], masters, route, config)
        settled = [_settle(config, master, credentials) for master in masters]
    finally:
        for master in masters:
            master.conn.close()
    return _report(stats, settled)
