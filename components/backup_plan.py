"""The backup worker of a plan part, as both backends deploy it.

One worker per part (the Sentinel group, the Redis Cluster): the stdlib-only package
redis_ha/backup, shipped as plain source files next to a two-line launcher, run by any
image with python3. On Docker it is a long-running container that takes a backup on
the schedule and prunes; on Kubernetes a CronJob runs `take` then `prune`. Either way
it reads one JSON config (no secret in it, only file paths), logs in as `backup` on the
Redis nodes and as the read-only `sentinel-client` on the Sentinels, and never holds
the admin password: a restore is given it on stdin (redis-ha restore).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis_ha.components import security
from redis_ha.components.rendering import SENTINEL_CLIENT_PASSWORD_FILE
from redis_ha.components.settings import Settings
from redis_ha.components.topology import ClusterTopology, SentinelTopology

# Paths inside the worker's container or pod.
CONF_DIR = "/etc/redis-ha"
PROGRAM_DIR = "/opt/redis-ha/backup"
MOUNT_PATH = "/backups"
CONFIG_FILE = "backup.json"
PASSWORD_FILE = "backup.password"
S3_CREDENTIALS_FILE = "s3-credentials.json"
# The scheduled worker's /metrics (redis_ha/backup/metrics.py), inside its container.
METRICS_PORT = 9122
# The secret values the worker needs besides passwords: the S3 key pair.
S3_ACCESS_KEY_ID = "s3:accessKeyId"
S3_SECRET_ACCESS_KEY = "s3:secretAccessKey"
# The launcher: `python3 /opt/redis-ha/backup <command>` runs the package's __main__.
LAUNCHER = "from redis_ha.backup.__main__ import main\n\nraise SystemExit(main())\n"
_PACKAGE = Path(__file__).resolve().parent.parent / "redis_ha"


def backup_name(part_name: str) -> str:
    """The backup worker of a part: its container, CronJob and hostname."""
    return f"{part_name}-backup"


def program_files() -> dict[str, str]:
    """Relative path -> source of every file the worker runs."""
    files = {"__main__.py": LAUNCHER, "redis_ha/__init__.py": '"""redis-ha: only the backup worker ships here."""\n'}
    for path in sorted((_PACKAGE / "backup").glob("*.py")):
        files[f"redis_ha/backup/{path.name}"] = path.read_text()
    return files


@dataclass(frozen=True)
class Backup:
    """One part's backup worker."""

    name: str  # container / CronJob name
    image: str
    schedule: str
    config: dict[str, Any]  # the JSON config: no secret
    secret_files: tuple[str, ...]  # file names under CONF_DIR that hold a secret
    volume: str  # the Docker volume / claim mounted at MOUNT_PATH ("" for s3)
    # where the worker's metrics are published on the host (Docker, publishPorts)
    host_port: int | None = None

    @property
    def command(self) -> tuple[str, ...]:
        return ("python3", PROGRAM_DIR)

    def args(self, *words: str) -> tuple[str, ...]:
        return (*self.command, *words, "--config", f"{CONF_DIR}/{CONFIG_FILE}")

    def files(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """The secret files (file name -> content), from user -> password plus the S3 keys."""
        files = {PASSWORD_FILE: secrets[security.BACKUP.name]}
        if SENTINEL_CLIENT_PASSWORD_FILE in self.secret_files:
            files[SENTINEL_CLIENT_PASSWORD_FILE] = secrets[security.SENTINEL_CLIENT.name]
        if S3_CREDENTIALS_FILE in self.secret_files:
            files[S3_CREDENTIALS_FILE] = json.dumps(
                {"accessKeyId": secrets[S3_ACCESS_KEY_ID], "secretAccessKey": secrets[S3_SECRET_ACCESS_KEY]}
            )
        return files

    def describe(self, where: Mapping[str, str]) -> dict[str, Any]:
        """For the stack outputs: how `redis-ha backup/restore` reaches the worker
        (`where`: its `testinfraHost` on Docker, its `cronJob` and `namespace` on
        Kubernetes)."""
        return {
            "name": self.name,
            **where,
            "command": list(self.command),
            "config": f"{CONF_DIR}/{CONFIG_FILE}",
            "schedule": self.schedule,
            "retention": self.config["retention"],
            "metricsPort": METRICS_PORT,
            "target": self.config["target"],
        }


def _target(s: Settings, part_name: str) -> dict[str, Any]:
    if s.backup_target == "s3":
        return {
            "kind": "s3",
            "endpoint": s.backup_s3_endpoint.rstrip("/"),
            "bucket": s.backup_s3_bucket,
            "prefix": f"{s.backup_prefix}/{part_name}",
            "region": s.backup_s3_region,
            "credentialsFile": f"{CONF_DIR}/{S3_CREDENTIALS_FILE}",
        }
    return {"kind": "directory", "path": f"{MOUNT_PATH}/{part_name}"}


def backup_worker(
    s: Settings, part_name: str, topology: SentinelTopology | ClusterTopology, index: int = 0
) -> Backup | None:
    """The worker of a part (`index`: 0 for the first part, 1 for the cluster of `both`)."""
    if not s.backups:
        return None
    secret_files = [PASSWORD_FILE]
    config: dict[str, Any] = {"deployment": part_name}
    if isinstance(topology, SentinelTopology):
        secret_files.append(SENTINEL_CLIENT_PASSWORD_FILE)
        config |= {
            "topology": "sentinel",
            "masterName": s.master_name,
            "sentinels": [[n.hostname, n.port] for n in topology.sentinels],
            "sentinelUser": {
                "user": security.SENTINEL_CLIENT.name,
                "passwordFile": f"{CONF_DIR}/{SENTINEL_CLIENT_PASSWORD_FILE}",
            },
        }
    else:
        config |= {"topology": "cluster", "clusterNodes": [[n.hostname, n.port] for n in topology.nodes]}
    if s.backup_target == "s3":
        secret_files.append(S3_CREDENTIALS_FILE)
    config |= {
        "tls": None,
        "backupUser": {"user": security.BACKUP.name, "passwordFile": f"{CONF_DIR}/{PASSWORD_FILE}"},
        "restoreUser": security.ADMIN.name,
        "schedule": s.backup_schedule,
        "retention": s.backup_retention,
        "target": _target(s, part_name),
        # Snapshots are written next to where they go (then renamed), or to /tmp for s3.
        "workDir": f"{MOUNT_PATH}/{part_name}/.work" if s.backup_target == "volume" else "/tmp",
        # Served by the scheduled worker (Docker); a CronJob's run ends before any scrape.
        "metricsPort": METRICS_PORT,
    }
    return Backup(
        name=backup_name(part_name),
        image=s.backup_image,
        schedule=s.backup_schedule,
        config=config,
        secret_files=tuple(secret_files),
        volume=s.backup_volume_name if s.backup_target == "volume" else "",
        host_port=s.host_port("exporterHostPort", s.exporters + index),
    )
