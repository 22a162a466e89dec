"""What the scheduled worker tells Prometheus: when the last backup succeeded, failed,
how big and slow it was, and how far apart the schedule's runs are, so that one alert
rule ("no backup for more than two intervals") fits every schedule.

Served in the Prometheus text format on `metricsPort` (a thread of `schedule`). No
secret and no key name ever appears: only times, counts and sizes, labelled with the
part's name.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "redis_ha_backup_"
_HELP = {
    "worker_start_timestamp_seconds": ("gauge", "When the backup worker started (Unix time)."),
    "last_success_timestamp_seconds": ("gauge", "When the newest complete backup was taken (Unix time; 0: none yet)."),
    "last_failure_timestamp_seconds": ("gauge", "When the last scheduled backup failed (Unix time)."),
    "successes_total": ("counter", "Scheduled backups taken since the worker started."),
    "failures_total": ("counter", "Scheduled backups that failed since the worker started."),
    "last_size_bytes": ("gauge", "Size of the newest backup taken by this worker (all files)."),
    "last_keys": ("gauge", "Keys in the newest backup taken by this worker."),
    "last_duration_seconds": ("gauge", "How long the newest backup taken by this worker took."),
    "schedule_max_interval_seconds": ("gauge", "The longest gap between two runs of the schedule."),
}


def max_interval(plan: Any, start: datetime, runs: int = 48) -> float:
    """The longest gap between consecutive fire times over the next `runs` runs."""
    fire = plan.next_after(start)
    longest = 0.0
    for _ in range(runs):
        following = plan.next_after(fire)
        longest = max(longest, (following - fire).total_seconds())
        fire = following
    return longest


class Metrics:
    """The worker's state, updated by the schedule loop and read by the HTTP thread."""

    def __init__(self, part: str, interval_seconds: float, started: float | None = None) -> None:
        self.part = part
        self._lock = threading.Lock()
        self._values: dict[str, float] = {
            "worker_start_timestamp_seconds": time.time() if started is None else started,
            # 0 until a backup is known: what the backup alerts read as "none yet".
            "last_success_timestamp_seconds": 0,
            "successes_total": 0,
            "failures_total": 0,
            "schedule_max_interval_seconds": interval_seconds,
        }

    def known_backup(self, created: float) -> None:
        """A complete backup found in the target (at start): the age counts from it."""
        with self._lock:
            if created > self._values.get("last_success_timestamp_seconds", 0):
                self._values["last_success_timestamp_seconds"] = created

    def success(self, size_bytes: int, keys: int, seconds: float, at: float | None = None) -> None:
        with self._lock:
            self._values["last_success_timestamp_seconds"] = time.time() if at is None else at
            self._values["successes_total"] += 1
            self._values["last_size_bytes"] = size_bytes
            self._values["last_keys"] = keys
            self._values["last_duration_seconds"] = seconds

    def failure(self, at: float | None = None) -> None:
        with self._lock:
            self._values["last_failure_timestamp_seconds"] = time.time() if at is None else at
            self._values["failures_total"] += 1

    def render(self) -> str:
        with self._lock:
            values = dict(self._values)
        lines = []
        label = '{part="' + self.part.replace("\\", "\\\\").replace('"', '\\"') + '"}'
        for name, (kind, text) in _HELP.items():
            if name not in values:
                continue
            lines += [f"# HELP {PREFIX}{name} {text}", f"# TYPE {PREFIX}{name} {kind}"]
            lines.append(f"{PREFIX}{name}{label} {values[name]:.17g}")
        return "\n".join(lines) + "\n"


def serve(metrics: Metrics, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """`GET /metrics` on `port`, in a daemon thread; returns the server (to shut down)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
