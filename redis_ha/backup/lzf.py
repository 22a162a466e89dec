"""LZF decompression, as RDB files use it for strings longer than 20 bytes."""

from __future__ import annotations


class LzfError(ValueError):
    pass


def lzf_decompress(data: bytes, size: int) -> bytes:
    out = bytearray()
    i, end = 0, len(data)
    while i < end:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        length += 2
        if ref < 0:
            raise LzfError("corrupt LZF data")
        if ref + length <= len(out):
            out += out[ref : ref + length]
        else:
            for k in range(length):
                out.append(out[ref + k])
    if len(out) != size:
        raise LzfError(f"LZF data decompressed to {len(out)} bytes, not {size}")
    return bytes(out)
