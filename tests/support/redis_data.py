"""A data set of every type and encoding Redis 7.0 writes, and a key-by-key snapshot
of a server's contents for comparing two servers (type, value, TTL)."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import redis

DATABASES = (0, 1, 3)


def populate(client_for_db: Any, scale: int = 1, databases: tuple[int, ...] = DATABASES) -> dict[int, int]:
    """Fill DATABASES with keys of every type, small and large encodings; returns the
    number of keys per database."""
    rng = random.Random(7)
    counts = {}
    for db in databases:
        c: redis.Redis = client_for_db(db)
        p = c.pipeline(transaction=False)
        tag = f"db{db}:"
        # strings: int encodings, raw, LZF-compressible, incompressible, empty, binary, big
        p.set(tag + "int8", 7).set(tag + "int16", 3000).set(tag + "int32", -2_000_000_000)
        p.set(tag + "int64", 12345678901234).set(tag + "empty", b"").set(tag + "bin", bytes(range(256)))
        p.set(tag + "lzf", b"abcabc" * 500).set(tag + "random", os.urandom(700))
        p.set(tag + "big", b"x" * 300_000)
        p.set(tag + "a-very-long-key-name-that-lzf-compresses-" * 3, b"v")
        # lists: small listpack node, many nodes, a plain node (an element beyond 8 kB)
        p.rpush(tag + "list:small", "a", "b", 3)
        p.rpush(tag + "list:large", *[f"item-{i}" for i in range(5000 * scale)])
        p.rpush(tag + "list:plain", b"p" * 20000, "small")
        # sets: intset, big intset -> hashtable, strings (hashtable in 7.0)
        p.sadd(tag + "set:intset", 1, 2, 3, -5)
        p.sadd(tag + "set:bigint", *range(1000))
        p.sadd(tag + "set:small", "x", "y", "z")
        p.sadd(tag + "set:large", *[f"member-{i}" for i in range(1000)])
        # zsets: listpack, skiplist with odd scores
        p.zadd(tag + "zset:small", {"a": 1.5, "b": -2, "c": 3})
        p.zadd(tag + "zset:large", {f"m{i}": i / 7 for i in range(1000)})
        p.zadd(tag + "zset:inf", {"lo": float("-inf"), "hi": float("inf"), **{f"n{i}": i for i in range(200)}})
        # hashes: listpack, hashtable
        p.hset(tag + "hash:small", mapping={"f1": "v1", "f2": 2, "f3": "v3"})
        p.hset(tag + "hash:large", mapping={f"field-{i}": f"value-{i}" for i in range(1000)})
        # HyperLogLog: sparse and dense
        p.pfadd(tag + "hll:sparse", "a", "b", "c")
        p.pfadd(tag + "hll:dense", *[f"e{i}" for i in range(5000)])
        # TTLs: seconds and milliseconds ahead
        p.set(tag + "ttl:ex", "v", ex=3600).set(tag + "ttl:px", "v", px=7_200_000)
        p.hset(tag + "ttl:hash", "f", "v").expire(tag + "ttl:hash", 5000)
        p.execute()
        # a stream with deleted entries, two groups, pending entries, consumers
        stream = tag + "stream"
        ids = [c.xadd(stream, {"n": i, "payload": rng.choice(["a", "bb", "ccc"])}) for i in range(300)]
        c.xdel(stream, ids[5], ids[6])
        c.xgroup_create(stream, "g1", id="0")
        c.xgroup_create(stream, "g2", id=ids[100])
        c.xreadgroup("g1", "alice", {stream: ">"}, count=10)
        c.xreadgroup("g1", "bob", {stream: ">"}, count=5)
        c.xreadgroup("g2", "carol", {stream: ">"}, count=3)
        c.xack(stream, "g1", ids[0])
        c.xadd(tag + "stream:empty", {"x": 1})
        c.xtrim(tag + "stream:empty", maxlen=0)
        counts[db] = c.dbsize()
    return counts


def snapshot(client_for_db: Any, databases: tuple[int, ...] = DATABASES) -> dict[tuple[int, bytes], Any]:
    """(db, key) -> (type, value, ttl in ms or -1) for every key."""
    result: dict[tuple[int, bytes], Any] = {}
    for db in databases:
        c: redis.Redis = client_for_db(db)
        for key in c.scan_iter(count=1000):
            kind = c.type(key).decode()
            if kind == "string":
                value: Any = c.get(key)
            elif kind == "list":
                value = c.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(c.smembers(key))
            elif kind == "zset":
                value = c.zrange(key, 0, -1, withscores=True)
            elif kind == "hash":
                value = c.hgetall(key)
            elif kind == "stream":
                value = (
                    c.xrange(key),
                    _normal(c.execute_command("XINFO", "STREAM", key, "FULL")),
                )
            else:
                raise AssertionError(f"unexpected type {kind} of {key!r}")
            result[(db, key)] = (kind, value, c.pttl(key))
    return result


# When a consumer was last seen (and, 7.2+, last active) is the wall-clock time a
# node processed the read: a replica's differs from its master's by the link delay.
_CLOCK_FIELDS = {b"seen-time", b"active-time"}


def _normal(reply: Any) -> Any:
    if isinstance(reply, list):
        items = [_normal(r) for r in reply]
        # A RESP2 map arrives as a flat list: drop the clock fields with their values.
        names = [items[i] if isinstance(items[i], bytes) else None for i in range(0, len(items), 2)]
        if len(items) % 2 == 0 and _CLOCK_FIELDS & set(names):
            return [v for i in range(0, len(items), 2) if names[i // 2] not in _CLOCK_FIELDS for v in items[i : i + 2]]
        return items
    if isinstance(reply, dict):
        return {k: _normal(v) for k, v in reply.items() if k not in _CLOCK_FIELDS}
    return reply


def same_contents(expected: dict[Any, Any], actual: dict[Any, Any], ttl_tolerance_ms: int = 120_000) -> list[str]:
    """The differences between two snapshots; TTLs within the tolerance match."""
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"missing {name}")
            continue
        if name not in expected:
            problems.append(f"unexpected {name}")
            continue
        (kind_a, value_a, ttl_a), (kind_b, value_b, ttl_b) = expected[name], actual[name]
        if (kind_a, value_a) != (kind_b, value_b):
            problems.append(f"{name}: {kind_a} differs: {_first_difference(value_a, value_b)}")
        if (ttl_a < 0) != (ttl_b < 0) or abs(ttl_a - ttl_b) > ttl_tolerance_ms:
            problems.append(f"{name}: ttl {ttl_a} vs {ttl_b}")
    return problems


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for k in a:
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{path}[{k!r}]")
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"at {path or 'top'}: {a!r:.200} vs {b!r:.200}"


def now_ms() -> int:
    return int(time.time() * 1000)
