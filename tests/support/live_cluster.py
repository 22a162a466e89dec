"""A local Redis Cluster for the unit tests: redis-server processes in cluster mode on
127.0.0.1, each with its own directory and bus port, started from the files
components/rendering.py renders (tests/unit/test_cluster_live.py,
tests/unit/test_backup_cluster.py)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from pathlib import Path

import redis
from redis.cluster import ClusterNode as PyClusterNode
from redis.cluster import RedisCluster
from redis_ha.components import plan, rendering
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import ClusterNode, ClusterTopology, build_cluster_topology

from tests.support.live import (
    LOCALHOST,
    LiveNode,
    connect,
    local_layout,
)
from tests.support.node_scripts import install

CONFIG = {
    "backend": "docker",
    "topology": "cluster",
    "redisVersion": "7.0",
    "maxmemory": "64mb",
    "clusterNodeTimeout": 2000,
    "publishPorts": False,
}


def _free_cluster_port(taken: set[int]) -> int:
    """A port p such that p and its bus port p + 10000 are free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((LOCALHOST, 0))
            port = probe.getsockname()[1] % 20000 + 20000
        if {port, port + 10000} & taken:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind((LOCALHOST, p))
        except OSError:
            continue
        taken.update((port, port + 10000))
        return port
    raise RuntimeError("no free port pair")


def live_topology(settings: Settings, ports: list[int]) -> ClusterTopology:
    """The deployed topology with every node on 127.0.0.1 and a port of its own."""
    template = build_cluster_topology(settings, naming_for(settings))
    nodes = {
        m.node.name: dataclasses.replace(m.node, hostname=LOCALHOST, port=ports[i])
        for i, m in enumerate(template.members)
    }
    members = tuple(
        ClusterNode(nodes[m.node.name], m.shard, nodes[m.master.name] if m.master else None) for m in template.members
    )
    return dataclasses.replace(template, members=members)


class LiveCluster:
    def __init__(self, base: Path, passwords: dict[str, str], max_shards: int = 4) -> None:
        self.base = base
        self.passwords = passwords
        self.settings = load_settings(CONFIG)
        taken: set[int] = set()
        self.ports = [_free_cluster_port(taken) for _ in range(max_shards * 2)]
        self.password_file = base / "admin.password"
        self.password_file.write_text(passwords["admin"] + "\n")
        self.live: dict[str, LiveNode] = {}

    def topology(self, shards: int) -> ClusterTopology:
        return live_topology(dataclasses.replace(self.settings, cluster_shards=shards), self.ports)

    def start(self, shards: int) -> None:
        """Render and start every node of `shards` shards that is not running yet."""
        cluster = self.topology(shards)
        for node in cluster.nodes:
            if node.name in self.live:
                continue
            directory = self.base / node.name
            directory.mkdir()
            paths = rendering.Paths(conf_dir=str(directory), data_dir=str(directory))
            settings = dataclasses.replace(self.settings, port=node.port)
            group = plan.cluster_part(settings, local_layout(paths), cluster).groups[0]
            for name, content in group.files(node, self.passwords).items():
                (directory / name).write_text(content)
            live = LiveNode(node=node, settings=settings, directory=directory, conf=directory / "redis.conf")
            live.start()
            live.wait_ready("admin", self.passwords["admin"])
            self.live[node.name] = live

    def run_script(self, shards: int) -> subprocess.CompletedProcess[str]:
        env = rendering.cluster_create_env(self.settings, self.topology(shards), str(self.password_file))
        script = install(self.base / f"cluster-create-{shards}", "cluster-create.sh", env)
        return subprocess.run(
            ["sh", str(script)],
            capture_output=True,
            text=True,
            timeout=180,
            env={"PATH": "/usr/bin:/bin", "REDIS_HA_WAIT_SECONDS": "90"},
        )

    def client(self, node: str, user: str = "admin") -> redis.Redis:
        return connect(self.live[node].port, user, self.passwords[user])

    def cluster_client(self, user: str = "admin") -> RedisCluster:
        return RedisCluster(
            startup_nodes=[PyClusterNode(LOCALHOST, live.port) for live in self.live.values()],
            username=user,
            password=self.passwords[user],
            decode_responses=True,
            socket_timeout=3,
        )

    def stop(self) -> None:
        for live in self.live.values():
            live.stop()
