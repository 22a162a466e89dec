"""The producer side of the Celery application: `python3 -m producer <command>`.

Reads its request as JSON on stdin and writes one JSON line on stdout (logs go to
stderr), so the test can run it in a container of the deployment's network or on the
runner alike. Commands:

  send     {"count": n, "hold": gate|null}  n tasks per route and n without one (after
           a `hold` task when a gate is given); prints what was sent
  open     {"gate": gate}                   stores the gate's result: the `hold` task ends
  collect  {"ids": [...], "timeout": s}     waits for those results (result.get)
  ping     {"worker": name, "timeout": s}   broadcast ping (the pidbox) to one worker
  cleanup  {"user": u, "password": p}       deletes what this run left in Redis, as user u
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from tasks import CELERY_TASK_ROUTES, CONFIG, RUN, app, hold, record

# Publishing is retried while the master changes; a publish returns only when Redis
# acknowledged the LPUSH (kombu's Redis transport has no publisher confirms).
RETRY_POLICY = {"max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def send(request: dict[str, Any]) -> dict[str, Any]:
    count = int(request["count"])
    sent: list[dict[str, Any]] = []
    if request.get("hold"):
        result = hold.apply_async((request["hold"],), task_id=task_id(), retry=True, retry_policy=RETRY_POLICY)
        sent.append({"id": result.id, "task": hold.name, "filing_id": None})
        # The worker must be busy with it before anything else is queued (the state
        # STARTED is stored by task_track_started).
        deadline = time.monotonic() + 60
        while result.state != "STARTED":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not start {result.id} within 60s (state {result.state})")
            time.sleep(0.1)
    names = [*CELERY_TASK_ROUTES, record.name]
    for i in range(count):
        for name in names:
            result = app.send_task(name, (i,), task_id=task_id(), retry=True, retry_policy=RETRY_POLICY)
            sent.append({"id": result.id, "task": name, "filing_id": i})
    return {"sent": sent}


def task_id() -> str:
    # The run in every id: its result keys (celery-task-meta-<id>) are found by cleanup.
    return f"{RUN}-{uuid.uuid4()}"


def open_gate(request: dict[str, Any]) -> dict[str, Any]:
    # Test scaffolding, not the property under test: retried while a just-promoted
    # master settles (e.g. NOREPLICAS until its replicas count as good).
    deadline = time.monotonic() + 30
    while True:
        try:
            app.backend.store_result(request["gate"], "open", "SUCCESS")
            return {"opened": request["gate"]}
        except Exception as error:
            print(f"open {request['gate']}: {error!r}", file=sys.stderr)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def collect(request: dict[str, Any]) -> dict[str, Any]:
    """Each result as applications wait for one: AsyncResult.get (the result backend's
    pub/sub channel, then the stored meta)."""
    deadline = time.monotonic() + float(request.get("timeout", 60))
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    pending = list(request["ids"])
    while pending and time.monotonic() < deadline:
        task_id = pending[0]
        result = AsyncResult(task_id, app=app)
        try:
            value = result.get(timeout=max(deadline - time.monotonic(), 0.1), propagate=False)
        except ResultTimeout:
            break
        except Exception as error:  # the master may be changing: ask again
            print(f"collect {task_id}: {error!r}", file=sys.stderr)
            time.sleep(0.5)
            continue
        if result.successful():
            results[task_id] = value
        else:
            errors[task_id] = f"{result.state}: {value!r}"
        pending.pop(0)
    return {"results": results, "errors": errors, "pending": pending}


def ping(request: dict[str, Any]) -> dict[str, Any]:
    replies = app.control.ping(destination=[request["worker"]], timeout=float(request.get("timeout", 10)))
    return {"replies": [name for reply in replies for name in reply]}


def _cleanup_client(request: dict[str, Any]) -> Any:
    """The connection cleanup runs on: SCAN lists the whole keyspace, which a broker role
    may not (roles get SCAN only with `scan: true`), so the suite names a user that may
    (admin) with its password in the request (stdin, never an argument)."""
    if not request.get("user"):
        return app.backend.client
    from redis.sentinel import Sentinel

    sentinel = Sentinel(
        [tuple(s) for s in CONFIG["sentinels"]],
        sentinel_kwargs={"username": CONFIG["sentinel_user"], "password": CONFIG["sentinel_password"]},
        socket_timeout=5,
    )
    return sentinel.master_for(
        CONFIG["master_name"], username=request["user"], password=request["password"], socket_timeout=10
    )


def cleanup(request: dict[str, Any]) -> dict[str, Any]:
    """Delete this run's queues, bindings and results, and its members of kombu's shared
    binding tables (a worker's mailbox, the exchanges' deadlines)."""
    client = _cleanup_client(request)
    deleted = removed = 0
    for key in list(client.scan_iter(match=f"*{RUN}*", count=1000)):
        deleted += client.delete(key)
    for key in list(client.scan_iter(match="_kombu.binding*", count=1000)):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "set":
            mine = [m for m in client.sscan_iter(key, match=f"*{RUN}*", count=1000)]
            removed += client.srem(key, *mine) if mine else 0
        elif kind == "zset":
            mine = [m for m, _ in client.zscan_iter(key, match=f"*{RUN}*", count=1000)]
            removed += client.zrem(key, *mine) if mine else 0
    return {"deleted": deleted, "removed": removed}


COMMANDS = {"send": send, "open": open_gate, "collect": collect, "ping": ping, "cleanup": cleanup}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: python3 -m producer {{{','.join(COMMANDS)}}} < request.json", file=sys.stderr)
        return 2
    request = json.loads(sys.stdin.read() or "{}")
    print(json.dumps(COMMANDS[argv[1]](request)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
