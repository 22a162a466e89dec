"""components/node/fence.sh, the master's self-fence, against real Redis and Sentinel
processes (Debian's 7.0, rendered from the prod stack's files, on 127.0.0.1).

A Sentinel "stops answering" by SIGSTOP: it accepts the connection and never replies,
which is what a dropped reply looks like to redis-cli. Each scenario that fences runs
under dash and under busybox ash (the alpine images' shell).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis_ha.components import rendering
from redis_ha.components.docker.layout import LAYOUT as DOCKER_LAYOUT
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.package_data import node_dir
from redis_ha.components.plan import START_SCRIPT, build_plan
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings

from tests.support.live import LiveNode, free_port, wait_until
from tests.support.node_scripts import parse_env
from tests.support.program import stack_config
from tests.support.role_script import LOCALHOST, SHELLS, Processes, prod_settings

FENCE_MARK = "1000"
DEFAULT_FENCE_AFTER = Settings.fence_after_milliseconds
INTERVAL_MS = 250
SCRIPT = node_dir() / "fence.sh"


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> list[str]:
    return SHELLS[request.param]


@dataclass
class Group:
    procs: Processes
    master: LiveNode
    replica: LiveNode
    sentinels: list[LiveNode]
    other: LiveNode  # a second master, named by Sentinels that are told a different story

    def client(self, live: LiveNode) -> redis.Redis:
        return self.procs.client(live.port)


@pytest.fixture
def group(tmp_path: Path, role_passwords: dict[str, str]) -> Iterator[Group]:
    procs = Processes(tmp_path, prod_settings(), role_passwords)
    try:
        topology = procs.topology(free_port(), free_port())
        master = procs.start(procs.redis("m", topology, 0))
        replica = procs.start(procs.redis("r", topology, 1))
        other = procs.start(procs.redis("o", procs.topology(free_port()), 0))
        sentinels = [procs.start(procs.sentinel(f"s{i}", topology)) for i in range(3)]
        group = Group(procs, master, replica, sentinels, other)
        # min-replicas-to-write 1 (the prod value): writes need the replica's link.
        wait_until(
            lambda: group.client(replica).info("replication")["master_link_status"] == "up", 15, "the replica's link"
        )
        wait_until(lambda: group.client(master).set("probe", 1), 15, "the master to take writes")
        yield group
    finally:
        for live in procs.nodes:
            if live.process is not None and live.process.poll() is None:
                os.kill(live.process.pid, signal.SIGCONT)
        procs.stop_all()


@pytest.fixture(scope="module")
def role_passwords() -> dict[str, str]:
    from redis_ha.components import security

    from tests.support.live import make_password

    return {user: make_password() for user in security.user_names(prod_settings())}


class Fence:
    """fence.sh running against the group's master; its log in memory."""

    def __init__(
        self,
        shell: list[str],
        group: Group,
        sentinels: list[LiveNode],
        fence_after: int,
        node: LiveNode | None = None,
        **env: str,
    ) -> None:
        node = node or group.master
        secrets = group.procs.secrets
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*shell, str(SCRIPT)],
            env={
                "PATH": os.environ["PATH"],
                "REDIS_HA_PORT": str(node.port),
                "REDIS_HA_MASTER_NAME": group.procs.settings.master_name,
                "REDIS_HA_SENTINELS": " ".join(f"{LOCALHOST}:{s.port}" for s in sentinels),
                "REDIS_HA_SELF_ADDRS": LOCALHOST,
                "REDIS_HA_SENTINEL_PASSWORD_FILE": str(secrets / rendering.SENTINEL_CLIENT_PASSWORD_FILE),
                "REDIS_HA_ADMIN_PASSWORD_FILE": str(secrets / rendering.ADMIN_PASSWORD_FILE),
                "REDIS_HA_CONF": str(node.conf),
                "REDIS_HA_MIN_REPLICAS_TO_WRITE": "1",
                "REDIS_HA_FENCE_AFTER_MS": str(fence_after),
                "REDIS_HA_FENCE_INTERVAL_MS": str(INTERVAL_MS),
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_until(lambda: any("watching" in line for line in self.lines), 10, "fence.sh to start")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(f"{time.monotonic():.3f} {line.rstrip()}")

    def log(self) -> str:
        return "\n".join(self.lines)

    def count(self, word: str) -> int:
        return sum(word in line for line in self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.reader.join(timeout=5)


@pytest.fixture
def fences() -> Iterator[list[Fence]]:
    started: list[Fence] = []
    yield started
    for fence in started:
        fence.stop()


def min_replicas(group: Group) -> str:
    return str(group.client(group.master).config_get("min-replicas-to-write")["min-replicas-to-write"])


def write_refused(group: Group) -> bool:
    try:
        group.client(group.master).set("fenced?", "no")
    except redis.ResponseError as error:
        assert "NOREPLICAS" in str(error), error
        return True
    return False


def freeze(live: LiveNode) -> None:
    assert live.process is not None
    os.kill(live.process.pid, signal.SIGSTOP)


def thaw(live: LiveNode) -> None:
    assert live.process is not None
    os.kill(live.process.pid, signal.SIGCONT)


def test_script_parses_in_the_shell(shell: list[str]) -> None:
    result = subprocess.run([*shell, "-n", str(SCRIPT)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


def test_fences_when_the_sentinels_stop_answering_and_lifts_when_they_name_it_again(
    shell: list[str], group: Group, fences: list[Fence]
) -> None:
    fence = Fence(shell, group, group.sentinels, fence_after=1000)
    fences.append(fence)
    time.sleep(1.5)
    assert fence.count("FENCED") == 0, fence.log()
    assert not write_refused(group)
    # Two of three Sentinels stop answering: no majority names the master.
    cut = time.monotonic()
    freeze(group.sentinels[0])
    freeze(group.sentinels[1])
    wait_until(lambda: write_refused(group), 5, f"the fence\n{fence.log()}", interval=0.02)
    fenced_after = time.monotonic() - cut
    # fenceAfter counts from the last answer that confirmed the node (at or before the
    # cut); then one interval and some slack for this shared machine.
    round_s = INTERVAL_MS / 1000
    assert fenced_after <= 1.0 + 2 * round_s + 0.4, (fenced_after, fence.log())
    assert min_replicas(group) == FENCE_MARK
    # Nothing is acknowledged while fenced, WAIT included.
    with pytest.raises(redis.ResponseError, match="Not enough good replicas"):
        group.client(group.master).set("during", 1)
    assert group.client(group.master).execute_command("WAIT", 1, 200) in (0, 1)
    assert group.client(group.replica).get("during") is None
    # The fence is counted once a second (redis_errors_total{err="FENCED"}).
    wait_until(
        lambda: group.client(group.master).info("errorstats").get("errorstat_FENCED", {}).get("count", 0) >= 1,
        3,
        "the FENCED error stat",
    )
    thaw(group.sentinels[0])
    thaw(group.sentinels[1])
    wait_until(lambda: not write_refused(group), 5, f"the lift\n{fence.log()}", interval=0.05)
    assert min_replicas(group) == "1"
    wait_until(lambda: fence.count("fence lifted") == 1, 2, f"the lift's log line\n{fence.log()}")
    assert fence.count("FENCED:") == 1, fence.log()


def test_fences_at_once_when_a_majority_names_another_node(
    shell: list[str], group: Group, fences: list[Fence], tmp_path: Path
) -> None:
    """Two Sentinels that name another master: the fence does not wait fenceAfter."""
    procs = group.procs
    elsewhere = [procs.start(procs.sentinel(f"x{i}", procs.topology(group.other.port))) for i in range(2)]
    fence = Fence(shell, group, [group.sentinels[0], *elsewhere], fence_after=4000)
    fences.append(fence)
    wait_until(lambda: write_refused(group), 2, f"the fence\n{fence.log()}", interval=0.02)
    wait_until(lambda: fence.count("2 of 3 Sentinels name") == 1, 2, f"the reason\n{fence.log()}")
    # Demoted (as Sentinel would), the node lifts the fence and restores the value.
    group.client(group.master).execute_command("REPLICAOF", LOCALHOST, group.other.port)
    wait_until(lambda: min_replicas(group) == "1", 3, f"the lift\n{fence.log()}")
    wait_until(lambda: fence.count("this node is a replica") == 1, 2, f"the reason\n{fence.log()}")


def test_never_fences_while_a_majority_names_it(group: Group, fences: list[Fence]) -> None:
    """One Sentinel down, one slow (stopped 100 ms in every 200): 0 fenced seconds."""
    fence = Fence(SHELLS["dash"], group, group.sentinels, fence_after=DEFAULT_FENCE_AFTER, REDIS_HA_FENCE_TRACE="1")
    fences.append(fence)
    group.sentinels[2].stop()
    slow = group.sentinels[1]
    refused = 0
    until = time.monotonic() + 6
    while time.monotonic() < until:
        freeze(slow)
        time.sleep(0.1)
        thaw(slow)
        refused += write_refused(group)
        time.sleep(0.1)
    assert refused == 0 and fence.count("FENCED") == 0, fence.log()
    assert min_replicas(group) == "1"


def test_a_silent_sentinel_adds_nothing_to_the_time_a_cut_off_master_stays_confirmed(
    shell: list[str], group: Group, fences: list[Fence]
) -> None:
    """One Sentinel silent throughout holds every round open until the question
    deadline (2 s here). The answers of the two others confirm the master as they
    arrive, so losing one of them fences it fenceAfter + about one interval later; a
    confirmation dated at the round's end would hold it until fenceAfter + the deadline."""
    deadline_ms, fence_after_ms = 2000, 1000
    fence = Fence(shell, group, group.sentinels, fence_after=fence_after_ms, REDIS_HA_FENCE_TIMEOUT_MS=str(deadline_ms))
    fences.append(fence)
    freeze(group.sentinels[2])
    # Two of three still answer: a majority, never a fence (rounds end at the deadline).
    time.sleep(deadline_ms / 1000 + 2)
    assert fence.count("FENCED") == 0 and not write_refused(group), fence.log()
    cut = time.monotonic()
    freeze(group.sentinels[1])
    wait_until(lambda: write_refused(group), 6, f"the fence\n{fence.log()}", interval=0.02)
    fenced_after = time.monotonic() - cut
    round_s = INTERVAL_MS / 1000
    # By the round's end it would be at least fenceAfter + deadline - one interval (2.75 s).
    assert fenced_after <= fence_after_ms / 1000 + 2 * round_s + 0.6, (fenced_after, fence.log())
    thaw(group.sentinels[1])
    thaw(group.sentinels[2])
    wait_until(lambda: not write_refused(group), 6, f"the lift\n{fence.log()}", interval=0.05)


def test_a_restart_while_fenced_keeps_no_fence_in_the_config(group: Group, fences: list[Fence]) -> None:
    fence = Fence(SHELLS["dash"], group, group.sentinels, fence_after=500)
    fences.append(fence)
    for sentinel in group.sentinels[:2]:
        freeze(sentinel)
    wait_until(lambda: min_replicas(group) == FENCE_MARK, 5, f"the fence\n{fence.log()}")
    # Sentinel's demotion (and the secrets watcher) end with CONFIG REWRITE; then the
    # node restarts with the mark in its file and without the script that set it.
    group.client(group.master).config_rewrite()
    assert f"min-replicas-to-write {FENCE_MARK}" in group.master.conf.read_text()
    fence.stop()
    group.master.stop()
    group.procs.start(group.master)
    assert min_replicas(group) == FENCE_MARK
    fence = Fence(SHELLS["dash"], group, group.sentinels, fence_after=500)
    fences.append(fence)
    for sentinel in group.sentinels[:2]:
        thaw(sentinel)
    # Named again: the deployed value comes back, in the server and in its file.
    wait_until(lambda: min_replicas(group) == "1", 5, f"the lift\n{fence.log()}")
    wait_until(
        lambda: f"min-replicas-to-write {FENCE_MARK}" not in group.master.conf.read_text(), 3, "the rewritten file"
    )


def test_leaves_no_redis_cli_behind(group: Group, fences: list[Fence]) -> None:
    """Questions to silent Sentinels end at their deadline: they are killed, not left behind."""
    fence = Fence(SHELLS["busybox-ash"], group, group.sentinels, fence_after=500)
    fences.append(fence)
    for sentinel in group.sentinels:
        freeze(sentinel)
    time.sleep(3)

    ports = {f"-p {s.port} " for s in group.sentinels}

    def questions() -> int:
        """redis-cli processes asking these Sentinels, wherever they were reparented."""
        found = 0
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                words = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found += words.startswith("redis-cli ") and any(port in words for port in ports)
        return found

    # Questions end at their deadline (1 s) and rounds stop starting while 6 wait: at most
    # 6 rounds of 3 questions, however long the Sentinels stay silent.
    counts = []
    for _ in range(4):
        time.sleep(1)
        counts.append(questions())
    assert max(counts) <= 18 and counts[-1] > 0, counts
    wait_until(lambda: fence.count("FENCED:") == 1, 2, fence.log())
    # Rounds still waiting with no answer yet leave nothing but the fence's own lines in
    # the node's log (a shell error four times a second would drown them).
    assert "no such file" not in fence.log().lower(), fence.log()


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("fence", [True, False])
def test_both_backends_ship_the_fence_next_to_the_start_script(stack: str, fence: bool) -> None:
    """Docker uploads and Kubernetes mounts (ConfigMap) every script of the Redis group
    into one directory: fence.sh sits next to redis-start.sh, which starts it from there."""
    settings = load_settings({**stack_config(stack), "fence": fence})
    layout = DOCKER_LAYOUT if settings.backend == "docker" else K8S_LAYOUT
    plan = build_plan(settings, layout, naming_for(settings))
    redis_group = next(g for part in plan.parts for g in part.groups if g.kind == "redis")
    scripts = redis_group.scripts()
    env = parse_env(scripts["node.env"])
    assert scripts["fence.sh"] == SCRIPT.read_text() and START_SCRIPT in scripts
    if fence:
        assert env["REDIS_HA_FENCE_AFTER_MS"] == str(settings.fence_after_milliseconds) != "0"
    else:
        assert env["REDIS_HA_FENCE_AFTER_MS"] == "0"
    assert env["REDIS_HA_MIN_REPLICAS_TO_WRITE"] == str(settings.min_replicas_to_write)


def test_works_on_a_read_only_root_filesystem(group: Group, fences: list[Fence]) -> None:
    """A pod's root filesystem is read-only: the answers go next to redis.conf."""
    fence = Fence(SHELLS["busybox-ash"], group, group.sentinels, fence_after=DEFAULT_FENCE_AFTER, TMPDIR="/proc")
    fences.append(fence)
    [work] = list(group.master.conf.parent.glob("redis-ha-fence.*"))
    freeze(group.sentinels[0])
    freeze(group.sentinels[1])
    wait_until(lambda: write_refused(group), 5, f"the fence\n{fence.log()}", interval=0.05)
    fence.stop()
    assert not work.exists()


def test_a_promoted_replica_is_not_fenced_while_the_sentinels_hear_of_it(group: Group, fences: list[Fence]) -> None:
    """After a failover the promoting Sentinel names the new master at once, the others
    seconds later: until then (REDIS_HA_FENCE_SETTLE_MS) one naming it confirms it."""
    procs = group.procs
    leader = procs.start(procs.sentinel("leader", procs.topology(group.replica.port)))
    sentinels = [leader, group.sentinels[0], group.sentinels[1]]
    fence = Fence(
        SHELLS["dash"], group, sentinels, DEFAULT_FENCE_AFTER, node=group.replica, REDIS_HA_FENCE_SETTLE_MS="3000"
    )
    fences.append(fence)
    # The script has seen the node as a replica (it looks once a second).
    time.sleep(2)
    promoted = time.monotonic()
    group.client(group.replica).execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: fence.count("this node is master now") == 1, 5, fence.log())
    replica = group.client(group.replica)
    # Writes need a replica of its own (min-replicas-to-write 1): the old master follows it.
    group.client(group.master).execute_command("REPLICAOF", LOCALHOST, group.replica.port)
    wait_until(lambda: replica.info("replication")["connected_slaves"] >= 1, 10, "the old master to follow")
    while time.monotonic() - promoted < 2.5:
        replica.set("after-promotion", 1)
        time.sleep(0.1)
    assert fence.count("FENCED") == 0, fence.log()
    # Two Sentinels still naming the old master once the settling time is over: fenced.
    wait_until(lambda: fence.count("2 of 3 Sentinels name") == 1, 5, fence.log())


@pytest.mark.parametrize("named", [True, False], ids=["sentinel-failover", "promoted-by-hand"])
def test_a_new_master_is_not_fenced_before_any_sentinel_saw_its_promotion(
    group: Group, fences: list[Fence], named: bool
) -> None:
    """Sentinel's leader names a promoted replica only once it saw the promotion in the
    node's INFO (up to a second after REPLICAOF NO ONE); until then every Sentinel names
    the old master. The new master is not fenced for that; one that no Sentinel ever
    names (promoted by hand) is fenced once the grace is over."""
    procs = group.procs
    # The leader answers only from 1 s after the promotion (until then: connection refused).
    leader = procs.sentinel("leader", procs.topology(group.replica.port))
    sentinels = [leader, group.sentinels[0], group.sentinels[1]]
    grace_ms = 1500
    fence = Fence(
        SHELLS["dash"],
        group,
        sentinels,
        DEFAULT_FENCE_AFTER,
        node=group.replica,
        REDIS_HA_FENCE_SETTLE_MS="4000",
        REDIS_HA_FENCE_GRACE_MS=str(grace_ms),
    )
    fences.append(fence)
    time.sleep(2)  # the script has seen the node as a replica (it looks once a second)
    group.client(group.replica).execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: fence.count("this node is master now") == 1, 5, fence.log())
    seen = time.monotonic()
    if named:
        time.sleep(1.0)
        procs.start(leader)
        time.sleep(2.5)
        assert fence.count("FENCED") == 0, fence.log()
    else:
        wait_until(lambda: fence.count("2 of 3 Sentinels name") == 1, 5, fence.log())
        # Not before the grace; at most two rounds and some slack after it.
        fenced_after = time.monotonic() - seen
        assert grace_ms / 1000 - 0.3 <= fenced_after <= grace_ms / 1000 + 2 * INTERVAL_MS / 1000 + 0.5, (
            fenced_after,
            fence.log(),
        )


def _set_password_file(group: Group, user: str, password: str) -> None:
    """What a rotation's secrets writer does to this node: the file changes at once."""
    name = {"sentinel-client": rendering.SENTINEL_CLIENT_PASSWORD_FILE, "admin": rendering.ADMIN_PASSWORD_FILE}[user]
    path = group.procs.secrets / name
    tmp = path.with_suffix(".new")
    tmp.write_text(password + "\n")
    tmp.replace(path)


def _sentinels_accept(group: Group, *passwords: str) -> None:
    """The Sentinels' `sentinel-client` user takes exactly these passwords."""
    for sentinel in group.sentinels:
        client = group.client(sentinel)
        client.execute_command("ACL", "SETUSER", "sentinel-client", "resetpass", *(f">{p}" for p in passwords))


def test_a_password_rotation_never_fences_and_a_refused_login_still_does(
    shell: list[str], group: Group, fences: list[Fence]
) -> None:
    """Phase 1 of a rotation reaches this node's files before the Sentinels' ACL (and the
    node's own ACL a moment after its admin file): the Sentinels and the node refuse the
    new password and still take the previous one. The fence keeps confirming the node
    through every step; a login refused with every password it knows fences as a silent
    Sentinel does."""
    old = group.procs.passwords["sentinel-client"]
    new = old + "rotated"
    # The default: a spurious fence from slow rounds on a loaded machine is not what
    # this tests (test_never_fences_while_a_majority_names_it is).
    fence = Fence(shell, group, group.sentinels, fence_after=DEFAULT_FENCE_AFTER)
    fences.append(fence)
    steps = [
        ("node file new, Sentinels old only", lambda: _set_password_file(group, "sentinel-client", new)),
        ("Sentinels take both", lambda: _sentinels_accept(group, old, new)),
        ("Sentinels new only (phase 2)", lambda: _sentinels_accept(group, new)),
        (
            "admin file new, node old only",
            lambda: _set_password_file(group, "admin", group.procs.passwords["admin"] + "x"),
        ),
    ]
    for what, step in steps:
        step()
        # Longer than fenceAfter: a fence would have come and shown in the writes.
        until = time.monotonic() + DEFAULT_FENCE_AFTER / 1000 + 1.5
        while time.monotonic() < until:
            assert not write_refused(group), f"fenced after: {what}\n{fence.log()}"
            time.sleep(0.1)
    assert fence.count("FENCED") == 0, fence.log()
    # Control: every Sentinel refuses every password the fence knows -> fenced.
    _sentinels_accept(group, new + "other")
    wait_until(lambda: write_refused(group), 6, f"the fence on refused logins\n{fence.log()}", interval=0.05)


def test_fences_at_once_when_its_replica_becomes_a_master(shell: list[str], group: Group, fences: list[Fence]) -> None:
    """A bare failover (SENTINEL FAILOVER, or Sentinel's own after a pause) promotes a
    replica while the old master is alive, and the Sentinels name the new master only
    seconds later. The fence asks its replicas too: one that answers it is a master
    fences this node at once, while every Sentinel still names it."""
    fence = Fence(shell, group, group.sentinels, fence_after=4000)
    fences.append(fence)
    # Learned from INFO replication: wait for a round that asked the replica.
    time.sleep(1.0)
    assert not write_refused(group), fence.log()
    replica = group.client(group.replica)
    promoted = time.monotonic()
    replica.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: write_refused(group), 2, f"the fence\n{fence.log()}", interval=0.02)
    # One round (250 ms) and its questions, on a shared machine.
    assert time.monotonic() - promoted <= 1.0, fence.log()
    wait_until(lambda: fence.count("answers that it is a master") == 1, 2, f"the reason\n{fence.log()}")
    # The replica follows this node again: the next round lifts the fence.
    replica.execute_command("REPLICAOF", LOCALHOST, str(group.master.port))
    wait_until(lambda: not write_refused(group), 5, f"the lift\n{fence.log()}", interval=0.05)
    assert min_replicas(group) == "1"
