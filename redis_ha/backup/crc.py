"""The two checksums Redis uses, table-driven, in pure Python.

- CRC-64 with the Jones polynomial (0xad93d23594c935a9), reflected, initial value 0 and
  no final xor: the trailer of an RDB file and of a DUMP payload. Check value:
  crc64(b"123456789") == 0xE9C6D914C4B8D9CA.
- CRC-16/XMODEM (polynomial 0x1021, initial 0): the cluster's key slot is that CRC of
  the key's hash tag, modulo 16384. Check value: crc16(b"123456789") == 0x31C3.
"""

from __future__ import annotations

import struct

_JONES_REFLECTED = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 with its bits reversed


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _JONES_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


CRC64_TABLE = _crc64_table()
CRC16_TABLE = _crc16_table()


def _sliced_tables() -> tuple[tuple[int, ...], ...]:
    # Table k advances a byte through k more zero bytes: eight bytes per step below.
    tables = [CRC64_TABLE]
    for _ in range(7):
        tables.append(tuple(CRC64_TABLE[v & 0xFF] ^ (v >> 8) for v in tables[-1]))
    return tuple(tables)


_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _sliced_tables()


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Continue the CRC-64 `crc` over `data` (start with 0), eight bytes at a time."""
    view = memoryview(data).cast("B")
    whole = len(view) & ~7
    t0, t1, t2, t3, t4, t5, t6, t7 = _T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7
    for (x,) in struct.iter_unpack("<Q", view[:whole]):
        x ^= crc
        crc = (
            t7[x & 0xFF]
            ^ t6[(x >> 8) & 0xFF]
            ^ t5[(x >> 16) & 0xFF]
            ^ t4[(x >> 24) & 0xFF]
            ^ t3[(x >> 32) & 0xFF]
            ^ t2[(x >> 40) & 0xFF]
            ^ t1[(x >> 48) & 0xFF]
            ^ t0[x >> 56]
        )
    for byte in view[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def crc16(data: bytes) -> int:
    table = CRC16_TABLE
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes:
    """The part of `key` the cluster hashes: the bytes between the first `{` and the
    next `}` when that is not empty, else the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes) -> int:
    return crc16(hash_tag(key)) & 16383
