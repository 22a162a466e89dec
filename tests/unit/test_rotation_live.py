"""Password rotation on real processes: two phases, no restart, nothing breaks.

A master, a replica and three Sentinels (Debian's redis-server/redis-sentinel 7.0 on
127.0.0.1) run under the real start scripts of the dev stack (redis-start.sh and
sentinel-start.sh as rendered for Docker, under dash and under busybox ash, and as
rendered for Kubernetes, where a node's own file is `<pod>.<file>`; the environment
points them at local directories). Each node has a `secrets` directory that stands for what the backend
delivers (the Docker secrets volume, the mounted Kubernetes Secret): the test writes
the node's rendered files there, each by rename and the version last, as the Docker
writer does, for every node at once (as the kubelet would, with no order between
nodes). The scripts must apply them live and in a safe order by themselves.

Phase 1 renders every user's new password with the old one as its previous
(components/security.PREVIOUS); phase 2 the new one alone. Throughout, a sampler reads
the replica's `master_link_status` / `master_link_down_since_seconds` and the
Sentinels' view of the master, and every Sentinel's event channel is recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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


def logs_in(port: int, user: str, password: str) -> bool:
    try:
        return bool(connect(port, user, password, socket_timeout=2).ping())
    except redis.AuthenticationError:
        return False
    except redis.ResponseError as error:
        if "WRONGPASS" in str(error) or "NOAUTH" in str(error):
            return False
        raise


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


@pytest.fixture(params=[("docker", "dash"), ("docker", "busybox-ash"), ("kubernetes", "busybox-ash")], ids="-".join)
def rotation(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rotation]:
    """The Docker stack's scripts under dash and under busybox ash (the alpine images'
    shell), and the Kubernetes stack's (`<pod>.<file>` in the mounted Secret)."""
    backend, shell_name = request.param
    shell = SHELLS[shell_name]
    assert shutil.which(shell[0]), f"{shell[0]} runs the start scripts"
    settings = rotation_settings()
    deployment = Rotation(tmp_path, settings, user_passwords(settings), shell, backend)
    try:
        deployment.deliver(deployment.passwords)
        for rot in deployment.redis:
            deployment.start(rot)
        wait_until(
            lambda: deployment.client(deployment.replica).info("replication").get("master_link_status") == "up",
            15,
            f"the replica's link\n{deployment.replica.live.log_tail()}",
        )
        for rot in deployment.sentinels:
            deployment.start(rot)
        # Every Sentinel knows the replica and its two peers before anything changes.
        name = settings.master_name

        def settled() -> bool:
            for rot in deployment.sentinels:
                client = deployment.client(rot, "sentinel-client")
                if len(client.execute_command("SENTINEL", "REPLICAS", name)) != 1:
                    return False
                if len(client.execute_command("SENTINEL", "SENTINELS", name)) != 2:
                    return False
            return True

        wait_until(settled, 30, "the Sentinels to know each other and the replica", interval=0.2)
        deployment.wait_applied()
        yield deployment
    finally:
        deployment.stop_all()


def test_both_phases_rotate_every_password_live(rotation: Rotation, tmp_path: Path) -> None:
    settings = rotation.settings
    old = dict(rotation.passwords)
    new = user_passwords(settings)
    pids = {rot.name: rot.live.process.pid for rot in rotation.nodes if rot.live.process is not None}
    server_pids = {rot.name: rotation.client(rot).info("server")["process_id"] for rot in rotation.nodes}

    # Phase 1: both passwords of every user are accepted everywhere, every user of the
    # deployment switches to the new one.
    with watched(rotation, "phase 1"):
        rotation.deliver(with_previous(new, old))
        rotation.wait_applied()
    for rot in rotation.nodes:
        for user in users_of(rot, settings):
            assert logs_in(rot.port, user, old[user]), f"phase 1: {rot.name} refuses the old password of {user}"
            assert logs_in(rot.port, user, new[user]), f"phase 1: {rot.name} refuses the new password of {user}"
    for rot in rotation.redis:
        masterauth = connect(rot.port, "admin", new["admin"]).config_get("masterauth")["masterauth"]
        assert masterauth == new["replica"], f"{rot.name} still replicates with the old password"
    for rot in rotation.sentinels:
        sentinel = connect(rot.port, "admin", new["admin"])
        assert sentinel.execute_command("SENTINEL", "CONFIG", "GET", "sentinel-pass")[1] == new["sentinel"], rot.name
        state = rot.live.conf.read_text()
        assert f"sentinel auth-pass {settings.master_name} {new['sentinel']}\n" in state, rot.name

    # Phase 2: only the new passwords.
    with watched(rotation, "phase 2"):
        rotation.deliver(new)
        rotation.wait_applied()
    for rot in rotation.nodes:
        for user in users_of(rot, settings):
            assert not logs_in(rot.port, user, old[user]), f"phase 2: {rot.name} still takes the old password of {user}"
            assert logs_in(rot.port, user, new[user]), f"phase 2: {rot.name} refuses the new password of {user}"

    # No process was restarted: the same start scripts, the same servers.
    assert {rot.name: rot.live.process.pid for rot in rotation.nodes if rot.live.process is not None} == pids
    assert {rot.name: rotation.client(rot).info("server")["process_id"] for rot in rotation.nodes} == server_pids

    # Restart-safe: what a restart loads is the live state.
    for rot in rotation.redis:
        on_disk = (rot.live.directory / "users.acl").read_text()
        assert on_disk == (rot.secrets / "users.acl").read_text(), rot.name
        live = acl_tokens(rotation.client(rot).execute_command("ACL", "LIST"))
        assert bare_acl_list(tmp_path / f"bare-{rot.name}", on_disk, new["admin"]) == live, rot.name
        assert (rot.live.directory / "admin.password").read_text() == new["admin"]
    for rot in rotation.sentinels:
        seed = (rot.secrets / rotation.delivered_name(rot, "sentinel.conf")).read_text().splitlines()
        live = rotation.client(rot).execute_command("ACL", "LIST")
        assert acl_hashes(live) == acl_hashes(seed), rot.name

    # A restarted replica comes back on the new passwords alone (masterauth, the
    # Sentinels' client password), with its link up.
    replica = rotation.replica
    replica.live.stop()
    rotation.start(replica)
    wait_until(
        lambda: rotation.client(replica).info("replication").get("master_link_status") == "up",
        20,
        f"the restarted replica's link\n{replica.live.log_tail()}",
    )


def test_a_sentinel_keeps_the_old_auth_pass_while_a_redis_node_refuses_the_new_one(rotation: Rotation) -> None:
    """The order is the scripts' own: with the new passwords delivered to the Sentinels
    only, they may not switch to a password the Redis nodes do not accept yet."""
    settings = rotation.settings
    old = dict(rotation.passwords)
    new = user_passwords(settings)
    phase1 = with_previous(new, old)
    with watched(rotation, "Sentinels first"):
        for rot in rotation.sentinels:
            files = rotation.files(rot, phase1)
            files["secrets.version"] = "sentinels-first"
            for name, content in files.items():
                (rot.secrets / f".{name}.new").write_text(content)
                (rot.secrets / f".{name}.new").replace(rot.secrets / rotation.delivered_name(rot, name))
        time.sleep(3)
        for rot in rotation.sentinels:
            state = rot.live.conf.read_text()
            assert f"sentinel auth-pass {settings.master_name} {old['sentinel']}\n" in state, rot.name
            assert "secrets: the master does not accept the new sentinel password yet" in rot.live.log.read_text()
        # Now the Redis nodes get theirs; the Sentinels follow on their own.
        rotation.passwords = phase1
        for rot in rotation.redis:
            files = rotation.files(rot, phase1)
            files["secrets.version"] = "redis"
            for name, content in files.items():
                (rot.secrets / f".{name}.new").write_text(content)
                (rot.secrets / f".{name}.new").replace(rot.secrets / rotation.delivered_name(rot, name))
        rotation.versions = {r.name: ("redis" if r in rotation.redis else "sentinels-first") for r in rotation.nodes}
        rotation.wait_applied()
    for rot in rotation.sentinels:
        assert f"sentinel auth-pass {settings.master_name} {new['sentinel']}\n" in rot.live.conf.read_text()
