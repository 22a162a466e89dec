"""The RDB reader, the DUMP payload builder and the snapshot fetch, against Redis 7.0.

A server is filled with every type and encoding (tests/support/redis_data.py); its
snapshot comes over the replication protocol as the engine takes it; every key the
walk yields must give, as a DUMP payload, exactly the bytes the server's own DUMP
returns, and RESTORE of those payloads into a second server must reproduce every
value and TTL.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_ha.backup import crc, rdb
from redis_ha.backup.lzf import lzf_decompress
from redis_ha.backup.replication import fetch_rdb
from redis_ha.backup.resp import Connection
from tests.support import redis_data
from tests.support.redis_servers import LOCALHOST, BareRedis


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareRedis]:
    server = BareRedis(tmp_path_factory.mktemp("rdb-source"), "databases 8", "repl-diskless-sync-delay 0")
    try:
        redis_data.populate(server.client)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def snapshot_file(source: BareRedis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rdb-file") / "dump.rdb"
    with Connection(LOCALHOST, source.port) as conn:
        snap = fetch_rdb(conn, path)
    assert not snap.diskless and snap.size == path.stat().st_size
    assert snap.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # SYNC: the point in the replication history comes from the file's AUX fields.
    assert snap.replid is None
    aux = rdb.walk(str(path)).aux
    assert aux["repl-id"] == source.client().info("replication")["master_replid"]
    assert int(aux["repl-offset"]) >= 0
    return path


def test_checksums_match_their_check_values() -> None:
    assert crc.crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc.crc64(b"9", crc.crc64(b"12345678")) == crc.crc64(b"123456789")
    assert crc.crc64(b"") == 0
    assert crc.crc16(b"123456789") == 0x31C3


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"foo", 12182),
        (b"{user1000}.following", 3443),
        (b"user1000", 3443),
        (b"foo{}{bar}", crc.crc16(b"foo{}{bar}") % 16384),
        (b"foo{{bar}}zap", crc.crc16(b"{bar") % 16384),
        (b"{}", crc.crc16(b"{}") % 16384),
        (b"a{b}c{d}", crc.crc16(b"b") % 16384),
    ],
)
def test_key_slots_follow_the_hash_tag_rules(key: bytes, slot: int) -> None:
    assert crc.key_slot(key) == slot


def test_the_walk_yields_every_key_and_matches_dump_byte_for_byte(source: BareRedis, snapshot_file: Path) -> None:
    expected = {db: source.client(db).dbsize() for db in redis_data.DATABASES}
    seen_types = set()
    with snapshot_file.open("rb") as stream:
        reader = rdb.RdbReader(stream)
        entries = list(reader.entries())
    summary = reader.summary
    assert summary.complete and summary.checksum is not None
    assert summary.rdb_version == 10 and summary.redis_version.startswith("7.0.")
    assert summary.keys == expected
    for entry in entries:
        dumped = source.client(entry.db).dump(entry.key)
        assert rdb.dump_payload(entry.type, entry.value, summary.rdb_version) == dumped, (entry.db, entry.key)
        ttl = source.client(entry.db).pttl(entry.key)
        assert (entry.expire_ms is None) == (ttl < 0), entry.key
        seen_types.add(entry.type)
    # Small and large encodings of every type were written and walked.
    assert {rdb.STRING, rdb.LIST_QUICKLIST_2, rdb.SET_INTSET, rdb.SET, rdb.ZSET_LISTPACK, rdb.ZSET_2} <= seen_types
    assert {rdb.HASH_LISTPACK, rdb.HASH, rdb.STREAM_LISTPACKS_2} <= seen_types


def test_restore_of_the_payloads_reproduces_every_value(source: BareRedis, snapshot_file: Path, tmp_path: Path) -> None:
    other = BareRedis(tmp_path / "restored", "databases 8")
    try:
        with snapshot_file.open("rb") as stream:
            reader = rdb.RdbReader(stream)
            for entry in reader.entries():
                payload = rdb.dump_payload(entry.type, entry.value, 10)
                other.client(entry.db).restore(entry.key, entry.expire_ms or 0, payload, absttl=True, replace=True)
        problems = redis_data.same_contents(redis_data.snapshot(source.client), redis_data.snapshot(other.client), 5000)
        assert problems == []
        # Same encodings too (a hash table's DUMP order depends on its insertion history,
        # so bytes are compared against the source's own DUMP in the test above).
        for db in redis_data.DATABASES:
            for key in source.client(db).scan_iter():
                if source.client(db).type(key) == b"string":
                    continue  # raw or embstr: a memory layout, not a serialised form
                assert other.client(db).object("encoding", key) == source.client(db).object("encoding", key), key
    finally:
        other.stop()


def test_psync_names_the_snapshot_point_first(source: BareRedis, tmp_path: Path) -> None:
    with Connection(LOCALHOST, source.port) as conn:
        snap = fetch_rdb(conn, tmp_path / "psync.rdb", psync=True)
    assert snap.replid == source.client().info("replication")["master_replid"]
    assert snap.offset is not None and snap.offset >= 0
    assert rdb.walk(str(snap.path)).aux["repl-id"] == snap.replid


def test_a_diskless_snapshot_arrives_between_end_marks(source: BareRedis, tmp_path: Path) -> None:
    source.client().config_set("repl-diskless-sync", "yes")
    path = tmp_path / "diskless.rdb"
    with Connection(LOCALHOST, source.port) as conn:
        snap = fetch_rdb(conn, path, diskless=True)
    assert snap.diskless
    assert snap.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rdb.walk(str(path)).keys == {db: source.client(db).dbsize() for db in redis_data.DATABASES}


def test_a_flipped_byte_fails_the_walk(snapshot_file: Path, tmp_path: Path) -> None:
    data = bytearray(snapshot_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    broken = tmp_path / "broken.rdb"
    broken.write_bytes(bytes(data))
    with pytest.raises(rdb.RdbError):
        rdb.walk(str(broken))


def test_a_truncated_file_fails_the_walk(snapshot_file: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.rdb"
    short.write_bytes(snapshot_file.read_bytes()[:-100])
    with pytest.raises(rdb.RdbError, match="truncated|CRC"):
        rdb.walk(str(short))


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 64 else struct.pack(">BI", 0x80, n)


def _rdb(*items: bytes) -> bytes:
    body = b"REDIS0010" + b"".join(items) + b"\xff"
    return body + struct.pack("<Q", crc.crc64(body))


def test_a_module_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "module.rdb"
    path.write_bytes(_rdb(b"\xfe\x00", b"\x07", _length(6), b"mykey1", b"\x00" * 9))
    with pytest.raises(rdb.ModuleKeyError, match="mykey1"):
        rdb.walk(str(path))


def test_crafted_file_with_every_opcode_walks(tmp_path: Path) -> None:
    aux = b"\xfa" + _length(9) + b"redis-ver" + _length(5) + b"7.4.1"
    selectdb = b"\xfe" + _length(2) + b"\xfb" + _length(1) + _length(1)
    expire = b"\xfc" + struct.pack("<q", 4_000_000_000_000) + b"\xf9\x05"
    key = b"\x00" + _length(1) + b"k" + b"\xc0\x7f"  # an 8-bit integer string
    seconds = b"\xfd" + struct.pack("<i", 2_000_000_000) + b"\xf8" + _length(3)
    key2 = b"\x00" + _length(2) + b"k2" + _length(1) + b"v"
    function = b"\xf5" + _length(4) + b"code"
    slot_info = b"\xf4" + _length(1) + _length(2) + _length(0)
    # A hash with field expiries (7.4): min expiry, one field with TTL delta 1.
    hash_meta = b"\x18" + _length(1) + b"h" + struct.pack("<Q", 5) + _length(1) + _length(1) + _length(1) + b"f"
    hash_meta += _length(1) + b"v"
    path = tmp_path / "crafted.rdb"
    path.write_bytes(_rdb(aux, function, selectdb, expire, key, seconds, key2, slot_info, hash_meta))
    with path.open("rb") as stream:
        reader = rdb.RdbReader(stream)
        entries = list(reader.entries())
    assert [(e.db, e.key, e.expire_ms) for e in entries] == [
        (2, b"k", 4_000_000_000_000),
        (2, b"k2", 2_000_000_000_000),
        (2, b"h", None),
    ]
    assert entries[0].value == b"\xc0\x7f"
    assert reader.summary.redis_version == "7.4.1" and reader.summary.functions == [b"code"]
    assert rdb.rdb_version_supported("7.0.15") == 10 and rdb.rdb_version_supported("7.4.0") == 12


def test_lzf_back_references_may_overlap() -> None:
    # literal "ab", then a back reference of length 6 at distance 2: "abababab"
    assert lzf_decompress(b"\x01ab" + bytes(((4 << 5) | 0, 1)), 8) == b"abababab"


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA and a certificate for 127.0.0.1 it signed (server and client alike)."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=redis-ha-test-ca",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=localhost")
    run(
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return {name: directory / f"{name}" for name in ("ca.crt", "node.crt", "node.key")}


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="needs the openssl command")
def test_a_snapshot_comes_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    from redis_ha.backup.resp import RespError, Tls
    from tests.support.redis_servers import free_port

    files = _certificates(tmp_path)
    tls_port = free_port()
    server = BareRedis(
        tmp_path / "tls-node",
        f"tls-port {tls_port}",
        f"tls-cert-file {files['node.crt']}",
        f"tls-key-file {files['node.key']}",
        f"tls-ca-cert-file {files['ca.crt']}",
        "tls-auth-clients yes",
    )
    try:
        server.client().set("over-tls", "yes")
        tls = Tls(str(files["ca.crt"]), str(files["node.crt"]), str(files["node.key"]))
        with Connection(LOCALHOST, tls_port, tls=tls) as conn:
            assert conn.call("GET", "over-tls") == b"yes"
            snap = fetch_rdb(conn, tmp_path / "tls.rdb")
        assert rdb.walk(str(snap.path)).keys == {0: 1}
        # Without its certificate the client is turned away.
        with pytest.raises((OSError, RespError)), Connection(LOCALHOST, tls_port, tls=Tls(str(files["ca.crt"]))) as c:
            c.call("PING")
    finally:
        server.stop()
