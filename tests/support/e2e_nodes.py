"""A deployed stack's nodes as the e2e drills reach them from the host: an admin
client of one node, and the node the Sentinels name master (tests/e2e/test_backup.py,
tests/e2e/test_engines.py)."""

from __future__ import annotations

from typing import Any

import redis

from tests.e2e.day2 import Stack
from tests.verify.access import Outputs
from tests.verify.clients import MappedSentinel, _endpoint


def admin(outputs: Outputs, spec: dict[str, Any], db: int) -> redis.Redis:
    endpoint = _endpoint(spec)
    assert endpoint is not None, spec["name"]
    return redis.Redis(*endpoint, db=db, username="admin", password=outputs.passwords["admin"], socket_timeout=10)


def master_spec(stack: Stack) -> dict[str, Any]:
    outputs = stack.outputs
    sentinel = MappedSentinel(outputs)
    host, port = sentinel.discover_master(outputs.deployment["masterName"])
    return next(s for s in outputs.nodes("redis") if _endpoint(s) == (host, port))
