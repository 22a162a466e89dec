"""A dataset with every data structure the deployment is built for, and a key-by-key
comparison: what the backup drills load before a backup and check after a restore.

Strings (plain, integer-encoded, long and compressible) with and without a TTL,
hashes, lists, sets (integer and string members), sorted sets (small and large, so
both encodings are written), HyperLogLogs and streams with a consumer group and
pending entries, spread over two databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis

# Keys per structure; `scale` multiplies the bulk strings (bench/backup.py uses ~1 M keys).
DATABASES = (0, 1)


def load(client_for_db: Callable[[int], Any], scale: int = 1, databases: Iterable[int] = DATABASES) -> int:
    """Write the dataset (a Redis Cluster has database 0 only); returns the number of keys."""
    written = 0
    for db in databases:
        r = client_for_db(db)
        pipe = r.pipeline(transaction=False)
        for i in range(200 * scale):
            pipe.set(f"str:{db}:{i}", f"value-{i}-" + "x" * (i % 50))
            if i % 3 == 0:
                pipe.pexpire(f"str:{db}:{i}", 3_600_000 + i)
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.set(f"int:{db}", 123456789)
        pipe.set(f"long:{db}", "compressible-" * 2000)
        pipe.hset(f"hash:small:{db}", mapping={"a": "1", "b": "2", "c": "3"})
        pipe.hset(f"hash:large:{db}", mapping={f"field-{i}": f"value-{i}" * 5 for i in range(1000)})
        pipe.rpush(f"list:small:{db}", *[f"item-{i}" for i in range(5)])
        pipe.rpush(f"list:large:{db}", *[f"item-{i}-" + "y" * 100 for i in range(2000)])
        pipe.sadd(f"set:int:{db}", *range(100))
        pipe.sadd(f"set:str:{db}", *[f"member-{i}" for i in range(1000)])
        pipe.zadd(f"zset:small:{db}", {f"m{i}": i * 1.5 for i in range(10)})
        pipe.zadd(f"zset:large:{db}", {f"member-{i}": i / 7 for i in range(1000)})
        pipe.pfadd(f"hll:{db}", *[f"visitor-{i}" for i in range(5000)])
        pipe.expire(f"hash:small:{db}", 7200)
        pipe.execute()
        stream = f"stream:{db}"
        for i in range(300):
            r.xadd(stream, {"event": f"e{i}", "n": str(i)})
        r.xgroup_create(stream, "workers", id="0")
        r.xreadgroup("workers", "consumer-1", {stream: ">"}, count=50)
        ids = [entry[0] for entry in r.xrange(stream, count=10)]
        r.xack(stream, "workers", *ids)
        written += 200 * scale + 12
    return written


def _value(r: redis.Redis, key: bytes, kind: str) -> Any:
    if kind == "string":
        return r.get(key)
    if kind == "hash":
        return r.hgetall(key)
    if kind == "list":
        return r.lrange(key, 0, -1)
    if kind == "set":
        return sorted(r.smembers(key))
    if kind == "zset":
        return r.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        groups = [
            {k: v for k, v in g.items() if k in ("name", "consumers", "pending", "last-delivered-id")}
            for g in r.xinfo_groups(key)
        ]
        return {"entries": r.xrange(key), "groups": groups}
    raise AssertionError(f"unexpected type {kind} of {key!r}")


def snapshot(client_for_db: Callable[[int], Any], databases: Iterable[int] = DATABASES) -> dict[str, Any]:
    """(db, key) -> (type, value, absolute expiry in ms or -1) for every key."""
    found: dict[str, Any] = {}
    for db in databases:
        r = client_for_db(db)
        for key in r.scan_iter(count=1000):
            kind = r.type(key)
            expiry = r.execute_command("PEXPIRETIME", key)
            kind = kind if isinstance(kind, str) else kind.decode()
            name = key if isinstance(key, str) else key.decode()
            found[f"{db}/{name}"] = (kind, _value(r, key, kind), expiry)
    return found


def differences(expected: dict[str, Any], actual: dict[str, Any], ttl_tolerance_ms: int = 2000) -> list[str]:
    """What differs, key by key (empty when the datasets match)."""
    problems = []
    for key in sorted(set(expected) - set(actual)):
        problems.append(f"{key}: missing")
    for key in sorted(set(actual) - set(expected)):
        problems.append(f"{key}: not in the loaded dataset")
    for key in sorted(set(expected) & set(actual)):
        (kind, value, expiry), (kind2, value2, expiry2) = expected[key], actual[key]
        if kind != kind2:
            problems.append(f"{key}: type {kind2}, expected {kind}")
        elif value != value2:
            problems.append(f"{key}: value differs")
        elif (expiry == -1) != (expiry2 == -1) or abs(expiry - expiry2) > ttl_tolerance_ms:
            problems.append(f"{key}: expiry {expiry2}, expected {expiry}")
    return problems
