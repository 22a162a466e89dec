"""Failover time and write loss on the dev topology, measured on the real engine.

Each drill SIGKILLs the current master (no shutdown, no last sync) while two writers
run through a Sentinel-aware client: one acknowledges a write only after
`WAIT 1 <ms>`, the other after the plain `SET` reply. Failover time is from the kill
to the first successful write through Sentinel discovery. Afterwards the old master is
started again, the topology must be healthy, and every acknowledged key is looked up.

    python bench/failover.py [--drills 5]      -> bench/results/failover.json
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
import uuid

import redis
from harness import dev_topology, nodes, summary, table, write

from tests.verify import faults
from tests.verify.clients import master_client
from tests.verify.topology_state import wait_healthy


class Writer(threading.Thread):
    def __init__(self, outputs, wait_ms: int | None) -> None:
        super().__init__(daemon=True)
        self.outputs, self.wait_ms = outputs, wait_ms
        self.prefix = f"redis-ha:bench:{uuid.uuid4().hex}:"
        self.acknowledged: list[str] = []
        self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        client, i = master_client(self.outputs), 0
        while not self.halt.is_set():
            key = f"{self.prefix}{i}"
            i += 1
            try:
                client.set(key, "1", ex=3600)
                if self.wait_ms is None or client.wait(1, self.wait_ms) >= 1:
                    self.acknowledged.append(key)
            except redis.RedisError:
                self.failed += 1
                time.sleep(0.05)
                with contextlib.suppress(redis.RedisError):
                    client = master_client(self.outputs)
            time.sleep(0.005)


def first_write_after(outputs, started: float, timeout: float) -> float:
    key = f"redis-ha:bench:probe:{uuid.uuid4().hex}"
    while time.monotonic() - started < timeout:
        try:
            if master_client(outputs).set(key, "1", ex=60):
                return time.monotonic() - started
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no successful write within {timeout}s of the kill")


def lost(outputs, keys: list[str]) -> int:
    client = master_client(outputs)
    present = 0
    for i in range(0, len(keys), 500):
        present += client.exists(*keys[i : i + 500])
    return len(keys) - present


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drills", type=int, default=5)
    parser.add_argument("--wait-ms", type=int, default=500)
    args = parser.parse_args()
    times, lost_waited, lost_unwaited, acked_waited, acked_unwaited = [], 0, 0, 0, 0
    with dev_topology("rhbench-failover") as (_, outputs):
        redis_nodes, sentinels = nodes(outputs, "redis"), nodes(outputs, "sentinel")
        down_after = outputs.deployment["downAfterMilliseconds"]
        for drill in range(1, args.drills + 1):
            state = wait_healthy(outputs, redis_nodes, sentinels, timeout=120)
            waited, unwaited = Writer(outputs, args.wait_ms), Writer(outputs, None)
            waited.start()
            unwaited.start()
            time.sleep(2)
            started = time.monotonic()
            faults.kill(state.master)
            elapsed = first_write_after(outputs, started, timeout=120)
            time.sleep(2)
            waited.halt.set()
            unwaited.halt.set()
            waited.join(10)
            unwaited.join(10)
            faults.start(state.master)
            wait_healthy(outputs, redis_nodes, sentinels, timeout=120)
            lw, lu = lost(outputs, waited.acknowledged), lost(outputs, unwaited.acknowledged)
            print(
                f"drill {drill}: write accepted {elapsed:.2f}s after killing {state.master.name}; "
                f"lost {lw}/{len(waited.acknowledged)} WAIT-acknowledged, {lu}/{len(unwaited.acknowledged)} plain"
            )
            times.append(elapsed)
            lost_waited += lw
            lost_unwaited += lu
            acked_waited += len(waited.acknowledged)
            acked_unwaited += len(unwaited.acknowledged)
    result = {
        "down_after_milliseconds": down_after,
        "failover_seconds": summary(times),
        "failover_seconds_each": times,
        "wait_ms": args.wait_ms,
        "acknowledged_with_wait": acked_waited,
        "lost_with_wait": lost_waited,
        "acknowledged_without_wait": acked_unwaited,
        "lost_without_wait": lost_unwaited,
        "median_within_down_after_plus_2s": summary(times)["median"] <= down_after / 1000 + 2,
    }
    path = write("failover", result)
    table(
        [
            ("drills", str(len(times))),
            ("down-after-milliseconds", str(down_after)),
            ("failover median / max (s)", "{median:.2f} / {max:.2f}".format(**result["failover_seconds"])),
            ("lost, acknowledged with WAIT 1", f"{lost_waited} of {acked_waited}"),
            ("lost, acknowledged without WAIT", f"{lost_unwaited} of {acked_unwaited}"),
            ("results", str(path)),
        ]
    )


if __name__ == "__main__":
    main()
