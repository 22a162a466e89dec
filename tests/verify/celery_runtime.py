"""Where the Celery worker and producer of the application-role tests run.

Sentinel announces node hostnames, which resolve only inside the deployment's network,
so like real applications the worker and the producer (tests/verify/celery_app) run
there:

- docker:// deployments: containers of the image redis-ha-test/python-client
  (tests/images/build.sh) attached to the deployment's network, as `nobody`. The app
  module and a 0600 connection file go in with `docker cp` before start; the containers
  are always removed.
- kubectl:// deployments: subprocesses of the runner, only when REDIS_HA_CLIENT_DIRECT=1
  says the runner resolves the service names (e.g. it runs in the cluster); skipped
  otherwise. REDIS_HA_CLIENT_DIRECT=1 chooses subprocesses for docker:// too (a runner
  inside the deployment's network).

Passwords are only in the connection file, never on a command line, in an environment
or in what the tests print (logs are redacted).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from . import faults
from .access import Node, Outputs, Redactor

APP_DIR = Path(__file__).resolve().parent / "celery_app"
CLIENT_IMAGE = os.environ.get("REDIS_HA_CLIENT_IMAGE", "redis-ha-test/python-client:3.11")
CONFIG_ENV = "REDIS_HA_CLIENT_CONFIG"
CONTAINER_CONFIG = "/run/redis-ha-client/config.json"
NOBODY = 65534
# Every queue of the seed's routes plus Celery's default queue.
QUEUES = ("high_priority", "medium_priority", "low_priority", "celery")

# The seed's CELERY_TASK_ROUTES; a task without a route goes to Celery's default queue.
SEED_ROUTES = {
    "tasks.extract_signals": "high_priority",
    "tasks.analyze_filing": "medium_priority",
    "tasks.update_index": "low_priority",
    "tasks.record": "celery",
}


def broker_role(outputs: Outputs) -> str:
    """The role the Celery app connects as: `celery`, or else the first broker role."""
    roles = outputs.deployment["roles"]
    names = [r["name"] for r in roles if r["name"] == "celery"] or [r["name"] for r in roles if r.get("broker")]
    if not names:
        pytest.skip("the deployment has no broker role for Celery (roles: broker true)")
    return names[0]


def client_config(outputs: Outputs, run: str) -> dict[str, Any]:
    """What tasks.py reads: the Sentinels by their announced names, both users, and the
    run's name (in its queue names and task ids)."""
    user = broker_role(outputs)
    return {
        "run": run,
        "sentinels": [[n["host"], int(n["port"])] for n in outputs.nodes("sentinel")],
        "master_name": outputs.deployment["masterName"],
        "user": user,
        "password": outputs.passwords[user],
        "sentinel_user": outputs.deployment["users"]["sentinelClient"],
        "sentinel_password": outputs.passwords[outputs.deployment["users"]["sentinelClient"]],
    }


class ClientFailed(AssertionError):
    """A worker or producer did not do what it was asked; the message has its log."""


class CeleryRuntime:
    """Runs the worker and the producer; subclasses say where."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.run = f"redis-ha-verify-{uuid.uuid4().hex[:8]}"
        self.config = client_config(outputs, self.run)
        self.redactor = Redactor(outputs.passwords.values())

    def queue(self, seed_queue: str) -> str:
        """This run's name for a seed queue (tasks.queue_name)."""
        return f"{seed_queue}.{self.run}"

    def worker_name(self) -> str:
        # A fixed nodename (no %h): the tests address the worker by it.
        return f"{self.run}@worker"

    def worker_argv(self) -> list[str]:
        # -c 1 without prefetch (tasks.py): one task at a time, the rest stays in Redis.
        worker = ["-m", "celery", "-A", "tasks", "worker", "-n", self.worker_name(), "-l", "INFO"]
        return [*worker, "-Q", ",".join(self.queue(q) for q in QUEUES), "-c", "1"]

    def gate(self) -> str:
        return f"{self.run}-gate-{uuid.uuid4().hex}"

    def cleanup(self) -> dict[str, Any]:
        """Remove what the run left in Redis (its queues, bindings and results): as
        admin, since finding them takes SCAN, which the broker role may not run."""
        admin = self.outputs.deployment["users"]["admin"]
        return self.produce("cleanup", {"user": admin, "password": self.outputs.passwords[admin]})

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        raise NotImplementedError

    def produce(self, command: str, request: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _result(self, what: str, rc: int, stdout: str, stderr: str) -> dict[str, Any]:
        lines = stdout.strip().splitlines()
        if rc != 0 or not lines:
            errors = [line for line in stderr.splitlines() if "Error" in line and not line.startswith(" ")]
            last = errors[-1] if errors else "no error printed"
            raise ClientFailed(self.redactor.redact(f"producer {what} failed (rc {rc}): {last}\n{stderr[-3000:]}"))
        return json.loads(lines[-1])


class Worker:
    def __init__(self, name: str, logs: Any) -> None:
        self.name = name
        self._logs = logs

    def logs(self) -> str:
        return self._logs()

    def wait_ready(self, alive: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"{self.name} ready." in self.logs():
                return
            if not alive():
                raise ClientFailed(self.failure("the Celery worker exited"))
            time.sleep(0.5)
        raise ClientFailed(self.failure(f"the Celery worker was not ready within {timeout:.0f}s"))

    def failure(self, what: str) -> str:
        """`what`, the log's last error on the same line (the one-line summary), the log."""
        logs = self.logs()
        errors = [line for line in logs.splitlines() if "Error" in line and not line.startswith(" ")]
        return f"{what}: {errors[-1] if errors else 'no error logged'}\n{logs[-3000:]}"


def _docker(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout)


class ContainerRuntime(CeleryRuntime):
    """Containers on the deployment's Docker network."""

    def __init__(self, outputs: Outputs, network: str, extra_hosts: list[str] | None = None) -> None:
        """`extra_hosts`: the nodes' `/etc/hosts` entries (`host:ip`), given to the
        workers as an application container should get them (docs/applications.md)."""
        super().__init__(outputs)
        self.network = network
        self.extra_hosts = extra_hosts or []
        self.containers: list[str] = []
        found = _docker("image", "inspect", "--format", "{{.Id}}", CLIENT_IMAGE)
        if found.returncode != 0:
            pytest.skip(f"the client image {CLIENT_IMAGE} is missing: build it with tests/images/build.sh")

    def _archive(self) -> bytes:
        """The app module (world-readable) and the connection file (0600, nobody's)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path in sorted(APP_DIR.glob("*.py")):
                data = path.read_bytes()
                info = tarfile.TarInfo(f"app/{path.name}")
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
            directory = tarfile.TarInfo(str(Path(CONTAINER_CONFIG).parent).lstrip("/"))
            directory.type, directory.mode, directory.uid, directory.gid = tarfile.DIRTYPE, 0o700, NOBODY, NOBODY
            archive.addfile(directory)
            data = json.dumps(self.config).encode()
            info = tarfile.TarInfo(CONTAINER_CONFIG.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, NOBODY, NOBODY
            archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def _create(self, role: str, argv: list[str], interactive: bool = False) -> str:
        name = f"{self.outputs.deployment['name']}-celery-{role}-{uuid.uuid4().hex[:8]}"
        args = ["create", "--name", name, "--network", self.network, "--user", "nobody"]
        args += [x for entry in self.extra_hosts for x in ("--add-host", entry)]
        args += ["--label", "redis-ha.verify=celery", "--env", f"{CONFIG_ENV}={CONTAINER_CONFIG}"]
        created = _docker(*args, *(["--interactive"] if interactive else []), CLIENT_IMAGE, "python3", *argv)
        if created.returncode != 0:
            raise ClientFailed(f"docker create failed: {created.stderr.decode().strip()}")
        self.containers.append(name)
        # -a: keep the archive's owners, so `nobody` can read its 0600 connection file.
        copied = _docker("cp", "--archive", "-", f"{name}:/", stdin=self._archive())
        if copied.returncode != 0:
            raise ClientFailed(f"docker cp into {name} failed: {copied.stderr.decode().strip()}")
        return name

    def _remove(self, name: str) -> None:
        _docker("rm", "--force", name, timeout=60)
        if name in self.containers:
            self.containers.remove(name)

    def _logs(self, name: str) -> str:
        result = _docker("logs", "--tail", "400", name, timeout=60)
        return self.redactor.redact((result.stdout + result.stderr).decode(errors="replace"))

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        name = self._create("worker", self.worker_argv())
        try:
            started = _docker("start", name)
            if started.returncode != 0:
                raise ClientFailed(f"docker start {name} failed: {started.stderr.decode().strip()}")
            worker = Worker(self.worker_name(), lambda: self._logs(name))

            def alive() -> bool:
                return _docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == b"true"

            worker.wait_ready(alive)
            yield worker
        finally:
            self._remove(name)

    def produce(self, command: str, request: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        name = self._create("producer", ["-m", "producer", command], interactive=True)
        try:
            stdin = json.dumps(request).encode()
            ran = _docker("start", "--attach", "--interactive", name, stdin=stdin, timeout=timeout)
            return self._result(command, ran.returncode, ran.stdout.decode(), ran.stderr.decode())
        finally:
            self._remove(name)

    def close(self) -> None:
        for name in list(self.containers):
            self._remove(name)


class DirectRuntime(CeleryRuntime):
    """Subprocesses of the runner (which must resolve the announced names)."""

    def __init__(self, outputs: Outputs) -> None:
        super().__init__(outputs)
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-ha-celery-"))
        config = self.workdir / "config.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.config, f)
        self.env = {**os.environ, CONFIG_ENV: str(config), "PYTHONPATH": str(APP_DIR)}

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        log = self.workdir / "worker.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, *self.worker_argv()],
                cwd=APP_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            worker = Worker(self.worker_name(), lambda: self.redactor.redact(log.read_text(errors="replace")))
            worker.wait_ready(lambda: process.poll() is None)
            yield worker
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def produce(self, command: str, request: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        ran = subprocess.run(
            [sys.executable, "-m", "producer", command],
            cwd=APP_DIR,
            env=self.env,
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return self._result(command, ran.returncode, ran.stdout, ran.stderr)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def assert_all_done(
    runtime: CeleryRuntime, sent: list[dict[str, Any]], outcome: dict[str, Any], worker: Worker
) -> None:
    """Every task sent has a successful result, run by our worker from its route's queue."""
    missing = [s["id"] for s in sent if s["id"] not in outcome["results"]]
    assert not outcome["errors"], f"tasks failed: {outcome['errors']}"
    assert not missing, f"{len(missing)} of {len(sent)} tasks have no result: {missing[:5]}\n{worker.logs()[-2000:]}"
    for s in sent:
        if s["task"] not in SEED_ROUTES:
            continue
        result = outcome["results"][s["id"]]
        expected = runtime.queue(SEED_ROUTES[s["task"]])
        assert result["queue"] == expected, f"{s['task']} ran from {result['queue']}, not {expected}"
        assert result["worker"] == worker.name and result["filing_id"] == s["filing_id"], result


def celery_runtime(outputs: Outputs) -> CeleryRuntime:
    """The runtime for this deployment, or a skip saying why there is none."""
    if os.environ.get("REDIS_HA_CLIENT_DIRECT") == "1":
        return DirectRuntime(outputs)
    spec = outputs.nodes("redis")[0]
    scheme = urlparse(spec["testinfraHost"]).scheme
    if scheme == "docker":
        node = Node(spec, outputs)
        network = next(iter(faults.networks(node)), None)
        assert network, f"{spec['name']} is on no Docker network"
        return ContainerRuntime(outputs, network, faults.extra_hosts(node))
    pytest.skip(
        f"{scheme}:// deployment: the Celery worker must run where the announced hostnames resolve; "
        "set REDIS_HA_CLIENT_DIRECT=1 on a runner that resolves them (e.g. in the cluster)"
    )
