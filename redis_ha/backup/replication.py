"""Fetching a node's RDB snapshot the way a new replica gets it (as `redis-cli --rdb`).

`REPLCONF rdb-only 1` (Redis 7.0+) tells the node to close the link once the snapshot
is sent instead of going on with the replication stream; `SYNC` asks for the full
snapshot. (`PSYNC ? -1` would do as well and answer `+FULLRESYNC <replid> <offset>`
first, but it lets a client become a replica, which the `backup` ACL user must not:
the snapshot's own AUX fields `repl-id` and `repl-offset` name the same point of the
replication history.) While the node forks and writes, it sends bare newlines to
keep the link alive. The snapshot then comes either as a bulk string of known length
(`$<length>`: written to the node's disk first) or, when the client announced
`REPLCONF capa eof` and the node syncs diskless, as `$EOF:<40 random bytes>`, the
data, and the same 40 bytes again.

The data is streamed to a file and hashed on the way; it is never held in memory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .resp import Connection, ProtocolError, RespError

_CHUNK = 1 << 20
_MARK_SIZE = 40


@dataclass(frozen=True)
class Snapshot:
    path: Path
    size: int
    sha256: str
    replid: str | None  # from +FULLRESYNC (PSYNC only); else read the RDB's AUX repl-id
    offset: int | None
    diskless: bool


def fetch_rdb(
    conn: Connection, destination: Path, *, diskless: bool = False, timeout: float = 300.0, psync: bool = False
) -> Snapshot:
    """Write the snapshot of the node behind `conn` (authenticated) to `destination`."""
    conn.settimeout(timeout)
    try:
        conn.call("REPLCONF", "rdb-only", "1")
    except RespError as error:
        if "NOPERM" in str(error):
            raise
        # Before 7.0: the node streams on after the snapshot; we stop reading there.
    if diskless:
        conn.call("REPLCONF", "capa", "eof")
    replid: str | None = None
    offset: int | None = None
    if psync:
        conn.send("PSYNC", "?", "-1")
    else:
        conn.send("SYNC")
    header = _next_line(conn)
    if header.startswith(b"-"):
        raise RespError(f"{conn.address}: {'PSYNC' if psync else 'SYNC'}: {header[1:].decode(errors='replace')}")
    if header.startswith(b"+FULLRESYNC"):
        fields = header.split()
        if len(fields) != 3:
            raise ProtocolError(f"{conn.address} answered PSYNC with {header[:80]!r}")
        replid, offset = fields[1].decode(), int(fields[2])
        header = _next_line(conn)
    if not header.startswith(b"$"):
        raise ProtocolError(f"{conn.address} sent {header[:80]!r} where the snapshot was due")
    digest = hashlib.sha256()
    partial = destination.with_name(destination.name + ".partial")
    with partial.open("wb") as out:
        if header.startswith(b"$EOF:"):
            mark = header[5:]
            if len(mark) != _MARK_SIZE:
                raise ProtocolError(f"{conn.address} sent an end mark of {len(mark)} bytes")
            size = _copy_until_mark(conn, out, digest, mark)
        else:
            size = int(header[1:])
            _copy_exact(conn, out, digest, size)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(destination)
    return Snapshot(destination, size, digest.hexdigest(), replid, offset, header.startswith(b"$EOF:"))


def _next_line(conn: Connection) -> bytes:
    """The next line that is not a keep-alive newline."""
    while True:
        line = conn.readline()
        if line:
            return line


def _copy_exact(conn: Connection, out: object, digest: object, size: int) -> None:
    remaining = size
    while remaining:
        chunk = conn.reader.read1(min(_CHUNK, remaining))
        if not chunk:
            raise ProtocolError(f"{conn.address} closed the link {remaining} bytes before the end of the snapshot")
        out.write(chunk)  # type: ignore[attr-defined]
        digest.update(chunk)  # type: ignore[attr-defined]
        remaining -= len(chunk)


def _copy_until_mark(conn: Connection, out: object, digest: object, mark: bytes) -> int:
    tail = b""
    size = 0
    while True:
        chunk = conn.reader.read1(_CHUNK)
        if not chunk:
            raise ProtocolError(f"{conn.address} closed the link before the end mark of the snapshot")
        data = tail + chunk
        end = data.find(mark)
        if end >= 0:
            data, tail = data[:end], b""
        else:
            data, tail = data[:-_MARK_SIZE], data[-_MARK_SIZE:]
        out.write(data)  # type: ignore[attr-defined]
        digest.update(data)  # type: ignore[attr-defined]
        size += len(data)
        if end >= 0:
            return size
