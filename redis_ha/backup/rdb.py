"""Walking an RDB file key by key, and DUMP payloads built from what the walk yields.

The walk reads the file front to back through a bounded buffer: the header
(`REDIS` and a four-digit RDB version), the opcodes between keys (AUX fields, SELECTDB,
RESIZEDB, EXPIRETIME, EXPIRETIME_MS, FREQ, IDLE, FUNCTION2, MODULE_AUX, SLOT_INFO) and
the EOF opcode with the CRC-64 of everything before it. It does not decode values: it
steps over each by its structure (length-prefixed strings, with integer and LZF
encodings, ziplist/listpack/intset blobs, quicklist nodes, scores, stream listpacks,
consumer groups, their pending entries and consumers) and hands out the bytes it
stepped over. Those bytes are what DUMP serialises for the same value, so
`dump_payload` only has to add the type byte, the RDB version and the CRC-64.

The value types are those that Redis 7.0 to 8.x write (RDB versions 10 to 12) and
Valkey 8 (RDB 11, Redis's format) and 9 (its own: `VALKEY080` header, a hash with field
TTLs as type 22) write; a key of a module type is refused by name, since restoring it
needs the module loaded. Checked against files written by each engine version of
tests/images/engines.txt (tests/e2e/test_engines.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from .crc import crc64
from .lzf import LzfError, lzf_decompress

# The newest RDB version each Redis release line writes and reads.
RDB_VERSION_OF = {(7, 0): 10, (7, 2): 11, (7, 4): 12}
# Valkey: 8.x writes Redis's 11; 9.0 numbers its own format from 80 on (measured: 9.1
# loads 11 and 80, refuses Redis 8's 12; Redis refuses the VALKEY header).
VALKEY_RDB_VERSIONS = {(8, 0): (11,), (9, 0): (11, 80)}
# In a file with the VALKEY header: a hash with per-field TTLs (count, then field,
# value and an 8-byte expiry, -1 for none, per entry).
VALKEY_HASH_2 = 22

STRING, LIST, SET, ZSET, HASH, ZSET_2, MODULE, MODULE_2 = 0, 1, 2, 3, 4, 5, 6, 7
HASH_ZIPMAP, LIST_ZIPLIST, SET_INTSET, ZSET_ZIPLIST, HASH_ZIPLIST = 9, 10, 11, 12, 13
LIST_QUICKLIST, STREAM_LISTPACKS, HASH_LISTPACK, ZSET_LISTPACK, LIST_QUICKLIST_2 = 14, 15, 16, 17, 18
STREAM_LISTPACKS_2, SET_LISTPACK, STREAM_LISTPACKS_3 = 19, 20, 21
HASH_METADATA_PRE_GA, HASH_LISTPACK_EX_PRE_GA, HASH_METADATA, HASH_LISTPACK_EX = 22, 23, 24, 25

# The value is one string (a serialised small encoding).
_BLOB_TYPES = {STRING, HASH_ZIPMAP, LIST_ZIPLIST, SET_INTSET, ZSET_ZIPLIST, HASH_ZIPLIST}
_BLOB_TYPES |= {HASH_LISTPACK, ZSET_LISTPACK, SET_LISTPACK, HASH_LISTPACK_EX_PRE_GA}
_STREAM_TYPES = {STREAM_LISTPACKS, STREAM_LISTPACKS_2, STREAM_LISTPACKS_3}

TYPE_NAMES = {
    STRING: "string",
    LIST: "list",
    SET: "set",
    ZSET: "zset",
    HASH: "hash",
    ZSET_2: "zset",
    HASH_ZIPMAP: "hash",
    LIST_ZIPLIST: "list",
    SET_INTSET: "set",
    ZSET_ZIPLIST: "zset",
    HASH_ZIPLIST: "hash",
    LIST_QUICKLIST: "list",
    HASH_LISTPACK: "hash",
    ZSET_LISTPACK: "zset",
    LIST_QUICKLIST_2: "list",
    SET_LISTPACK: "set",
    HASH_METADATA_PRE_GA: "hash",
    HASH_LISTPACK_EX_PRE_GA: "hash",
    HASH_METADATA: "hash",
    HASH_LISTPACK_EX: "hash",
    **{t: "stream" for t in _STREAM_TYPES},
}

OP_SLOT_INFO, OP_FUNCTION2, OP_FUNCTION_PRE_GA, OP_MODULE_AUX = 0xF4, 0xF5, 0xF6, 0xF7
OP_IDLE, OP_FREQ, OP_AUX, OP_RESIZEDB = 0xF8, 0xF9, 0xFA, 0xFB
OP_EXPIRETIME_MS, OP_EXPIRETIME, OP_SELECTDB, OP_EOF = 0xFC, 0xFD, 0xFE, 0xFF

_CHUNK = 1 << 20


class RdbError(Exception):
    """The file is not an RDB this reader can walk completely."""


class ModuleKeyError(RdbError):
    """A key holds a module type."""


@dataclass(frozen=True)
class Entry:
    db: int
    key: bytes
    type: int
    value: bytes  # the serialised value, as DUMP writes it (without type byte and trailer)
    expire_ms: int | None  # absolute, Unix milliseconds


@dataclass
class Summary:
    """What the walk learned besides the keys; complete once the walk has finished."""

    rdb_version: int = 0
    aux: dict[str, str] = field(default_factory=dict)
    keys: dict[int, int] = field(default_factory=dict)
    functions: list[bytes] = field(default_factory=list)
    checksum: int | None = None  # None: the file was written without one
    complete: bool = False
    valkey_format: bool = False  # the VALKEY header (Valkey 9 on)

    @property
    def redis_version(self) -> str:
        """The Redis version that wrote the file; '' for a file of Valkey (which writes
        valkey-ver instead: see engine)."""
        return self.aux.get("redis-ver", "")

    @property
    def engine(self) -> str:
        """Who wrote the file, e.g. `Redis 7.2.4`, `Valkey 8.1.1`."""
        if "valkey-ver" in self.aux or self.valkey_format:
            return f"Valkey {self.aux.get('valkey-ver', '')}".strip()
        return f"Redis {self.redis_version}".strip()


class RdbReader:
    """`for entry in RdbReader(file).entries()`; `reader.summary` once the loop ends."""

    def __init__(self, stream: BinaryIO) -> None:
        self._file = stream
        self._buf = b""
        self._pos = 0
        self._mark: int | None = None
        self._crc = 0
        self._crc_from = 0
        self.summary = Summary()

    # --- buffer ---------------------------------------------------------------

    def _fill(self, need: int) -> None:
        keep = self._pos if self._mark is None else self._mark
        self._crc = crc64(memoryview(self._buf)[self._crc_from : keep], self._crc)
        kept = self._buf[keep:]
        wanted = max(_CHUNK, need - len(kept) + (self._pos - keep), len(kept))
        more = self._file.read(wanted)
        self._buf = kept + more
        self._pos -= keep
        self._crc_from = 0
        if self._mark is not None:
            self._mark -= keep
        if self._pos + need > len(self._buf):
            raise RdbError("the file ends in the middle of the data (truncated)")

    def _take(self, size: int) -> bytes:
        if self._pos + size > len(self._buf):
            self._fill(size)
        start = self._pos
        self._pos += size
        return self._buf[start : self._pos]

    def _skip(self, size: int) -> None:
        if self._pos + size > len(self._buf):
            self._fill(size)
        self._pos += size

    def _byte(self) -> int:
        if self._pos >= len(self._buf):
            self._fill(1)
        value = self._buf[self._pos]
        self._pos += 1
        return value

    # --- primitives -----------------------------------------------------------

    def _length(self) -> tuple[int, bool]:
        """A length, or (encoding, True) for a specially encoded string."""
        first = self._byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self._byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return struct.unpack(">I", self._take(4))[0], False
        if first == 0x81:
            return struct.unpack(">Q", self._take(8))[0], False
        raise RdbError(f"unknown length encoding 0x{first:02x}")

    def _len(self) -> int:
        value, encoded = self._length()
        if encoded:
            raise RdbError("an encoded string where a length was due")
        return value

    def _string(self) -> bytes:
        value, encoded = self._length()
        if not encoded:
            return self._take(value)
        if value == 0:
            return b"%d" % struct.unpack("<b", self._take(1))[0]
        if value == 1:
            return b"%d" % struct.unpack("<h", self._take(2))[0]
        if value == 2:
            return b"%d" % struct.unpack("<i", self._take(4))[0]
        if value == 3:
            compressed, size = self._len(), self._len()
            try:
                return lzf_decompress(self._take(compressed), size)
            except (LzfError, IndexError) as error:
                raise RdbError(f"corrupt LZF string: {error}") from None
        raise RdbError(f"unknown string encoding {value}")

    def _skip_string(self) -> None:
        value, encoded = self._length()
        if not encoded:
            self._skip(value)
        elif value <= 2:
            self._skip(1 << value)
        elif value == 3:
            compressed = self._len()
            self._len()
            self._skip(compressed)
        else:
            raise RdbError(f"unknown string encoding {value}")

    def _skip_strings(self, count: int) -> None:
        for _ in range(count):
            self._skip_string()

    # --- values ---------------------------------------------------------------

    def _skip_value(self, kind: int, key: bytes) -> None:
        if kind in _BLOB_TYPES:
            self._skip_string()
        elif kind in (LIST, SET):
            self._skip_strings(self._len())
        elif kind == HASH:
            self._skip_strings(2 * self._len())
        elif kind == ZSET:
            for _ in range(self._len()):
                self._skip_string()
                size = self._byte()
                if size < 253:
                    self._skip(size)
        elif kind == ZSET_2:
            for _ in range(self._len()):
                self._skip_string()
                self._skip(8)
        elif kind == LIST_QUICKLIST:
            self._skip_strings(self._len())
        elif kind == LIST_QUICKLIST_2:
            for _ in range(self._len()):
                self._len()  # container: plain or packed
                self._skip_string()
        elif kind in _STREAM_TYPES:
            self._skip_stream(kind)
        elif kind == HASH_LISTPACK_EX:
            self._skip(8)  # the smallest field expiry
            self._skip_string()
        elif kind == VALKEY_HASH_2 and self.summary.valkey_format:
            for _ in range(self._len()):
                self._skip_string()
                self._skip_string()
                self._skip(8)
        elif kind in (HASH_METADATA, HASH_METADATA_PRE_GA):
            if kind == HASH_METADATA:
                self._skip(8)
            for _ in range(self._len()):
                self._len()  # the field's expiry
                self._skip_string()
                self._skip_string()
        elif kind in (MODULE, MODULE_2):
            raise ModuleKeyError(
                f"key {key!r} holds a module type; the backup cannot restore module data (load the module)"
            )
        else:
            raise RdbError(f"key {key!r} has value type {kind}, which this reader does not know")

    def _skip_stream(self, kind: int) -> None:
        for _ in range(self._len()):
            self._skip_string()  # the master entry ID of the listpack
            self._skip_string()  # the listpack
        self._len()  # entries
        self._len(), self._len()  # last ID
        if kind >= STREAM_LISTPACKS_2:
            self._len(), self._len()  # first ID
            self._len(), self._len()  # largest deleted ID
            self._len()  # entries ever added
        for _ in range(self._len()):  # consumer groups
            self._skip_string()
            self._len(), self._len()  # last delivered ID
            if kind >= STREAM_LISTPACKS_2:
                self._len()  # entries read
            for _ in range(self._len()):  # the group's pending entries
                self._skip(16 + 8)  # ID, delivery time
                self._len()  # delivery count
            for _ in range(self._len()):  # consumers
                self._skip_string()
                self._skip(8)  # seen time
                if kind >= STREAM_LISTPACKS_3:
                    self._skip(8)  # active time
                self._skip(16 * self._len())  # the consumer's pending IDs

    def _skip_module_value(self) -> None:
        while True:
            opcode = self._len()
            if opcode == 0:
                return
            if opcode in (1, 2):
                self._len()
            elif opcode == 3:
                self._skip(4)
            elif opcode == 4:
                self._skip(8)
            elif opcode == 5:
                self._skip_string()
            else:
                raise RdbError(f"unknown module value opcode {opcode}")

    # --- the walk -------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        header = self._take(9)
        magic = b"VALKEY" if header.startswith(b"VALKEY") else b"REDIS"
        if not header.startswith(magic) or not header[len(magic) :].isdigit():
            raise RdbError("not an RDB file (no REDIS or VALKEY header)")
        summary = self.summary
        summary.rdb_version = int(header[len(magic) :])
        summary.valkey_format = magic == b"VALKEY"
        db = 0
        expire: int | None = None
        while True:
            op = self._byte()
            if op == OP_EOF:
                break
            if op == OP_AUX:
                name = self._string().decode(errors="replace")
                summary.aux[name] = self._string().decode(errors="replace")
            elif op == OP_SELECTDB:
                db = self._len()
            elif op == OP_RESIZEDB:
                self._len(), self._len()
            elif op == OP_EXPIRETIME_MS:
                expire = struct.unpack("<q", self._take(8))[0]
            elif op == OP_EXPIRETIME:
                expire = struct.unpack("<i", self._take(4))[0] * 1000
            elif op == OP_FREQ:
                self._skip(1)
            elif op == OP_IDLE:
                self._len()
            elif op == OP_FUNCTION2:
                summary.functions.append(self._string())
            elif op == OP_FUNCTION_PRE_GA:
                raise RdbError("functions in the format of Redis 7.0 release candidates")
            elif op == OP_MODULE_AUX:
                self._len(), self._len(), self._len()  # module id, opcode, when
                self._skip_module_value()
            elif op == OP_SLOT_INFO:
                self._len(), self._len(), self._len()
            else:
                key = self._string()
                self._mark = self._pos
                self._skip_value(op, key)
                value = self._buf[self._mark : self._pos]
                self._mark = None
                summary.keys[db] = summary.keys.get(db, 0) + 1
                yield Entry(db, key, op, value, expire)
                expire = None
        computed = crc64(memoryview(self._buf)[self._crc_from : self._pos], self._crc)
        if summary.rdb_version >= 5:
            stored = struct.unpack("<Q", self._take(8))[0]
            if stored and stored != computed:
                raise RdbError(f"CRC-64 mismatch: the file says {stored:016x}, its content gives {computed:016x}")
            summary.checksum = stored or None
        if self._pos < len(self._buf) or self._file.read(1):
            raise RdbError("data after the EOF opcode")
        summary.complete = True


def walk(path: str) -> Summary:
    """Read the whole file at `path`; raise RdbError unless it parses completely."""
    with open(path, "rb") as stream:
        reader = RdbReader(stream)
        for _ in reader.entries():
            pass
    return reader.summary


def dump_payload(kind: int, value: bytes, rdb_version: int) -> bytes:
    """The payload RESTORE takes: type byte, value, RDB version (2 bytes, little
    endian) and the CRC-64 of all that (8 bytes, little endian)."""
    body = bytes((kind,)) + value + struct.pack("<H", rdb_version)
    return body + struct.pack("<Q", crc64(body))


def loads(rdb_version: int, info: dict[str, str]) -> str | None:
    """None if the server of INFO `info` loads an RDB file (or DUMP payload) of
    `rdb_version`, else why not."""
    valkey = info.get("valkey_version", "")
    if not valkey:
        newest = rdb_version_supported(info.get("redis_version", ""))
        return None if rdb_version <= newest else f"Redis {info.get('redis_version')} reads RDB up to {newest}"
    parts = tuple(int(p) for p in valkey.split(".")[:2] if p.isdigit())
    known = max((v for line, v in VALKEY_RDB_VERSIONS.items() if parts >= line), default=(11,))
    if rdb_version <= 11 or rdb_version in known:
        return None
    return f"Valkey {valkey} reads RDB up to 11" + (" and its own 80" if 80 in known else "")


def rdb_version_supported(redis_version: str) -> int:
    """The newest RDB version a server of `redis_version` loads (unknown future
    releases: that of the newest line known here)."""
    parts = tuple(int(p) for p in redis_version.split(".")[:2] if p.isdigit())
    best = 0
    for line, version in sorted(RDB_VERSION_OF.items()):
        if parts >= line:
            best = version
    if parts and parts < (7, 0):
        best = 9 if parts >= (5, 0) else 8
    return best
