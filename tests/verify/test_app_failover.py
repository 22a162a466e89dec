"""The application roles across a failover: the same Sentinel clients and the same Celery
worker keep working after the master changes, and nothing the broker acknowledged is
lost.

Destructive (they fail the master over); opt in with `redis-ha-verify --destructive`.
The `live` fixture (conftest.py) restores a healthy topology after each drill.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from . import faults, use_cases
from .access import Node, Outputs
from .celery_runtime import CeleryRuntime, Worker, assert_all_done
from .clients import app_client
from .topology_state import (
    LiveState,
    failover_deadline,
    wait_healthy,
    wait_new_master,
    wait_replicated,
    wait_writable,
)

pytestmark = pytest.mark.destructive


def _switchover(outputs: Outputs, sentinels: list[Node], live: LiveState) -> None:
    reply = sentinels[0].cli("admin", "SENTINEL", "FAILOVER", outputs.deployment["masterName"])
    assert reply == "OK", f"SENTINEL FAILOVER: {reply}"


def _stop_master(outputs: Outputs, sentinels: list[Node], live: LiveState) -> None:
    faults.stop(live.master)


TRIGGERS = {"switchover": _switchover, "master-stopped": _stop_master}


def test_app_role_clients_keep_working_across_a_switchover(
    live: LiveState, outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]
) -> None:
    missing = sorted({*use_cases.USE_CASES, "pubsub"} - {r["name"] for r in outputs.deployment["roles"]})
    if missing:
        pytest.skip(f"the deployment has no {', '.join(missing)} role: the seed's use cases need them")
    clients = {user: app_client(outputs, user) for user in [*use_cases.USE_CASES, "pubsub"]}
    subscriber = app_client(outputs, "pubsub")
    session = f"session:{uuid.uuid4().hex}"
    try:

        def run_all(when: str) -> None:
            for user, cases in use_cases.USE_CASES.items():
                for case in cases:
                    try:
                        case(clients[user])
                    except (AssertionError, redis.RedisError) as error:
                        raise AssertionError(f"{when} the switchover, {case.__name__} as {user}: {error}") from error
            use_cases.real_time_updates(clients["pubsub"], subscriber)

        run_all("before")
        assert use_cases.setex(clients["sessions"], session, use_cases.SESSION_TTL, "kept") is True
        wait_replicated(live)
        _switchover(outputs, sentinels, live)
        new_master, _ = wait_new_master(outputs, sentinels, live.master, failover_deadline(outputs))
        # Until Sentinel converts the old master, it is a master without replicas that
        # answers the connections still open to it with NOREPLICAS (writes refused, not
        # lost); once it is a replica, those connections fail over to the new master.
        wait_healthy(outputs, redis_nodes, sentinels, timeout=60)
        wait_writable(outputs, redis_nodes, new_master)
        # The same client objects, never recreated: they find the new master themselves.
        run_all(f"after ({live.master.name} -> {new_master})")
        assert clients["sessions"].get(session) == "kept", "a session written before the switchover is gone"
        assert clients["sessions"].ttl(session) > use_cases.SESSION_TTL - 600
    finally:
        clients["sessions"].delete(session)
        for client in [*clients.values(), subscriber]:
            client.close()


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_app_celery_loses_no_acknowledged_task_across_a_failover(
    trigger: str,
    live: LiveState,
    runtime: CeleryRuntime,
    worker: Worker,
    outputs: Outputs,
    redis_nodes: list[Node],
    sentinels: list[Node],
) -> None:
    gate = runtime.gate()
    # The worker takes the `hold` task and waits on the gate: everything sent behind it
    # stays queued in Redis while the master changes.
    before = runtime.produce("send", {"count": 3, "hold": gate})["sent"]
    # Acknowledged by the master (apply_async returned) and on every replica.
    wait_replicated(live)
    TRIGGERS[trigger](outputs, sentinels, live)
    new_master, took = wait_new_master(outputs, sentinels, live.master, failover_deadline(outputs))
    wait_writable(outputs, redis_nodes, new_master)
    opened_at = time.time()
    runtime.produce("open", {"gate": gate})
    after = runtime.produce("send", {"count": 3})["sent"]
    outcome = runtime.produce("collect", {"ids": [s["id"] for s in before + after], "timeout": 180}, timeout=240)
    assert_all_done(runtime, before + after, outcome, worker)
    queued = [s for s in before if s["task"] != "tasks.hold"]
    early = [s["task"] for s in queued if outcome["results"][s["id"]]["at"] < opened_at]
    assert not early, f"tasks ran before the gate opened, the drill proves nothing: {early}"
    # Remote control (pidbox over pub/sub, reply queue) works with the new master too.
    replies = runtime.produce("ping", {"worker": worker.name, "timeout": 10})["replies"]
    assert replies == [worker.name], f"after the failover to {new_master} ({took:.1f}s), ping replies: {replies}"
