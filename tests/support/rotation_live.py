"""The machinery of the live password rotation test (tests/unit/test_rotation_live.py):
nodes run by the real start scripts, the delivery of their rendered files (one
`pulumi up`), the sampler of the replica's link and the Sentinels' view, and the
ACL as the servers hold it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from redis_ha.components import rendering, security
from redis_ha.components.docker.layout import LAYOUT as DOCKER_LAYOUT
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import Node, SentinelTopology, build_sentinel_topology

from tests.support.live import LiveNode, connect, free_port, make_password, node_files, wait_until
from tests.support.node_scripts import install
from tests.support.program import stack_config

LOCALHOST = "127.0.0.1"
SHELLS = {"dash": ["dash"], "busybox-ash": ["busybox", "sh"]}
APPLY_TIMEOUT = 60.0


# Sentinel counts a master as down after this long without a valid reply: short, so
# that a Sentinel logging in with a password its master does not accept yet shows.
DOWN_AFTER_MS = 2000


# Events that mean a Sentinel lost a node, or the group its master.
BAD_EVENTS = (
    "+sdown",
    "+odown",
    "+switch-master",
    "+failover-state-select-slave",
    "+try-failover",
    "-slave-restart-as-master",
)


def rotation_settings() -> Settings:
    return dataclasses.replace(
        load_settings(stack_config("dev")),
        redis_version="7.0",
        maxmemory=64 * 1024**2,
        replicas=1,
        min_replicas_to_write=0,
        down_after_milliseconds=DOWN_AFTER_MS,
        failover_timeout=6000,
    )


def user_passwords(settings: Settings) -> dict[str, str]:
    return {user: make_password() for user in security.user_names(settings)}


def with_previous(new: dict[str, str], old: dict[str, str]) -> dict[str, str]:
    """Phase 1: the new passwords, each user's old one as its previous."""
    return {**new, **{security.previous_of(user): password for user, password in old.items()}}


@dataclasses.dataclass
class RotNode:
    live: LiveNode
    secrets: Path
    settings: Settings

    @property
    def name(self) -> str:
        return self.live.node.name

    @property
    def port(self) -> int:
        return self.live.port

    @property
    def applied(self) -> Path:
        return self.live.directory / "applied"


class Rotation:
    """Renders, delivers and runs the nodes; `deliver(passwords)` is one `pulumi up`."""

    def __init__(
        self, base: Path, settings: Settings, passwords: dict[str, str], shell: list[str], backend: str = "docker"
    ) -> None:
        self.base, self.settings, self.passwords, self.shell = base, settings, passwords, shell
        # Kubernetes delivers a node's own file as `<pod>.<file>` (one Secret per group).
        self.layout = K8S_LAYOUT if backend == "kubernetes" else DOCKER_LAYOUT
        template = build_sentinel_topology(settings, naming_for(settings))
        redis_nodes = tuple(
            dataclasses.replace(n, hostname=LOCALHOST, port=free_port()) for n in template.redis_nodes[:2]
        )
        sentinels = tuple(dataclasses.replace(n, hostname=LOCALHOST, port=free_port()) for n in template.sentinels)
        self.topology: SentinelTopology = dataclasses.replace(template, redis_nodes=redis_nodes, sentinels=sentinels)
        self.scripts = base / "scripts"
        self.scripts.mkdir()
        # Each start script with the node.env of its group beside it.
        install(
            self.scripts / "redis", "redis-start.sh", rendering.start_env(settings, self.topology, self.layout.redis)
        )
        install(
            self.scripts / "sentinel",
            "sentinel-start.sh",
            rendering.sentinel_start_env(settings, self.topology, self.layout.sentinel),
        )
        self.redis = [self._node(n, dataclasses.replace(settings, port=n.port)) for n in redis_nodes]
        self.sentinels = [self._node(n, dataclasses.replace(settings, sentinel_port=n.port)) for n in sentinels]
        self.versions: dict[str, str] = {}

    @property
    def master(self) -> RotNode:
        return self.redis[0]

    @property
    def replica(self) -> RotNode:
        return self.redis[1]

    @property
    def nodes(self) -> list[RotNode]:
        return [*self.redis, *self.sentinels]

    def _node(self, node: Node, settings: Settings) -> RotNode:
        directory = self.base / node.name
        secrets = directory / "secrets"
        secrets.mkdir(parents=True)
        conf = directory / ("sentinel.conf" if node.kind == "sentinel" else "redis.conf")
        return RotNode(LiveNode(node=node, settings=settings, directory=directory, conf=conf), secrets, settings)

    def files(self, rot: RotNode, passwords: dict[str, str]) -> dict[str, str]:
        paths = rendering.Paths(conf_dir=str(rot.live.directory), data_dir=str(rot.live.directory))
        files = node_files(rot.settings, self.topology, rot.live.node, passwords, paths)
        for name, content in files.items():
            if name.endswith(".conf"):
                assert content.count("\nbind * -::*\n") == 1
                files[name] = content.replace("\nbind * -::*\n", f"\nbind {LOCALHOST}\n")
        return files

    def deliver(self, passwords: dict[str, str]) -> None:
        """Every node's files into its secrets directory at once: each file by rename,
        the version last (tests/support: the Docker writer, the kubelet's swap)."""
        self.passwords = passwords
        for rot in self.nodes:
            files = self.files(rot, passwords)
            files["secrets.version"] = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
            for name, content in files.items():
                tmp = rot.secrets / f".{name}.new"
                tmp.write_text(content)
                os.chmod(tmp, 0o600)
                tmp.replace(rot.secrets / self.delivered_name(rot, name))
            self.versions[rot.name] = files["secrets.version"]

    def delivered_name(self, rot: RotNode, name: str) -> str:
        """Where the node finds a file: a Kubernetes pod its own config file as
        `<pod>.<file>` (the Redis pod by POD_NAME, a Sentinel by its hostname)."""
        if not self.layout.redis.per_node_files or name not in ("redis.conf", "sentinel.conf"):
            return name
        owner = socket.gethostname() if rot.live.node.kind == "sentinel" else rot.name
        return f"{owner}.{name}"

    def wait_applied(self) -> None:
        for rot in self.nodes:
            wait_until(
                lambda rot=rot: rot.applied.exists() and rot.applied.read_text().strip() == self.versions[rot.name],
                APPLY_TIMEOUT,
                f"{rot.name} to apply the delivered secrets\n{rot.live.log_tail()}",
            )

    def env(self, rot: RotNode) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "REDIS_HA_HOSTNAME": LOCALHOST,
            "REDIS_HA_MASTER_NAME": self.settings.master_name,
            "REDIS_HA_SENTINELS": " ".join(f"{LOCALHOST}:{s.port}" for s in self.sentinels),
            "REDIS_HA_CLI_TIMEOUT": "2",
            "REDIS_HA_SECRETS_DIR": str(rot.secrets),
            "REDIS_HA_APPLIED_FILE": str(rot.applied),
            "REDIS_HA_WATCH_INTERVAL": "0.5",
        }
        if rot.live.node.kind == "sentinel":
            return {
                **env,
                "REDIS_HA_PORT": str(rot.port),
                "REDIS_HA_SENTINEL_SEED": str(rot.secrets / self.delivered_name(rot, "sentinel.conf")),
                "REDIS_HA_SENTINEL_STATE": str(rot.live.conf),
                "REDIS_HA_SENTINEL_PASSWORD_FILE": str(rot.secrets / rendering.SENTINEL_CLIENT_PASSWORD_FILE),
                "REDIS_HA_REDIS_NODES": " ".join(f"{LOCALHOST}:{n.port}" for n in self.redis),
            }
        return {
            **env,
            "REDIS_HA_PORT": str(rot.port),
            "REDIS_HA_CONF": str(rot.live.conf),
            "REDIS_HA_DATA_DIR": str(rot.live.directory),
            "REDIS_HA_DEPLOY_MASTER": f"{LOCALHOST}:{self.master.port}",
            "REDIS_HA_SENTINEL_PASSWORD_FILE": str(rot.live.directory / rendering.SENTINEL_CLIENT_PASSWORD_FILE),
            "REDIS_HA_ADMIN_PASSWORD_FILE": str(rot.live.directory / rendering.ADMIN_PASSWORD_FILE),
            "REDIS_HA_SENTINEL_WAIT": "5",
            "POD_NAME": rot.name,
        }

    def start(self, rot: RotNode) -> None:
        kind = rot.live.node.kind
        script = self.scripts / kind / ("sentinel-start.sh" if kind == "sentinel" else "redis-start.sh")
        with rot.live.log.open("ab") as log:
            rot.live.process = subprocess.Popen(
                [*self.shell, str(script)],
                env=self.env(rot),
                cwd=rot.live.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_until(lambda: self.client(rot).ping(), 15, f"{rot.name} to answer\n{rot.live.log_tail()}", interval=0.1)

    def client(self, rot: RotNode, user: str = "admin", **kwargs: Any) -> redis.Redis:
        return connect(rot.port, user, self.passwords[user], **kwargs)

    def stop_all(self) -> None:
        for rot in reversed(self.nodes):
            rot.live.stop()


def accepts(client: Callable[[], redis.Redis]) -> bool:
    """Whether the client `client()` makes logs in: False on a refused password (an
    error of the server's, not of the connection, is raised)."""
    try:
        return bool(client().ping())
    except redis.AuthenticationError:
        return False
    except redis.ResponseError as error:
        if "WRONGPASS" in str(error) or "NOAUTH" in str(error):
            return False
        raise


def logs_in(port: int, user: str, password: str) -> bool:
    return accepts(lambda: connect(port, user, password, socket_timeout=2))


def users_of(rot: RotNode, settings: Settings) -> list[str]:
    kind = "sentinel" if rot.live.node.kind == "sentinel" else "redis"
    return [u.name for u in security.server_users(settings, kind)]


class Watch(threading.Thread):
    """Samples the replication link and the Sentinels' view while a phase runs, and
    records every Sentinel event."""

    def __init__(self, rotation: Rotation) -> None:
        super().__init__(daemon=True)
        self.rotation = rotation
        self.halt = threading.Event()
        self.samples = 0
        self.link_problems: list[str] = []
        self.sentinel_problems: list[str] = []
        self.events: list[str] = []
        self.errors: list[str] = []
        # Opened now, with the passwords of now: a connection stays authenticated after
        # its user's password changes, as an application's does.
        self.replica = rotation.client(rotation.replica)
        self.sentinels = [rotation.client(s, "sentinel-client") for s in rotation.sentinels]
        self.pubsubs = []
        for client in self.sentinels:
            pubsub = client.pubsub()
            pubsub.psubscribe("*")
            self.pubsubs.append(pubsub)

    def run(self) -> None:
        name = self.rotation.settings.master_name
        while not self.halt.is_set():
            try:
                info = self.replica.info("replication")
                if info.get("master_link_status") != "up" or "master_link_down_since_seconds" in info:
                    status, since = info.get("master_link_status"), info.get("master_link_down_since_seconds")
                    self.link_problems.append(f"status {status}, down since {since}")
                for client in self.sentinels:
                    flags = client.execute_command("SENTINEL", "MASTER", name)
                    flags = dict(zip(flags[0::2], flags[1::2], strict=False)).get("flags")
                    # `disconnected` for a moment is SENTINEL SET auth-pass reopening
                    # the links with the new password; anything else is a problem.
                    if set(str(flags).split(",")) - {"master", "disconnected"}:
                        self.sentinel_problems.append(str(flags))
                for pubsub in self.pubsubs:
                    while (message := pubsub.get_message(timeout=0)) is not None:
                        if message.get("type") == "pmessage":
                            self.events.append(f"{message['channel']} {message['data']}")
                self.samples += 1
            except (redis.RedisError, OSError) as error:
                self.errors.append(repr(error))
            time.sleep(0.05)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)
        for pubsub in self.pubsubs:
            with contextlib.suppress(redis.RedisError):
                pubsub.close()

    def assert_nothing_broke(self, what: str) -> None:
        assert self.samples >= 20, f"{what}: only {self.samples} samples"
        assert not self.errors, f"{what}: the samplers' connections failed: {self.errors[:5]}"
        assert not self.link_problems, f"{what}: the replication link went down: {self.link_problems[:5]}"
        assert not self.sentinel_problems, f"{what}: a Sentinel saw the master as {self.sentinel_problems[:5]}"
        bad = [e for e in self.events if e.split(" ", 1)[0] in BAD_EVENTS]
        assert not bad, f"{what}: Sentinel events {bad}"


@contextlib.contextmanager
def watched(rotation: Rotation, what: str) -> Iterator[Watch]:
    watch = Watch(rotation)
    watch.start()
    try:
        yield watch
        # A while longer than Sentinel's down-after: a broken login would show by now.
        time.sleep(DOWN_AFTER_MS / 1000 * 1.5)
    finally:
        watch.stop()
    watch.assert_nothing_broke(what)


def bare_acl_list(directory: Path, acl_text: str, admin_password: str) -> list[str]:
    """ACL LIST of a fresh redis-server that loads `acl_text` as its aclfile: what a
    restarted node would have."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "users.acl").write_text(acl_text)
    port = free_port()
    conf = directory / "bare.conf"
    conf.write_text(
        f'port {port}\nbind {LOCALHOST}\nsave ""\nappendonly no\ndir {directory}\naclfile {directory}/users.acl\n'
    )
    process = subprocess.Popen(
        ["/usr/bin/redis-server", str(conf)], cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        client = wait_until(
            lambda: connect(port, "admin", admin_password) if connect(port, "admin", admin_password).ping() else None,
            10,
            "a bare redis-server",
        )
        return acl_tokens(client.execute_command("ACL", "LIST"))
    finally:
        process.terminate()
        process.wait(timeout=10)


def acl_tokens(lines: list[str]) -> dict[str, list[str]]:
    """user -> the sorted tokens of its ACL LIST line. Redis describes a user in a
    normal form in which each command appears once, but lists the single-command
    exceptions of a category in an order that depends on the history of the user:
    the same rules, another order."""
    return {line.split()[1]: sorted(line.split()[2:]) for line in lines}


def acl_hashes(lines: list[str]) -> dict[str, set[str]]:
    """user -> the password hashes of ACL LIST (or `user` lines of a file)."""
    return {
        line.split()[1]: {t for t in line.split()[2:] if t.startswith("#")}
        for line in lines
        if line.startswith("user ")
    }
