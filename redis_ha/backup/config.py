"""The engine's configuration: a JSON file rendered by the deployment. It holds no
secret, only the paths of files that do (see the package docstring for the keys)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .resp import Connection, Tls

TOPOLOGIES = ("sentinel", "cluster")


class BackupError(Exception):
    """Something failed; the CLI exits with 1."""


class Refused(BackupError):
    """The engine will not go on (a bad backup, a version or topology mismatch, no
    healthy replica); nothing was changed. The CLI exits with 2."""


class ConfigError(BackupError):
    pass


@dataclass(frozen=True)
class Credentials:
    user: str
    password_file: str | None = None
    password: str | None = field(default=None, repr=False)

    def secret(self) -> str:
        if self.password is not None:
            return self.password
        if not self.password_file:
            raise ConfigError(f"no password for user {self.user!r}: give a passwordFile")
        try:
            return Path(self.password_file).read_text().rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"cannot read the password file of {self.user!r}: {error.strerror}") from None


Address = tuple[str, int]


@dataclass(frozen=True)
class Config:
    deployment: str
    topology: str
    backup_user: Credentials
    target: dict[str, Any]
    master_name: str = ""
    sentinels: tuple[Address, ...] = ()
    cluster_nodes: tuple[Address, ...] = ()
    tls: Tls | None = None
    sentinel_user: Credentials | None = None
    restore_user: str = "admin"
    schedule: str = "0 */6 * * *"
    retention: int = 7
    address_map: dict[str, str] = field(default_factory=dict)
    work_dir: Path = Path("/tmp")
    allow_master: bool = False
    diskless: bool = False
    batch_size: int = 1000
    wait_timeout: float = 60.0
    sync_timeout: float = 600.0
    # `schedule` serves /metrics on this port (0: not at all): redis_ha/backup/metrics.py.
    metrics_port: int = 0

    def dial(self, host: str, port: int) -> Address:
        """The address actually dialled for an announced one (addressMap)."""
        mapped = self.address_map.get(f"{host}:{port}")
        if not mapped:
            return host, port
        mapped_host, mapped_port = mapped.rsplit(":", 1)
        return mapped_host, int(mapped_port)

    def connect(self, host: str, port: int, credentials: Credentials | None, *, timeout: float = 10.0) -> Connection:
        dial_host, dial_port = self.dial(host, port)
        conn = Connection(dial_host, dial_port, tls=self.tls, timeout=timeout)
        try:
            if credentials is not None:
                conn.auth(credentials.user, credentials.secret())
        except BaseException:
            conn.close()
            raise
        return conn


def _addresses(value: Any, name: str) -> tuple[Address, ...]:
    try:
        return tuple((str(host), int(port)) for host, port in value or ())
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of [host, port] pairs") from None


def _credentials(value: Any, name: str) -> Credentials | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "user" not in value:
        raise ConfigError(f"{name} must be {{'user': ..., 'passwordFile': ...}}")
    if "password" in value:
        raise ConfigError(f"{name}: no password in the config file, only a passwordFile")
    return Credentials(str(value["user"]), value.get("passwordFile"))


def config_from_dict(data: dict[str, Any]) -> Config:
    topology = data.get("topology")
    if topology not in TOPOLOGIES:
        raise ConfigError(f"topology must be one of {', '.join(TOPOLOGIES)}, not {topology!r}")
    backup_user = _credentials(data.get("backupUser"), "backupUser")
    if backup_user is None:
        raise ConfigError("backupUser is required")
    target = data.get("target")
    if not isinstance(target, dict) or target.get("kind") not in ("directory", "s3"):
        raise ConfigError("target must be {'kind': 'directory', 'path': ...} or {'kind': 's3', ...}")
    tls = None
    if data.get("tls"):
        spec = data["tls"]
        tls = Tls(spec["caFile"], spec.get("certFile"), spec.get("keyFile"), bool(spec.get("verifyHostname", True)))
    config = Config(
        deployment=str(data.get("deployment", "redis-ha")),
        topology=topology,
        backup_user=backup_user,
        target=target,
        master_name=str(data.get("masterName", "")),
        sentinels=_addresses(data.get("sentinels"), "sentinels"),
        cluster_nodes=_addresses(data.get("clusterNodes"), "clusterNodes"),
        tls=tls,
        sentinel_user=_credentials(data.get("sentinelUser"), "sentinelUser"),
        restore_user=str(data.get("restoreUser", "admin")),
        schedule=str(data.get("schedule", "0 */6 * * *")),
        retention=int(data.get("retention", 7)),
        address_map={str(k): str(v) for k, v in (data.get("addressMap") or {}).items()},
        work_dir=Path(data.get("workDir") or os.environ.get("TMPDIR") or "/tmp"),
        allow_master=bool(data.get("allowMaster", False)),
        diskless=bool(data.get("disklessSync", False)),
        batch_size=int(data.get("batchSize", 1000)),
        wait_timeout=float(data.get("waitTimeoutSeconds", 60)),
        sync_timeout=float(data.get("syncTimeoutSeconds", 600)),
        metrics_port=int(data.get("metricsPort", 0)),
    )
    if topology == "sentinel" and (not config.sentinels or not config.master_name):
        raise ConfigError("the sentinel topology needs masterName and sentinels")
    if topology == "cluster" and not config.cluster_nodes:
        raise ConfigError("the cluster topology needs clusterNodes")
    if config.retention < 1:
        raise ConfigError("retention must be at least 1")
    return config


def load_config(path: str | Path) -> Config:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read the config {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"the config {path} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the config {path} must hold a JSON object")
    return config_from_dict(data)


def as_config(config: Config | dict[str, Any] | str | Path) -> Config:
    """A Config from a Config, the config file's dict, or the file's path."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    return load_config(config)
