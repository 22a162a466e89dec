"""The shipped Celery settings (tests/verify/celery_app, docs/applications.md) keep a
worker alive through a fenced master.

A fenced master (docs/partitions.md) refuses every write with `NOREPLICAS`, BRPOP
included. kombu counts an error reply as a channel error, which stops a Celery
worker's consumer for good ("Unrecoverable error") unless `broker_channel_error_retry`
is set. Here: real redis-server and redis-sentinel (Debian's) on 127.0.0.1, the seed's
tasks queued, the master fenced, a real worker started on it, then the fence lifted;
every task must complete and the worker must still run. With the setting off the worker
exits on the first refusal and the tasks stay queued (the control case).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.live import LOCALHOST, free_port, make_password, wait_until
from tests.support.redis_servers import terminate

APP_DIR = Path(__file__).resolve().parents[1] / "verify" / "celery_app"
MASTER_NAME = "celery-fence"
FENCE_MARK = 1000


@dataclass
class Broker:
    port: int
    sentinel_port: int
    password: str
    config: Path

    def client(self) -> redis.Redis:
        return redis.Redis(host=LOCALHOST, port=self.port, password=self.password, socket_timeout=5)

    def fence(self, on: bool) -> None:
        self.client().config_set("min-replicas-to-write", FENCE_MARK if on else 0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    password, sentinel_password = make_password(), make_password()
    port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(f'port {port}\nbind {LOCALHOST}\nsave ""\nappendonly no\nrequirepass "{password}"\n')
    sentinel_conf = tmp_path / "sentinel.conf"
    sentinel_conf.write_text(
        f"port {sentinel_port}\nbind {LOCALHOST}\nrequirepass {sentinel_password}\n"
        f"sentinel monitor {MASTER_NAME} {LOCALHOST} {port} 1\n"
        f"sentinel auth-pass {MASTER_NAME} {password}\n"
    )
    for path in (conf, sentinel_conf):
        path.chmod(0o600)
    processes = [
        subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL),
        subprocess.Popen(["redis-sentinel", str(sentinel_conf)], stdout=subprocess.DEVNULL),
    ]
    config = tmp_path / "client.json"
    config.write_text(
        json.dumps(
            {
                "sentinels": [[LOCALHOST, sentinel_port]],
                "master_name": MASTER_NAME,
                "user": "default",
                "password": password,
                "sentinel_user": "default",
                "sentinel_password": sentinel_password,
                "run": f"fence-{make_password(8).lower()}",
            }
        )
    )
    config.chmod(0o600)
    broker = Broker(port, sentinel_port, password, config)
    sentinel = redis.Redis(host=LOCALHOST, port=sentinel_port, password=sentinel_password, socket_timeout=2)
    wait_until(lambda: sentinel.sentinel_get_master_addr_by_name(MASTER_NAME), 10, "the Sentinel to know the master")
    wait_until(lambda: broker.client().ping(), 10, "redis-server")
    try:
        yield broker
    finally:
        for process in processes:
            terminate(process)


def _app(broker: Broker, *args: str, stdin: dict | None = None, timeout: float = 120) -> dict:
    """The producer (`python -m producer <command>`), as the e2e runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=APP_DIR,
        env={**os.environ, "REDIS_HA_CLIENT_CONFIG": str(broker.config)},
        input=json.dumps(stdin or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _worker(broker: Broker, log: Path, channel_error_retry: bool) -> subprocess.Popen[bytes]:
    run = json.loads(broker.config.read_text())["run"]
    queues = ",".join(f"{q}.{run}" for q in ("high_priority", "medium_priority", "low_priority", "celery"))
    env = {**os.environ, "REDIS_HA_CLIENT_CONFIG": str(broker.config), "PYTHONPATH": str(APP_DIR)}
    module = "tasks"
    if not channel_error_retry:
        # The control case: the shipped app with that one setting turned off.
        (log.parent / "control.py").write_text("from tasks import app\n\napp.conf.broker_channel_error_retry = False\n")
        module = "control"
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", module, "worker", "-c", "1", "-Q", queues, "-l", "info"],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("channel_error_retry", [True, False], ids=["shipped", "without-channel-retry"])
def test_a_worker_started_on_a_fenced_master_runs_every_task_once_it_lifts(
    broker: Broker, tmp_path: Path, channel_error_retry: bool
) -> None:
    sent = _app(broker, "send", stdin={"count": 2})["sent"]
    broker.fence(True)
    log = tmp_path / "worker.log"
    worker = _worker(broker, log, channel_error_retry)
    try:
        wait_until(lambda: "NOREPLICAS" in log.read_text(errors="replace"), 60, "the worker to meet the fence")
        time.sleep(2)
        broker.fence(False)
        # The control case's tasks never run: 5 s tells that apart.
        wait_s = 30 if channel_error_retry else 5
        outcome = _app(broker, "collect", stdin={"ids": [s["id"] for s in sent], "timeout": wait_s})
        alive = worker.poll() is None
    finally:
        terminate(worker)
    text = log.read_text(errors="replace")
    if channel_error_retry:
        assert alive, text[-3000:]
        assert not outcome["pending"] and not outcome["errors"], (outcome, text[-3000:])
        assert len(outcome["results"]) == len(sent)
    else:
        # Without the setting the consumer dies at the first refusal: what the shipped
        # setting is for.
        assert not alive and "Unrecoverable error" in text, text[-3000:]
        assert outcome["pending"], outcome
