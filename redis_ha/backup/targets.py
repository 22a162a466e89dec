"""Where backups are kept: a directory or an S3 bucket, behind one interface.

Layout in both: `<prefix>/<id>/manifest.json` and `<prefix>/<id>/<file>.rdb`. Files
are streamed both ways; a directory target writes through a temporary name, fsyncs
and renames, so that a half-written file never carries its final name.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .config import ConfigError
from .manifest import ID_PATTERN, MANIFEST

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Listing:
    id: str
    complete: bool  # its manifest is there
    names: tuple[str, ...]


class Target(Protocol):
    description: str

    def put_file(self, backup_id: str, name: str, path: Path, sha256: str | None = None) -> None: ...

    def put_bytes(self, backup_id: str, name: str, data: bytes) -> None: ...

    def get_file(self, backup_id: str, name: str, path: Path) -> None: ...

    def get_bytes(self, backup_id: str, name: str) -> bytes: ...

    def list(self) -> list[Listing]: ...

    def delete(self, backup_id: str) -> None: ...


class DirectoryTarget:
    def __init__(self, path: str | Path, prefix: str = "") -> None:
        self.root = Path(path) / prefix if prefix else Path(path)
        self.description = f"directory {self.root}"

    def _path(self, backup_id: str, name: str) -> Path:
        if not ID_PATTERN.match(backup_id) or "/" in name or name.startswith("."):
            raise ValueError(f"bad backup file name {backup_id}/{name}")
        return self.root / backup_id / name

    def put_file(self, backup_id: str, name: str, path: Path, sha256: str | None = None) -> None:
        with path.open("rb") as source:
            self._write(self._path(backup_id, name), source)

    def put_bytes(self, backup_id: str, name: str, data: bytes) -> None:
        import io

        self._write(self._path(backup_id, name), io.BytesIO(data))

    def _write(self, final: Path, source: Any) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            with temporary.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(final)
        finally:
            temporary.unlink(missing_ok=True)
        descriptor = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def get_file(self, backup_id: str, name: str, path: Path) -> None:
        with self._path(backup_id, name).open("rb") as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)

    def get_bytes(self, backup_id: str, name: str) -> bytes:
        return self._path(backup_id, name).read_bytes()

    def list(self) -> list[Listing]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and ID_PATTERN.match(entry.name):
                names = tuple(sorted(p.name for p in entry.iterdir() if not p.name.startswith(".")))
                found.append(Listing(entry.name, MANIFEST in names, names))
        return found

    def delete(self, backup_id: str) -> None:
        if not ID_PATTERN.match(backup_id):
            raise ValueError(f"bad backup id {backup_id!r}")
        # The manifest first: from then on the backup counts as incomplete.
        (self.root / backup_id / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(self.root / backup_id, ignore_errors=True)


def make_target(spec: dict[str, Any]) -> Target:
    kind = spec.get("kind")
    if kind == "directory":
        if not spec.get("path"):
            raise ConfigError("target.path is required for a directory target")
        return DirectoryTarget(spec["path"], str(spec.get("prefix", "")))
    if kind == "s3":
        from .s3 import S3Target

        return S3Target.from_spec(spec)
    raise ConfigError(f"target.kind must be directory or s3, not {kind!r}")


def retention_plan(listings: list[Listing], keep: int) -> list[str]:
    """The ids to delete: complete backups beyond the newest `keep`, and incomplete
    ones older than the newest complete one (a newer incomplete one may be a backup
    still being taken)."""
    complete = sorted((item.id for item in listings if item.complete), reverse=True)
    doomed = complete[keep:]
    if complete:
        doomed += [item.id for item in listings if not item.complete and item.id < complete[0]]
    return sorted(doomed)
