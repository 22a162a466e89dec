"""Backup and restore throughput at about a million keys, on the dev topology.

One dev deployment with `backupTarget: volume`: ~1 M keys are loaded (strings of ~100
bytes plus the structures of tests/support/dataset.py), then, through the deployment's
own backup worker:

- backup: `take` (a snapshot streamed from a replica over the replication protocol,
  sha256, manifest) and its MB/s over the RDB size;
- restore: `restore` into the running deployment (FLUSHALL, RESTORE of every key
  through the master, WAIT for every replica, checks) and its MB/s;
- the physical limit, in the same run: `cp` of the same RDB file on the same volume
  inside the worker's container (then removed), MB/s.

    python bench/backup.py [--keys 1000000]      -> bench/results/backup.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import redis
from harness import ROOT, build_images, table, write

sys.path.insert(0, str(ROOT))

from redis_ha import backup_ops  # noqa: E402
from tests.e2e import day2  # noqa: E402
from tests.support import dataset  # noqa: E402
from tests.verify.clients import MappedSentinel, _endpoint  # noqa: E402

WORKER_IMAGE = "redis-ha-test/python-client:3.11"


def _load(client: redis.Redis, keys: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"bench:{i:08d}", f"{i:08d}-" + "v" * 90)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def _worker(stack: day2.Stack, *command: str) -> str:
    name = stack.outputs.deployment["backup"]["testinfraHost"].removeprefix("docker://")
    done = subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    build_images()
    client = docker.from_env()
    result: dict[str, Any] = {"keys_requested": args.keys}
    with tempfile.TemporaryDirectory() as tmp:
        stack_cm = day2.deployed(
            client, Path(tmp), prefix="rhbbk", backupTarget="volume", backupImage=WORKER_IMAGE, maxmemory="1gb"
        )
        with stack_cm as stack:
            try:
                stack.healthy()
                outputs = stack.outputs
                host, port = MappedSentinel(outputs).discover_master(outputs.deployment["masterName"])
                master = next(s for s in outputs.nodes("redis") if _endpoint(s) == (host, port))

                def admin(db: int) -> redis.Redis:
                    return redis.Redis(host, port, db=db, username="admin", password=outputs.passwords["admin"])

                started = time.monotonic()
                _load(admin(0), args.keys)
                dataset.load(admin)
                result["load_seconds"] = round(time.monotonic() - started, 2)
                admin(0).wait(2, 60_000)
                result["keys"] = sum(admin(db).dbsize() for db in dataset.DATABASES)

                started = time.monotonic()
                taken = json.loads(backup_ops.take(outputs.deployment).splitlines()[0])
                backup_seconds = time.monotonic() - started
                part = outputs.deployment["backup"]["name"].removesuffix("-backup")
                directory = f"/backups/{part}/{taken['id']}"
                manifest = json.loads(_worker(stack, "cat", f"{directory}/manifest.json"))
                rdb = manifest["files"][0]
                size = int(rdb["sizeBytes"])
                mb = size / 1e6

                started = time.monotonic()
                _worker(stack, "sh", "-c", f"cp {directory}/{rdb['name']} {directory}/copy.tmp && sync")
                copy_seconds = time.monotonic() - started
                _worker(stack, "rm", "-f", f"{directory}/copy.tmp")

                started = time.monotonic()
                restored = backup_ops.restore(outputs.deployment, outputs.passwords["admin"], taken["id"])
                restore_seconds = time.monotonic() - started
                assert sum(admin(db).dbsize() for db in dataset.DATABASES) == result["keys"]
                result |= {
                    "master": master["name"],
                    "rdb_bytes": size,
                    "backup": {"seconds": round(backup_seconds, 2), "mb_per_s": round(mb / backup_seconds, 1)},
                    "restore": {"seconds": round(restore_seconds, 2), "mb_per_s": round(mb / restore_seconds, 1)},
                    "baseline_copy_same_disk": {
                        "seconds": round(copy_seconds, 3),
                        "mb_per_s": round(mb / copy_seconds, 1),
                    },
                    "worker_restore_report": restored.strip().splitlines()[-1:],
                }
                result["backup"]["fraction_of_copy"] = round(copy_seconds / backup_seconds, 3)
                result["restore"]["fraction_of_copy"] = round(copy_seconds / restore_seconds, 3)
            finally:
                with_volume = f"{stack.name}-backups"
        # The backups volume outlives the stack by design; the benchmark removes it.
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(with_volume).remove(force=True)
    path = write("backup", result)
    table(
        [
            ("keys / RDB", f"{result['keys']} keys, {result['rdb_bytes'] / 1e6:.1f} MB"),
            ("backup", f"{result['backup']['seconds']} s, {result['backup']['mb_per_s']} MB/s"),
            ("restore", f"{result['restore']['seconds']} s, {result['restore']['mb_per_s']} MB/s"),
            ("cp, same disk", f"{result['baseline_copy_same_disk']['mb_per_s']} MB/s"),
        ],
    )
    print(path)


if __name__ == "__main__":
    main()
