"""Real Redis/Sentinel processes for the unit tests: passwords, ports, clients and a
live deployment started from the files components/rendering.py renders.

The processes are Debian's redis-server/redis-sentinel (7.0), on free ports of
127.0.0.1, each node in a directory of its own (Redis and Sentinel rewrite their config
files there); tests/unit/conftest.py's fixtures start and stop them.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import string
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_ha.components import plan, rendering, security
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import Node, SentinelTopology, build_sentinel_topology

from tests.support.redis_servers import terminate
from tests.verify import acl_sweep
from tests.verify.access import Node as VerifyNode
from tests.verify.access import Outputs as VerifyOutputs

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 10.0
# Non-default values where they are harmless, so that the live assertions prove the
# settings reached the running server rather than matching Redis' own defaults.
LIVE_CONFIG = {
    "backend": "docker",
    "redisVersion": "7.0",
    "replicas": 1,
    "maxmemory": "256mb",
    "appendfsync": "everysec",
    "save": ["900 1", "300 10"],
    "minReplicasMaxLag": "15",
}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (redis.RedisError, OSError) as error:
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def make_password(length: int = 32) -> str:
    # Letters and digits only, like the generated passwords (components/credentials.py).
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def connect(port: int, user: str | None = None, password: str | None = None, **kwargs: Any) -> redis.Redis:
    """A RESP2 client (every redis-py from 5 to 8 speaks it the same way) that does not
    retry: a refused login or a dead node shows at once instead of after backoffs."""
    options: dict[str, Any] = {
        "socket_timeout": 3,
        "socket_connect_timeout": 3,
        "retry": Retry(NoBackoff(), 0),
        **kwargs,
    }
    return redis.Redis(
        host=LOCALHOST, port=port, username=user, password=password, protocol=2, decode_responses=True, **options
    )


def raw_command(port: int, *args: str) -> bytes:
    """Send one command without any client library (and without authenticating)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection((LOCALHOST, port), timeout=3) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


@dataclasses.dataclass
class LiveNode:
    """A rendered node and the process running it."""

    node: Node
    settings: Settings  # the settings it was rendered with (its own ports)
    directory: Path
    conf: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.node.port

    @property
    def paths(self) -> rendering.Paths:
        return rendering.Paths(conf_dir=str(self.directory), data_dir=str(self.directory))

    @property
    def log(self) -> Path:
        return self.directory / "process.log"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        executable = "redis-sentinel" if self.node.kind == "sentinel" else "redis-server"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [f"/usr/bin/{executable}", str(self.conf)],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)

    def wait_ready(self, user: str, password: str) -> None:
        """Until the process answers PING as `user`; fail with its log if it died."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.node.name} exited with {self.process.returncode} on start:\n{self.log_tail()}"
                )
            try:
                if connect(self.port, user, password, socket_timeout=1).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                time.sleep(0.05)
        raise AssertionError(f"{self.node.name} did not answer within {START_TIMEOUT}s:\n{self.log_tail()}")


def local_layout(paths: rendering.Paths) -> plan.Layout:
    """Every file of a node in one local directory, as the live tests run them."""
    return plan.Layout(redis=paths, sentinel=paths, scripts_dir=paths.conf_dir, job_secrets_dir=paths.conf_dir)


def node_files(
    settings: Settings, topology: SentinelTopology, node: Node, passwords: dict[str, str], paths: rendering.Paths
) -> dict[str, str]:
    """A Sentinel-group node's secret files exactly as the plan renders them for both
    backends, with local `paths`."""
    return plan.sentinel_part(settings, local_layout(paths), topology).group_of(node).files(node, passwords)


class LiveDeployment:
    """A master, a replica and one Sentinel (or `sentinels` of them) rendered from one
    Settings, on 127.0.0.1."""

    def __init__(
        self, base: Path, passwords: dict[str, str], config: dict[str, Any] | None = None, sentinels: int = 1
    ) -> None:
        self.passwords = passwords
        self.settings = load_settings(config or LIVE_CONFIG)
        template = build_sentinel_topology(self.settings, naming_for(self.settings))
        master = dataclasses.replace(template.master, hostname=LOCALHOST, port=free_port())
        replica = dataclasses.replace(template.replicas[0], hostname=LOCALHOST, port=free_port())
        sentinel_nodes = tuple(
            dataclasses.replace(node, hostname=LOCALHOST, port=free_port()) for node in template.sentinels[:sentinels]
        )
        self.topology: SentinelTopology = dataclasses.replace(
            template, redis_nodes=(master, replica), sentinels=sentinel_nodes
        )
        self.base = base
        self.master = self._render(master, dataclasses.replace(self.settings, port=master.port))
        self.replica = self._render(replica, dataclasses.replace(self.settings, port=replica.port))
        self.sentinels = tuple(
            self._render(node, dataclasses.replace(self.settings, sentinel_port=node.port)) for node in sentinel_nodes
        )
        self.sentinel = self.sentinels[0]

    def _render(self, node: Node, settings: Settings) -> LiveNode:
        directory = self.base / node.name
        directory.mkdir(parents=True)
        paths = rendering.Paths(conf_dir=str(directory), data_dir=str(directory))
        files = node_files(settings, self.topology, node, self.passwords, paths)
        for name, content in files.items():
            (directory / name).write_text(content)
        conf = directory / ("sentinel.conf" if node.kind == "sentinel" else "redis.conf")
        return LiveNode(node=node, settings=settings, directory=directory, conf=conf)

    @property
    def nodes(self) -> tuple[LiveNode, ...]:
        return (self.master, self.replica, *self.sentinels)

    def client(self, live: LiveNode, user: str = "admin", **kwargs: Any) -> redis.Redis:
        return connect(live.port, user, self.passwords[user], **kwargs)

    def start_node(self, live: LiveNode) -> None:
        live.start()
        live.wait_ready("admin", self.passwords["admin"])

    def start(self, *, replica: bool = True, sentinel: bool = True) -> LiveDeployment:
        self.start_node(self.master)
        if replica:
            self.start_node(self.replica)
            wait_until(
                lambda: self.client(self.replica).info("replication").get("master_link_status") == "up",
                START_TIMEOUT,
                f"the replica's link to the master\n{self.replica.log_tail()}",
            )
        if sentinel:
            for live in self.sentinels:
                self.start_node(live)
        return self

    def stop(self) -> None:
        # Sentinel first, so that it does not react to the data nodes going away.
        for live in reversed(self.nodes):
            live.stop()


# --- command tables and the verification suite's access, without Docker --------------


def local_node(live: LiveNode, passwords: dict[str, str]) -> VerifyNode:
    """The verification suite's view of a live node: its redis-cli runs through
    testinfra's local backend (`local://`) instead of `docker://`/`kubectl://`, the
    same code path otherwise."""
    spec = {
        "name": live.node.name,
        "kind": live.node.kind,
        "host": LOCALHOST,
        "port": live.port,
        "testinfraHost": "local://",
    }
    return VerifyNode(spec, VerifyOutputs(deployment={}, passwords=passwords))


def sweep_server(live: LiveNode, passwords: dict[str, str]) -> acl_sweep.Server:
    """acl_sweep's Server for a live node, reached as admin like the verification suite does."""
    node = local_node(live, passwords)
    return acl_sweep.Server(node.name, lambda script: node.cli_script("admin", script, "--json"))


def bare_command_table(directory: Path, executable: str) -> dict[str, acl_sweep.ServerCommand]:
    """The command table of a Redis or Sentinel process with no configuration of ours."""
    port = free_port()
    conf = directory / f"{executable}.conf"
    conf.write_text(f'port {port}\nbind {LOCALHOST}\nsave ""\nappendonly no\ndir {directory}\n')
    with (directory / f"{executable}.log").open("ab") as log:
        process = subprocess.Popen(
            [f"/usr/bin/{executable}", str(conf)], cwd=directory, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: connect(port).ping(), START_TIMEOUT, f"a bare {executable}")

        def run(script: str) -> str:
            command = ["redis-cli", "--json", "-h", LOCALHOST, "-p", str(port)]
            return subprocess.run(command, input=script, capture_output=True, text=True, timeout=30).stdout

        return acl_sweep.Server(executable, run).table
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- redis_exporter ---------------------------------------------------------------------

EXPORTER_BINARY = "/usr/bin/prometheus-redis-exporter"


def _http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def scrape_exporter(
    deployment: LiveDeployment, targets: tuple[LiveNode, ...], user: str = "exporter"
) -> dict[str, str]:
    """Debian's redis_exporter, configured as the backends configure it (user
    `exporter`, or `sentinel-exporter` in front of Sentinels; security.EXPORTER_ENVIRONMENT),
    in front of the first target: its /metrics, and /scrape?target= for the others.
    Returns the exposition by node name."""
    port = free_port()
    environment = {
        **os.environ,
        **security.EXPORTER_ENVIRONMENT,
        "REDIS_ADDR": f"redis://{LOCALHOST}:{targets[0].port}",
        "REDIS_USER": user,
        # The environment, not the command line: `ps` would show an argument.
        "REDIS_PASSWORD": deployment.passwords[user],
        "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": f"{LOCALHOST}:{port}",
    }
    process = subprocess.Popen(
        [EXPORTER_BINARY],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                first = _http_get(f"http://{LOCALHOST}:{port}/metrics")
                break
            except OSError:
                assert process.poll() is None, f"{EXPORTER_BINARY} exited with {process.returncode}"
                assert time.monotonic() < deadline, "the exporter did not answer within 15 s"
                time.sleep(0.1)
        scraped = {targets[0].node.name: first}
        for live in targets[1:]:
            scraped[live.node.name] = _http_get(
                f"http://{LOCALHOST}:{port}/scrape?target=redis://{LOCALHOST}:{live.port}"
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return scraped
