"""The Celery application of the seed design, connected the way production connects:
broker and result backend found through the Sentinels, as the broker role's user.

Connection settings come from a JSON file (REDIS_HA_CLIENT_CONFIG, mode 0600) written
by the test: {"sentinels": [[host, port], ...], "master_name", "user", "password",
"sentinel_user", "sentinel_password", "run"}. Nothing secret is on a command line or in
the environment.

`run` (redis-ha-verify-<token>) suffixes the seed's queue names and prefixes task ids:
the verification may run against a live deployment, whose own workers consume
`high_priority` and `celery` and must never receive its tasks. The suffixed names stay
inside the role's key patterns (`high_priority*`, `celery*`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote

from celery import Celery

CONFIG_PATH = os.environ.get("REDIS_HA_CLIENT_CONFIG", "/run/redis-ha-client/config.json")

# The seed's CELERY_TASK_ROUTES: module `tasks`, so the task names are the seed's.
CELERY_TASK_ROUTES = {
    "tasks.extract_signals": {"queue": "high_priority"},
    "tasks.analyze_filing": {"queue": "medium_priority"},
    "tasks.update_index": {"queue": "low_priority"},
}


def sentinel_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Celery settings for a broker and result backend behind Sentinel.

    kombu and Celery take the Redis user from the URL (the first URL's credentials are
    used for the master connection, on every Sentinel URL) and the Sentinel's own
    credentials from `sentinel_kwargs` in the transport options: the Sentinel port has
    its own users (`sentinel-client` may only discover the master).
    """
    user, password = quote(config["user"], safe=""), quote(config["password"], safe="")
    url = ";".join(f"sentinel://{user}:{password}@{host}:{port}/0" for host, port in config["sentinels"])
    transport_options = {
        "master_name": config["master_name"],
        "sentinel_kwargs": {
            "username": config["sentinel_user"],
            "password": config["sentinel_password"],
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
        },
        "socket_timeout": 10.0,
        "socket_connect_timeout": 2.0,
    }
    return {
        "broker_url": url,
        "broker_transport_options": transport_options,
        "result_backend": url,
        "result_backend_transport_options": transport_options,
        # A result written while the master changes is retried, not dropped.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 30,
        "broker_connection_retry_on_startup": True,
        # An error reply on the worker's connection (NOREPLICAS from a fenced old master,
        # READONLY from a demoted one) reconnects through the Sentinels, as a dropped
        # connection does; without it the consumer stops for good (Celery >= 5.3).
        "broker_channel_error_retry": True,
    }


def _load_config() -> dict[str, Any]:
    with open(CONFIG_PATH) as f:
        return json.load(f)


CONFIG = _load_config()
RUN = CONFIG.get("run", "")


def queue_name(queue: str) -> str:
    return f"{queue}.{RUN}" if RUN else queue


app = Celery("tasks")
app.conf.update(
    sentinel_settings(CONFIG),
    task_routes={name: {"queue": queue_name(route["queue"])} for name, route in CELERY_TASK_ROUTES.items()},
    task_default_queue=queue_name("celery"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    # Fetch a message only for a free process (Celery 5.6+, Redis brokers): queued tasks
    # wait in Redis, replicated, rather than reserved in a busy worker. A reserved
    # message whose master dies is restored only if a master answers at that moment;
    # otherwise it waits in `unacked` for visibility_timeout (1 h) before redelivery.
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
    task_track_started=True,
    worker_hijack_root_logger=False,
)


def _where(task: Any) -> dict[str, Any]:
    info = task.request.delivery_info or {}
    return {"queue": info.get("routing_key"), "worker": task.request.hostname, "at": time.time()}


@app.task(bind=True)
def extract_signals(self: Any, filing_id: int) -> dict[str, Any]:
    return {"filing_id": filing_id, **_where(self)}


@app.task(bind=True)
def analyze_filing(self: Any, filing_id: int) -> dict[str, Any]:
    return {"filing_id": filing_id, **_where(self)}


@app.task(bind=True)
def update_index(self: Any, filing_id: int) -> dict[str, Any]:
    return {"filing_id": filing_id, **_where(self)}


@app.task(bind=True)
def record(self: Any, filing_id: int) -> dict[str, Any]:
    """No route: the default queue (`celery`)."""
    return {"filing_id": filing_id, **_where(self)}


@app.task(bind=True)
def hold(self: Any, gate: str, timeout: float = 300.0) -> dict[str, Any]:
    """Occupy the worker until the result `gate` exists (the test stores it), so that
    the tasks behind this one are still queued in Redis when the master changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if app.backend.get(app.backend.get_key_for_task(gate)) is not None:
                return {"gate": gate, **_where(self)}
        except Exception:  # the master may be changing: keep polling
            pass
        time.sleep(0.2)
    raise TimeoutError(f"gate {gate} not opened within {timeout:.0f}s")
