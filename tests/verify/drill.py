"""The data-safety drill: two writers through Sentinel discovery while an operation runs,
then every acknowledged key read back.

- the `wait` writer counts a write as acknowledged only after `WAIT 1 <ms>` confirmed a
  replica has it (what a careful application does);
- the `plain` writer counts the plain `SET` reply (what most applications do);
- the `wait-all` writer (on request: `kinds`) waits for every replica (`WAIT <n>`).

Both write unique keys as fast as the deployment takes them, reconnect through the
Sentinels after any error, and record each error and the longest time between two
acknowledged writes (the write gap an application sees). `Drill.report()` reads back
every acknowledged key from the master the Sentinels name once the operation is over:
a key missing there is a lost acknowledged write.

    with Drill(outputs) as drill:
        ...the operation...
    report = drill.report()     # {"wait": {...}, "plain": {...}}
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from .access import Outputs
from .clients import master_client

# Keys expire on their own if a drill is interrupted before it cleans up.
KEY_TTL = 3600

# How the writers and the read-back reach the deployment: (outputs, user) -> a client
# with set/wait/pipeline. Through the Sentinels by default; the Redis Cluster drill
# (tests/e2e/cluster_partition.py) passes a cluster-aware client.
Connect = Callable[[Outputs, str], Any]
# redis-py's cluster client raises RedisClusterException (not a RedisError) when it
# cannot read a usable slot map: the writer counts it as an error like any other.
ERRORS = (redis.RedisError, RedisClusterException)


@dataclass
class WriterStats:
    kind: str
    acknowledged: list[str] = field(default_factory=list)
    attempts: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    longest_gap: float = 0.0
    # seconds since the writer started, one per acknowledged key
    acknowledged_at: list[float] = field(default_factory=list)
    # acknowledged after the operation returned: the writer got through again
    after_operation: int = 0
    # (seconds since the writer started, error) for the first errors
    first_errors: list[tuple[float, str]] = field(default_factory=list)


class Writer(threading.Thread):
    def __init__(
        self,
        outputs: Outputs,
        kind: str,
        wait_ms: int = 1000,
        user: str = "admin",
        key_prefix: str = "redis-ha:drill:",
        replicas: int = 1,
        connect: Connect = master_client,
    ) -> None:
        super().__init__(daemon=True, name=f"drill-writer-{kind}")
        assert kind in ("wait", "plain", "wait-all"), kind
        self.outputs, self.wait_ms, self.user, self.connect = outputs, wait_ms, user, connect
        # How many replicas must confirm a write (WAIT): 1, or all of them for wait-all.
        self.replicas = replicas if kind == "wait-all" else 1
        self.stats = WriterStats(kind)
        self.prefix = f"{key_prefix}{kind}:{uuid.uuid4().hex}:"
        self.halt = threading.Event()
        # Set by `switch`: reconnect with the credentials of the new outputs.
        self._switch = threading.Event()
        self._last_ack: float | None = None
        self._t0 = 0.0

    def switch(self, outputs: Outputs) -> None:
        """Use the credentials of `outputs` from the next write on, as an application
        does when it reads its rotated Secret: a new connection (its user and the
        Sentinel client's password), the old one closed."""
        self.outputs = outputs
        self._switch.set()

    def _client(self) -> Any:
        try:
            return self.connect(self.outputs, self.user)
        except ERRORS:
            return None

    def _acknowledged(self, key: str) -> None:
        now = time.monotonic()
        if self._last_ack is not None:
            self.stats.longest_gap = max(self.stats.longest_gap, now - self._last_ack)
        self._last_ack = now
        self.stats.acknowledged.append(key)
        self.stats.acknowledged_at.append(now - self._t0)

    def run(self) -> None:
        self._t0 = time.monotonic()
        client = self._client()
        i = 0
        while not self.halt.is_set():
            if self._switch.is_set():
                self._switch.clear()
                with contextlib.suppress(Exception):
                    if client is not None:
                        client.close()
                client = self._client()
            key = f"{self.prefix}{i}"
            i += 1
            self.stats.attempts += 1
            try:
                if client is None:
                    raise redis.ConnectionError("no master discovered")
                client.set(key, key, ex=KEY_TTL)
                if self.stats.kind == "plain" or client.wait(self.replicas, self.wait_ms) >= self.replicas:
                    self._acknowledged(key)
            except ERRORS as error:
                self.stats.errors += 1
                name = type(error).__name__
                if len(self.stats.first_errors) < 20:
                    self.stats.first_errors.append((round(time.monotonic() - self._t0, 3), f"{name}: {error}"[:120]))
                self.stats.error_kinds[name] = self.stats.error_kinds.get(name, 0) + 1
                time.sleep(0.05)
                with contextlib.suppress(Exception):
                    if client is not None:
                        client.close()
                client = self._client()
            time.sleep(0.002)
        if self._last_ack is not None:
            # A writer that never got through again after the operation: its gap runs to the end.
            self.stats.longest_gap = max(self.stats.longest_gap, time.monotonic() - self._last_ack)


def missing_keys(outputs: Outputs, keys: list[str], batch: int = 500, connect: Connect = master_client) -> list[str]:
    """The keys the current master does not have."""
    client = connect(outputs, "admin")
    missing: list[str] = []
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.exists(key)
        missing += [k for k, present in zip(chunk, pipe.execute(), strict=True) if not present]
    return missing


class Drill:
    """Runs both writers for the duration of a `with` block: after a warm-up in which
    each has acknowledged `warm_up` writes, until both acknowledged `recovered` more
    after the block."""

    def __init__(
        self,
        outputs: Outputs,
        warm_up: int = 50,
        settle: float = 0.5,
        recovered: int = 50,
        recovery_timeout: float = 120,
        user: str = "admin",
        key_prefix: str = "redis-ha:drill:",
        kinds: tuple[str, ...] = ("wait", "plain"),
        replicas: int = 1,
        connect: Connect = master_client,
    ) -> None:
        self.outputs, self.warm_up, self.settle, self.connect = outputs, warm_up, settle, connect
        self.recovered, self.recovery_timeout = recovered, recovery_timeout
        self.writers = [
            Writer(outputs, kind, user=user, key_prefix=key_prefix, replicas=replicas, connect=connect)
            for kind in kinds
        ]
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Drill:
        for writer in self.writers:
            writer.start()
        deadline = time.monotonic() + 30
        while any(len(w.stats.acknowledged) < self.warm_up for w in self.writers):
            if time.monotonic() > deadline:
                self._stop()
                raise AssertionError(f"the writers made no progress before the drill: {self.summary()}")
            time.sleep(0.05)
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        # The drill ends once both writers are through again (`recovered` new
        # acknowledgements each, at most `recovery_timeout` s), so the longest gap
        # includes the time the deployment took to take writes again.
        marks = [len(w.stats.acknowledged) for w in self.writers]
        deadline = time.monotonic() + self.recovery_timeout
        time.sleep(self.settle)
        while time.monotonic() < deadline and any(
            len(w.stats.acknowledged) < mark + self.recovered for w, mark in zip(self.writers, marks, strict=True)
        ):
            time.sleep(0.05)
        for writer, mark in zip(self.writers, marks, strict=True):
            writer.stats.after_operation = len(writer.stats.acknowledged) - mark
        self._stop()

    def switch(self, outputs: Outputs) -> None:
        """Both writers (and the read-back) use the credentials of `outputs` from now on."""
        self.outputs = outputs
        for writer in self.writers:
            writer.switch(outputs)

    def _stop(self) -> None:
        for writer in self.writers:
            writer.halt.set()
        for writer in self.writers:
            writer.join(timeout=30)
        self.seconds = time.monotonic() - self._started if self._started else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            w.stats.kind: {"acknowledged": len(w.stats.acknowledged), "errors": w.stats.errors} for w in self.writers
        }

    def report(self) -> dict[str, Any]:
        """Per writer: acknowledged, lost (with a few examples), errors (by kind),
        attempts and the longest write gap in seconds."""
        result: dict[str, Any] = {"seconds": round(self.seconds, 2)}
        for writer in self.writers:
            s = writer.stats
            lost = missing_keys(self.outputs, s.acknowledged, connect=self.connect)
            # From the first lost write's acknowledgement to the last one's.
            lost_set = set(lost)
            lost_at = [t for key, t in zip(s.acknowledged, s.acknowledged_at, strict=True) if key in lost_set]
            result[s.kind] = {
                "acknowledged": len(s.acknowledged),
                "acknowledged_after_operation": s.after_operation,
                "lost": len(lost),
                "loss_window_s": round(max(lost_at) - min(lost_at), 3) if lost_at else 0.0,
                "lost_examples": lost[:5],
                "errors": s.errors,
                "error_kinds": dict(sorted(s.error_kinds.items())),
                "attempts": s.attempts,
                "longest_gap_s": round(s.longest_gap, 3),
                "first_errors": s.first_errors,
            }
        return result
