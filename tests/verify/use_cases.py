"""The seed design's use cases, run the way the applications run them.

Each function takes Sentinel-aware clients connected as the application role's user
(clients.app_client) and asserts the use case works end to end. Keys carry a unique
token, so application data is never touched, and everything created is deleted.
test_app_roles.py runs each once; test_app_failover.py runs them before and after the
master changes, on the same clients.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
import redis

# The seed's lock release ("Cache Stampede Prevention"): delete only if still ours.
RELEASE_LOCK = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
else
    return 0
end
"""

# The seed's sliding-window limiter ("Lua Scripts"), with one fix: the seed adds the
# current second as both score and member (`ZADD key current current`), so all requests
# within one second are a single member and the window undercounts them (a burst in one
# second is never limited). ARGV[4] is a member unique per request.
RATE_LIMIT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local current = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', key, 0, current - window)
local count = redis.call('ZCARD', key)

if count < limit then
    redis.call('ZADD', key, current, ARGV[4])
    redis.call('EXPIRE', key, window)
    return 1
else
    return 0
end
"""

SESSION_TTL = 604800  # the seed: 7 days


def token() -> str:
    return uuid.uuid4().hex


def text(value: object) -> str:
    """A string reply of a decode_responses client; fails on a missing key (None)."""
    assert isinstance(value, str), f"expected a string, got {value!r}"
    return value


def setex(client: redis.Redis, key: str, seconds: int, value: str) -> bool:
    """SETEX, the seed's command (redis-py 8 deprecates its setex() wrapper, not SETEX)."""
    return client.execute_command("SETEX", key, seconds, value)


def cache_aside(cache: redis.Redis) -> None:
    """get_filing_analysis: miss, fill with SETEX, hit, delete."""
    key = f"filing:analysis:{token()}"
    try:
        assert cache.get(key) is None, f"{key} exists before the test wrote it"
        analysis = {"filing_id": key.rsplit(":", 1)[1], "signals": [0.4, 0.9]}
        assert setex(cache, key, 3600, json.dumps(analysis)) is True
        assert json.loads(text(cache.get(key))) == analysis
        assert 3590 <= cache.ttl(key) <= 3600, f"TTL of {key} is {cache.ttl(key)}"
    finally:
        cache.delete(key)
    assert cache.exists(key) == 0


def cache_invalidation_by_scan(cache: redis.Redis) -> None:
    """invalidate_filing with SCAN (the seed's KEYS blocks the server and is refused)."""
    filing, other = token(), token()
    doomed = {f"filing:{filing}:summary", f"filing:{filing}:signals", f"company:{filing}:filings"}
    kept = f"filing:{other}:summary"
    try:
        for key in [*doomed, kept]:
            setex(cache, key, 600, "v")
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.keys(f"filing:{filing}:*")
        found: set[str] = set()
        for pattern in (f"filing:{filing}:*", f"company:{filing}:filings"):
            found.update(cache.scan_iter(match=pattern, count=1000))
        assert found == doomed, f"SCAN found {sorted(found)}, expected {sorted(doomed)}"
        assert cache.delete(*found) == len(doomed)
        assert cache.exists(*doomed) == 0
        assert cache.get(kept) == "v", "invalidating one filing removed another's entry"
    finally:
        cache.delete(*doomed, kept)


def cache_stampede_lock(cache: redis.Redis) -> None:
    """get_with_lock: SET NX EX 10, and the compare-and-delete release by EVAL."""
    lock = f"lock:filing:analysis:{token()}"
    mine, theirs = token(), token()
    try:
        assert cache.set(lock, mine, nx=True, ex=10) is True
        assert cache.set(lock, theirs, nx=True, ex=10) is None, "a second holder got the lock"
        assert 0 < cache.ttl(lock) <= 10
        assert cache.eval(RELEASE_LOCK, 1, lock, theirs) == 0, "a wrong token released the lock"
        assert cache.get(lock) == mine
        assert cache.eval(RELEASE_LOCK, 1, lock, mine) == 1
        assert cache.exists(lock) == 0
        assert cache.set(lock, theirs, nx=True, ex=10) is True, "the released lock cannot be taken again"
    finally:
        cache.delete(lock)


def session_storage(sessions: redis.Redis) -> None:
    """create_session: SETEX session:<token> for 7 days."""
    key = f"session:{token()}"
    data = {"user_id": 123, "created_at": "2025-10-19T00:00:00", "expires_at": "2025-10-26T00:00:00"}
    try:
        assert setex(sessions, key, SESSION_TTL, json.dumps(data)) is True
        ttl = sessions.ttl(key)
        assert SESSION_TTL - 10 <= ttl <= SESSION_TTL, f"TTL of {key} is {ttl}, expected 7 days"
        assert json.loads(text(sessions.get(key))) == data
    finally:
        sessions.delete(key)


def rate_limiting(ratelimit: redis.Redis, limit: int = 10, window: int = 60) -> None:
    """check_rate_limit as the atomic script: SCRIPT LOAD, then EVALSHA per request;
    exactly `limit` requests are admitted in a window, and the window slides."""
    key = f"ratelimit:{token()}"
    now = int(time.time())
    try:
        sha = ratelimit.script_load(RATE_LIMIT)
        verdicts = [ratelimit.evalsha(sha, 1, key, limit, window, now, f"{now}-{i}") for i in range(limit + 1)]
        assert verdicts == [1] * limit + [0], f"limit {limit}: admitted {verdicts}"
        assert ratelimit.zcard(key) == limit
        assert 0 < ratelimit.ttl(key) <= window
        # A window later the old requests have slid out.
        later = now + window + 1
        assert ratelimit.evalsha(sha, 1, key, limit, window, later, f"{later}-0") == 1
        assert ratelimit.zcard(key) == 1
    finally:
        ratelimit.delete(key)


def _next_message(subscriber: redis.client.PubSub, wanted: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscriber.get_message(timeout=0.2)
        if message and message["type"] == wanted:
            return message
    raise AssertionError(f"no {wanted} message within {timeout:.0f}s")


def real_time_updates(publisher: redis.Redis, subscriber_client: redis.Redis) -> None:
    """notify_filing_processed / the subscriber loop, both as the pub/sub role.

    The subscriber subscribes to the seed's channel `filing:processed` itself; the test
    message goes to `filing:processed:<token>` (same ACL pattern), because a PUBLISH on
    the real channel would reach the real subscribers of a live deployment."""
    channel = f"filing:processed:{token()}"
    subscriber = subscriber_client.pubsub()
    try:
        subscriber.subscribe("filing:processed", channel)
        confirmed = {_next_message(subscriber, "subscribe")["channel"] for _ in range(2)}
        assert confirmed == {"filing:processed", channel}
        event = {"filing_id": channel.rsplit(":", 1)[1], "timestamp": time.time()}
        assert publisher.publish(channel, json.dumps(event)) >= 1, "nobody received the notification"
        message = _next_message(subscriber, "message")
        assert message["channel"] == channel and json.loads(message["data"]) == event
    finally:
        subscriber.close()


def analytics_hash(analytics: redis.Redis) -> None:
    key = f"user:{token()}"
    profile = {"name": "John Doe", "email": "john@example.com", "role": "analyst"}
    try:
        assert analytics.hset(key, mapping={k: v for k, v in profile.items()}) == 3
        assert analytics.hget(key, "email") == "john@example.com"
        assert analytics.hgetall(key) == profile
    finally:
        analytics.delete(key)


def analytics_list(analytics: redis.Redis) -> None:
    """recent:filings keeps the last 100 (LPUSH + LTRIM)."""
    key = f"recent:filings:{token()}"
    try:
        for filing_id in range(150):
            analytics.lpush(key, filing_id)
            analytics.ltrim(key, 0, 99)
        assert analytics.llen(key) == 100
        assert analytics.lindex(key, 0) == "149" and analytics.lindex(key, -1) == "50"
    finally:
        analytics.delete(key)


def analytics_set(analytics: redis.Redis) -> None:
    key = f"processed:companies:2025-10-19:{token()}"
    try:
        assert analytics.sadd(key, "AAPL", "MSFT", "GOOGL") == 3
        assert analytics.sismember(key, "AAPL") and not analytics.sismember(key, "IBM")
        assert analytics.smembers(key) == {"AAPL", "MSFT", "GOOGL"}
    finally:
        analytics.delete(key)


def analytics_sorted_set(analytics: redis.Redis) -> None:
    key = f"rankings:signals:{token()}"
    try:
        assert analytics.zadd(key, {"AAPL": 95.5, "MSFT": 92.3, "GOOGL": 89.7}) == 3
        top = analytics.zrevrange(key, 0, 9, withscores=True)
        assert top == [("AAPL", 95.5), ("MSFT", 92.3), ("GOOGL", 89.7)]
        assert analytics.zrevrank(key, "AAPL") == 0
    finally:
        analytics.delete(key)


def analytics_hyperloglog(analytics: redis.Redis) -> None:
    run = token()
    days = [f"unique:visitors:2025-10-{d}:{run}" for d in (19, 20, 21)]
    week = f"unique:visitors:week:{run}"
    try:
        analytics.pfadd(days[0], "user1", "user2", "user3")
        analytics.pfadd(days[1], "user3", "user4")
        analytics.pfadd(days[2], "user1", "user5")
        # Small cardinalities are exact (sparse encoding).
        assert analytics.pfcount(days[0]) == 3
        assert analytics.pfmerge(week, *days) is True
        assert analytics.pfcount(week) == 5
    finally:
        analytics.delete(*days, week)


# role name -> its use cases, for the drills that replay them all.
USE_CASES: dict[str, list[Callable[[redis.Redis], None]]] = {
    "cache": [cache_aside, cache_invalidation_by_scan, cache_stampede_lock],
    "sessions": [session_storage],
    "ratelimit": [rate_limiting],
    "analytics": [analytics_hash, analytics_list, analytics_set, analytics_sorted_set, analytics_hyperloglog],
}
