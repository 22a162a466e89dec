"""What the start-script tests (tests/unit/test_role_script.py,
test_sentinel_start.py) share: the prod settings they render with, and the real Redis
and Sentinel processes they start (their fixtures are in tests/unit/conftest.py)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import redis
from redis_ha.components import rendering
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import Node, SentinelTopology, build_sentinel_topology

from tests.support.live import LiveNode, connect, free_port, node_files, wait_until
from tests.support.program import stack_config

LOCALHOST = "127.0.0.1"
K8S_PATHS = K8S_LAYOUT.redis
SHELLS = {"dash": ["dash"], "busybox-ash": ["busybox", "sh"]}
SCRIPT_TIMEOUT = 30
TLS_FILES = ("ca.crt", "tls.crt", "tls.key")


def prod_settings() -> Settings:
    # Debian ships 7.0 here: 7.2-only directives would stop the real processes.
    # The self-fence on (opt-in: docs/partitions.md): the start script runs it beside redis-server.
    return dataclasses.replace(
        load_settings({**stack_config("prod"), "fence": "true"}), redis_version="7.0", maxmemory=64 * 1024**2
    )


class Processes:
    """Renders nodes into directories of their own and starts them; stops them all."""

    def __init__(self, base: Path, settings: Settings, passwords: dict[str, str], tls_dir: Path | None = None) -> None:
        self.base = base
        self.settings = settings
        self.passwords = passwords
        # With TLS every node finds ca.crt, tls.crt and tls.key next to its config,
        # where the pods' init containers put them.
        self.tls_dir = tls_dir
        assert settings.tls == (tls_dir is not None)
        self.nodes: list[LiveNode] = []
        self.template = build_sentinel_topology(settings, naming_for(settings))
        self.secrets = base / "secrets"
        self.secrets.mkdir()
        for user, file_name in (
            ("sentinel-client", rendering.SENTINEL_CLIENT_PASSWORD_FILE),
            ("admin", rendering.ADMIN_PASSWORD_FILE),
        ):
            (self.secrets / file_name).write_text(passwords[user] + "\n")

    def topology(self, master_port: int, *replica_ports: int) -> SentinelTopology:
        """A topology whose master listens on `master_port` of 127.0.0.1."""
        redis_nodes = tuple(
            dataclasses.replace(node, hostname=LOCALHOST, port=port)
            for node, port in zip(self.template.redis_nodes, (master_port, *replica_ports), strict=False)
        )
        return dataclasses.replace(self.template, redis_nodes=redis_nodes)

    def _write(self, name: str, node: Node, settings: Settings, topology: SentinelTopology) -> LiveNode:
        directory = self.base / name
        directory.mkdir()
        paths = rendering.Paths(conf_dir=str(directory), data_dir=str(directory))
        files = node_files(settings, topology, node, self.passwords, paths)
        for file_name, content in files.items():
            if file_name.endswith(".conf"):
                # Test traffic stays on 127.0.0.1.
                assert content.count("\nbind * -::*\n") == 1
                content = content.replace("\nbind * -::*\n", f"\nbind {LOCALHOST}\n")
            (directory / file_name).write_text(content)
        if self.tls_dir is not None:
            for file_name in TLS_FILES:
                shutil.copy(self.tls_dir / file_name, directory / file_name)
        conf = directory / ("sentinel.conf" if node.kind == "sentinel" else "redis.conf")
        live = LiveNode(node=node, settings=settings, directory=directory, conf=conf)
        self.nodes.append(live)
        return live

    def redis(self, name: str, topology: SentinelTopology, index: int) -> LiveNode:
        """Render redis node `index` of `topology` (0 is its deploy-time master)."""
        node = topology.redis_nodes[index]
        return self._write(name, node, dataclasses.replace(self.settings, port=node.port), topology)

    def sentinel(self, name: str, topology: SentinelTopology, quorum: int | None = None) -> LiveNode:
        """Render a Sentinel that monitors the master of `topology` (with `quorum`, else
        the stack's)."""
        node = dataclasses.replace(self.template.sentinels[0], hostname=LOCALHOST, port=free_port())
        settings = dataclasses.replace(self.settings, sentinel_port=node.port, quorum=quorum or self.settings.quorum)
        return self._write(name, node, settings, topology)

    def start(self, live: LiveNode) -> LiveNode:
        live.start()
        self.wait_ready(live)
        return live

    def wait_ready(self, live: LiveNode) -> None:
        """Until the node answers PING as admin; fail with its log if it died."""

        def answers() -> bool:
            assert live.process is not None
            if live.process.poll() is not None:
                raise AssertionError(f"{live.node.name} exited with {live.process.returncode}:\n{live.log_tail()}")
            return self.client(live.port).ping()

        wait_until(answers, 10, f"{live.node.name} to answer\n{live.log_tail()}")

    def client(self, port: int, user: str = "admin") -> redis.Redis:
        tls = {"ssl": True, "ssl_ca_certs": str(self.tls_dir / "ca.crt")} if self.tls_dir is not None else {}
        return connect(port, user, self.passwords[user], **tls)

    def stop_all(self) -> None:
        for live in reversed(self.nodes):
            live.stop()


@dataclasses.dataclass(frozen=True)
class World:
    """Two independent masters, B and C; Sentinels S1 and S2 say the master is B, S3
    (as a Sentinel restarted with stale config would) says C; nothing listens on `dead`."""

    procs: Processes
    b: LiveNode
    c: LiveNode
    s1: LiveNode
    s2: LiveNode
    s3: LiveNode
    dead: int


# --- running the start script (tests/unit/test_role_script.py, test_handover_retry.py) ---


def script_env(
    procs: Processes, *, port: int, sentinels: list[int], deploy_master: int, conf: Path | None = None, **extra: str
) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "REDIS_HA_PORT": str(port),
        "REDIS_HA_HOSTNAME": LOCALHOST,
        "REDIS_HA_SENTINELS": " ".join(f"{LOCALHOST}:{p}" for p in sentinels),
        "REDIS_HA_DEPLOY_MASTER": f"{LOCALHOST}:{deploy_master}",
        "REDIS_HA_SENTINEL_PASSWORD_FILE": str(procs.secrets / rendering.SENTINEL_CLIENT_PASSWORD_FILE),
        "REDIS_HA_ADMIN_PASSWORD_FILE": str(procs.secrets / rendering.ADMIN_PASSWORD_FILE),
        "REDIS_HA_CLI_TIMEOUT": "2",
    }
    if conf is not None:
        env["REDIS_HA_CONF"] = str(conf)
    return {**env, **extra}


def sentinel_master(procs: Processes, sentinel: LiveNode) -> tuple[str, int]:
    host, port = procs.client(sentinel.port, "sentinel-client").execute_command(
        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", procs.settings.master_name
    )
    return host, int(port)


def prestop(shell: list[str], script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*shell, str(script), "prestop"], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT + 30
    )
    assert result.returncode == 0, result.stderr
    return result
