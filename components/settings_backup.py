"""The backup settings: where backups go, when they are taken, how many are kept.

`backupTarget` none (the default) deploys nothing for backups. `volume` keeps them in a
Docker named volume or a Kubernetes PersistentVolumeClaim that the stack mounts but
does not own, so that they outlive `pulumi destroy` and a fresh stack can restore from
them. `s3` puts them into an S3-compatible bucket; its access key pair is two Pulumi
secrets (`backupS3AccessKeyId`, `backupS3SecretAccessKey`), never part of Settings.
Read by components/settings_load.py; the cross-field rules are `check_backup`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from redis_ha.components.settings_base import REDACTED, SettingsError

if TYPE_CHECKING:
    from redis_ha.components.settings import Settings

BACKUP_TARGETS = ("none", "volume", "s3")
# The S3 key pair: secret config keys (pulumi config set --secret), read like passwords.
S3_SECRET_KEYS = ("backupS3AccessKeyId", "backupS3SecretAccessKey")
_S3_KEY_RE = re.compile(r"[A-Za-z0-9/+=._-]{3,256}")

# Five cron fields, numbers only: minute hour day-of-month month day-of-week.
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
SCHEDULE_ALLOWED = (
    "five cron fields (minute hour day-of-month month day-of-week) of numbers, '*', "
    "ranges a-b, lists a,b and steps */n or a-b/n, e.g. '0 */6 * * *'"
)


def _cron_field(text: str, lo: int, hi: int) -> bool:
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isdigit() and int(step) >= 1):
            return False
        if base == "*":
            continue
        first, _, last = base.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return False
        a, b = int(first), int(last or first)
        if not lo <= a <= b <= hi:
            return False
    return True


def read_schedule(key: str, value: Any) -> str:
    fields = value.split() if isinstance(value, str) else []
    if len(fields) != len(_CRON_FIELDS) or not all(
        _cron_field(text, lo, hi) for text, (_, lo, hi) in zip(fields, _CRON_FIELDS, strict=True)
    ):
        raise SettingsError(key, value, SCHEDULE_ALLOWED)
    return " ".join(fields)


_ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?/?$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^$|^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
_REGION_RE = re.compile(r"^[a-z0-9-]{2,40}$")
# A Docker volume name and a Kubernetes claim name both fit a DNS label.
_VOLUME_RE = re.compile(r"^$|^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def regex(pattern: re.Pattern[str], allowed: str) -> Any:
    def read(key: str, value: Any) -> str:
        if isinstance(value, str) and pattern.match(value):
            return value
        raise SettingsError(key, value, allowed)

    return read


READERS: dict[str, tuple[str, Any]] = {
    "backupSchedule": ("backup_schedule", read_schedule),
    "backupVolume": (
        "backup_volume",
        regex(_VOLUME_RE, "a Docker volume / PersistentVolumeClaim name (DNS label), empty for <name>-backups"),
    ),
    "backupS3Endpoint": ("backup_s3_endpoint", regex(_ENDPOINT_RE, "an http(s)://host[:port] URL")),
    "backupS3Bucket": ("backup_s3_bucket", regex(_BUCKET_RE, "an S3 bucket name (3-63 of a-z 0-9 . -)")),
    "backupS3Prefix": (
        "backup_s3_prefix",
        regex(_PREFIX_RE, "a key prefix of letters, digits, . _ / -; empty for the deployment name"),
    ),
    "backupS3Region": ("backup_s3_region", regex(_REGION_RE, "a region name such as us-east-1")),
}


def check_s3_secrets(values: Mapping[str, Any]) -> None:
    """The configured S3 key pair (config key -> plain value); errors never show a value."""
    for key in S3_SECRET_KEYS:
        if key in values and not (isinstance(values[key], str) and _S3_KEY_RE.fullmatch(values[key])):
            raise SettingsError(key, REDACTED, "3 to 256 of letters, digits and / + = . _ -")


def check_backup(s: Settings, raw: Mapping[str, Any]) -> None:
    """Rules across the backup settings."""
    if s.backup_target == "none":
        # A backup setting without a target would silently do nothing.
        stray = sorted(k for k in raw if k.startswith("backup") and k not in ("backupTarget", "backupPassword"))
        if stray:
            raise SettingsError("backupTarget", "none", f"volume or s3 when {stray[0]} is set")
        return
    if s.backup_target == "s3":
        for key in ("backupS3Endpoint", "backupS3Bucket", *S3_SECRET_KEYS):
            if key not in raw:
                raise SettingsError(key, None, "required with backupTarget s3")
    else:
        s3_keys = sorted(k for k in raw if k.startswith("backupS3"))
        if s3_keys:
            raise SettingsError("backupTarget", s.backup_target, f"s3 when {s3_keys[0]} is set")
    if s.tls:
        # The backup worker speaks plain TCP to the nodes for now.
        raise SettingsError("backupTarget", s.backup_target, "none with tls true (backups over TLS are not built yet)")
