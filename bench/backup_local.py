"""The backup engine's throughput on local processes (no Docker): a master, its replica
and three Sentinels from the unit tests' live fixtures on 127.0.0.1, filled with
`--keys` keys (strings, small hashes, lists, sets and zsets, a tenth with TTLs), then
one backup (snapshot from the replica, walk, store in a directory) and one restore
into the same deployment (FLUSHALL, pipelined RESTORE, WAIT, replica checks).

    python bench/backup_local.py [--keys 200000] [--batch 1000]   -> bench/results/backup_local.json

The two cores of the machine are shared by the servers and the engine, so this is a
floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from redis_ha.components import security  # noqa: E402
from redis_ha.components.settings_load import load_settings  # noqa: E402

from redis_ha.backup.config import config_from_dict  # noqa: E402
from redis_ha.backup.engine import take_backup  # noqa: E402
from redis_ha.backup.restore import restore  # noqa: E402
from tests.support.backup_live import backup_deployment, sentinel_config, wait_replicated  # noqa: E402
from tests.support.live import LIVE_CONFIG, make_password  # noqa: E402


def fill(client: redis.Redis, keys: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        kind = i % 10
        name = f"k:{i}"
        if kind < 6:
            pipe.set(name, f"value-{i}-" + "x" * (i % 50))
        elif kind == 6:
            pipe.hset(name, mapping={"a": i, "b": "two", "c": "three"})
        elif kind == 7:
            pipe.rpush(name, *range(i % 20 + 1))
        elif kind == 8:
            pipe.sadd(name, *range(i % 15 + 1))
        else:
            pipe.zadd(name, {f"m{j}": j for j in range(i % 10 + 1)})
            pipe.pexpire(name, 3_600_000)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    live_config = {**LIVE_CONFIG, "maxmemory": "1gb"}
    settings = load_settings(live_config)
    passwords = {user: make_password() for user in security.user_names(settings)}
    backup_password = make_password()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        with backup_deployment(base / "deployment", passwords, backup_password, live_config) as live:
            master = redis.Redis(port=live.master.port, username="admin", password=passwords["admin"])
            started = time.monotonic()
            fill(master, args.keys)
            fill_seconds = time.monotonic() - started
            wait_replicated(live, 60)
            config = config_from_dict(
                sentinel_config(
                    base / "config",
                    live,
                    backup_password,
                    {"kind": "directory", "path": str(base / "store")},
                    batchSize=args.batch,
                    waitTimeoutSeconds=120,
                )
            )
            manifest = take_backup(config)
            rdb_bytes = sum(f.size_bytes for f in manifest.files)
            report = restore(config, manifest.id, passwords["admin"])
            assert master.dbsize() == args.keys, master.dbsize()
    result = {
        "keys": args.keys,
        "batch": args.batch,
        "fillSeconds": round(fill_seconds, 2),
        "rdbBytes": rdb_bytes,
        "backupSeconds": manifest.seconds,
        "backupMBps": round(rdb_bytes / 1e6 / manifest.seconds, 2),
        "backupKeysPerSecond": round(args.keys / manifest.seconds),
        "restoreSeconds": report["seconds"],
        "restoreKeysPerSecond": round(args.keys / report["seconds"]),
        "restorePayloadMBps": report["mbPerSecond"],
        # The engine's own peak memory (this process: the servers are children).
        "engineMaxRssMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    name = "backup_local.json" if args.keys == 200_000 else f"backup_local_{args.keys}.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
