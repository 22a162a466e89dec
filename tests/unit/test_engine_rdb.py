"""The backup reader on real RDB files, one saved by each engine version the toolkit
tests (tests/unit/data/rdb, written by tests/images/rdb_samples.sh from the engine
images): every file walks completely with its CRC, at the engine's RDB version, with
each structure in the encoding that engine writes for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis_ha.components import engines

from redis_ha.backup import rdb

SAMPLES = Path(__file__).parent / "data" / "rdb"
FILES = sorted(SAMPLES.glob("*.rdb"))
# The shared part of the sample: key -> type byte, the same in every engine's file
# except where the engine's encoding differs (below).
COMMON = {
    b"set:hashtable": rdb.SET,
    b"set:intset": rdb.SET_INTSET,
    b"hash:hashtable": rdb.HASH,
    b"hash:listpack": rdb.HASH_LISTPACK,
    b"zset:skiplist": rdb.ZSET_2,
    b"zset:listpack": rdb.ZSET_LISTPACK,
    b"list:quicklist": rdb.LIST_QUICKLIST_2,
    b"list:small": rdb.LIST_QUICKLIST_2,
    b"hll": rdb.STRING,
    b"string:ttl": rdb.STRING,
    b"string:int": rdb.STRING,
    b"string:long": rdb.STRING,
}


def _engine(path: Path) -> engines.Engine:
    name, version = path.stem.split("-", 1)
    return engines.Engine(name, ".".join(version.split(".")[:2]))


def _walk(path: Path) -> tuple[dict[bytes, rdb.Entry], rdb.Summary]:
    with path.open("rb") as stream:
        reader = rdb.RdbReader(stream)
        entries = {e.key: e for e in reader.entries()}
    return entries, reader.summary


def test_a_sample_of_every_engine_version_is_here() -> None:
    wanted = {f"{name}-{version}" for name, versions in engines.VERSIONS.items() for version in versions}
    have = {f"{e.name}-{e.version}" for e in map(_engine, FILES)}
    # The versions of the archive's binaries (docs/engines.md): Redis 7.2 and 8.2 and
    # Valkey 9.0 have none.
    assert have == wanted - {"redis-7.2", "redis-8.2", "valkey-9.0"}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_reader_walks_the_file_of_each_engine(path: Path) -> None:
    engine = _engine(path)
    entries, summary = _walk(path)
    assert summary.complete and summary.checksum is not None
    assert summary.rdb_version == engine.rdb_version
    assert summary.valkey_format == (summary.rdb_version >= 80)
    assert summary.engine == f"{engine.label.split()[0]} {path.stem.split('-', 1)[1]}"
    expected = dict(COMMON)
    # 7.0: a small set of strings is a hashtable, streams have no active times.
    expected[b"set:listpack"] = rdb.SET_LISTPACK if engine.has("listpack-sets") else rdb.SET
    expected[b"stream"] = rdb.STREAM_LISTPACKS_3 if engine.compat_level >= (7, 2) else rdb.STREAM_LISTPACKS_2
    assert {key: entries[key].type for key in expected} == expected
    assert entries[b"string:ttl"].expire_ms is not None
    if engine.has("hash-field-expiry"):
        ttl_types = {entries[b"hash:ttl:listpack"].type, entries[b"hash:ttl:hashtable"].type}
        # Redis: listpack-ex (25) and metadata (24); Valkey 9: its own hash type (22).
        redis_types = {rdb.HASH_LISTPACK_EX, rdb.HASH_METADATA}
        assert ttl_types == ({rdb.VALKEY_HASH_2} if summary.valkey_format else redis_types)
    else:
        assert b"hash:ttl:listpack" not in entries


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_payloads_carry_the_file_version_and_a_valid_crc(path: Path) -> None:
    entries, summary = _walk(path)
    for entry in entries.values():
        payload = rdb.dump_payload(entry.type, entry.value, summary.rdb_version)
        assert payload[0] == entry.type and int.from_bytes(payload[-10:-8], "little") == summary.rdb_version
