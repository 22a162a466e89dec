"""Bare redis-server processes for the backup engine's tests: no ACL file, no
rendering, only the config lines a test gives. On 127.0.0.1, each in a directory of
its own; `stop` ends the process it started, by its id."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """End a process this test run started (by its id): SIGTERM, SIGKILL after `grace` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class BareRedis:
    def __init__(self, directory: Path, *lines: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = directory / "redis.conf"
        conf.write_text(
            "\n".join(
                [f"port {self.port}", f"bind {LOCALHOST}", 'save ""', "appendonly no", f"dir {directory}", *lines]
            )
            + "\n"
        )
        log = (directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["/usr/bin/redis-server", str(conf)], cwd=directory, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    break
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"redis-server on {self.port} did not start: {(directory / 'redis.log').read_text()}"
                )
            time.sleep(0.05)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=LOCALHOST, port=self.port, db=db, protocol=2, socket_timeout=10)

    def stop(self) -> None:
        terminate(self.process)
