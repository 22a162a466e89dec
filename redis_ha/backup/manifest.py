"""The manifest of a backup: what was taken from where, and how to check it.

It is written last: a backup whose manifest.json is missing is incomplete, whatever
else its folder holds. Key counts come from walking each RDB file (authoritative)
and, for comparison, from INFO keyspace of the source just before the snapshot.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT = 1
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
MANIFEST = "manifest.json"


def backup_id(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class FileEntry:
    name: str  # e.g. "shard-0.rdb" or "node-10.0.0.5-6379.rdb"
    shard: str | None  # cluster: shard-N, ordered by the lowest slot
    source: dict[str, Any]  # address, runId, role, lag
    replication: dict[str, Any]  # replid, offset: the point in history the snapshot holds
    keys: dict[str, int]  # per database, from the RDB walk
    info_keyspace: dict[str, int]  # per database, INFO keyspace of the source before
    size_bytes: int
    sha256: str
    redis_version: str  # the RDB's AUX redis-ver
    rdb_version: int
    functions: int = 0


@dataclass
class Manifest:
    id: str
    created: str
    deployment: str
    topology: str
    files: list[FileEntry]
    slots: list[dict[str, Any]] = field(default_factory=list)  # cluster: shard, ranges, masterId
    seconds: float = 0.0
    format: int = FORMAT

    @property
    def redis_version(self) -> str:
        return max((f.redis_version for f in self.files), key=version_tuple, default="")

    @property
    def rdb_version(self) -> int:
        return max((f.rdb_version for f in self.files), default=0)

    def total_keys(self) -> int:
        return sum(sum(f.keys.values()) for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as manifest.json holds it."""
        return dict(json.loads(self.to_json()))

    def to_json(self) -> str:
        data = asdict(self)
        data["files"] = [_camel(asdict(f)) for f in self.files]
        return json.dumps(_camel(data), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, raw: str | bytes) -> Manifest:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a manifest of format {FORMAT}")
        files = [FileEntry(**_snake(f)) for f in data.pop("files")]
        return cls(files=files, **_snake(data))


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def _camel(data: dict[str, Any]) -> dict[str, Any]:
    def name(key: str) -> str:
        head, *rest = key.split("_")
        return head + "".join(part.title() for part in rest)

    return {name(k): v for k, v in data.items()}


def _snake(data: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in data.items()}


def now_utc() -> datetime:
    return datetime.now(UTC)
