"""redis-start.sh, the Redis pods' command, run against real Redis and Sentinel processes.

The script under test is the one the prod stack ships (rendered from Pulumi.prod.yaml
with the Kubernetes paths); the environment overrides only what differs on this host:
the Sentinel addresses, this node's name and port, the deploy-time master and the
password files. Redis nodes and Sentinels are Debian's redis-server/redis-sentinel
7.0, started from the real rendered files (users.acl included) on free ports, bound
to 127.0.0.1. Every process is stopped in fixture teardown.

Each scenario runs under dash and under busybox ash (the alpine images' shell).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_ha.components import rendering
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.topology import build_sentinel_topology

from tests.support.live import LiveNode, connect, free_port, wait_until
from tests.support.node_scripts import env_values, install
from tests.support.role_script import (
    K8S_PATHS,
    LOCALHOST,
    SCRIPT_TIMEOUT,
    Processes,
    World,
    prestop,
    script_env,
    sentinel_master,
)


def decide(shell: list[str], script: Path, env: dict[str, str]) -> str:
    """Run the script in decide-only mode; its stdout is the decision."""
    result = subprocess.run(
        [*shell, str(script)],
        env={**env, "REDIS_HA_DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def replicaof_lines(conf: Path) -> list[str]:
    return [line for line in conf.read_text().splitlines() if line.split(" ", 1)[0].lower() in ("replicaof", "slaveof")]


# --- the script itself --------------------------------------------------------------


def test_script_parses_in_the_shell(shell: list[str], script: Path) -> None:
    result = subprocess.run([*shell, "-n", str(script)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert result.returncode == 0, result.stderr


def test_shipped_defaults_name_the_deployed_nodes(script: Path, settings: Settings) -> None:
    topology = build_sentinel_topology(settings, naming_for(settings))
    env = env_values(script.parent)
    sentinels = " ".join(f"{n.hostname}:{n.port}" for n in topology.sentinels)
    assert env["REDIS_HA_SENTINELS"] == sentinels
    assert env["REDIS_HA_DEPLOY_MASTER"] == f"{topology.master.hostname}:{topology.master.port}"
    # A pod's own hostname is its name under the Redis headless Service.
    assert env["REDIS_HA_HOSTNAME_SUFFIX"] == f".{settings.name}-redis-headless.{settings.namespace}.svc.cluster.local"
    assert "self_host=${REDIS_HA_HOSTNAME:-$pod${REDIS_HA_HOSTNAME_SUFFIX:-}}" in script.read_text()
    assert env["REDIS_HA_SENTINEL_PASSWORD_FILE"] == f"{K8S_PATHS.conf_dir}/{rendering.SENTINEL_CLIENT_PASSWORD_FILE}"


# --- fresh cluster: no Sentinel answers -> deploy-time role ---------------------------


def test_fresh_cluster_deploy_time_master_starts_as_master(shell: list[str], script: Path, procs: Processes) -> None:
    me = free_port()
    env = script_env(procs, port=me, sentinels=[free_port(), free_port(), free_port()], deploy_master=me)
    assert decide(shell, script, env) == "master"


def test_fresh_cluster_other_nodes_replicate_the_deploy_time_master(
    shell: list[str], script: Path, procs: Processes
) -> None:
    master = free_port()
    env = script_env(procs, port=free_port(), sentinels=[free_port(), free_port()], deploy_master=master)
    assert decide(shell, script, env) == f"replicaof {LOCALHOST} {master}"


# --- the Sentinels answer ----------------------------------------------------------------


def test_after_failover_the_deploy_time_master_starts_as_replica(shell: list[str], script: Path, world: World) -> None:
    me = free_port()
    # This node was deployed as the master; the Sentinels have since promoted B.
    env = script_env(world.procs, port=me, sentinels=[world.dead, world.s1.port, world.s2.port], deploy_master=me)
    assert decide(shell, script, env) == f"replicaof {LOCALHOST} {world.b.port}"


def test_node_the_sentinels_name_starts_as_master(shell: list[str], script: Path, world: World) -> None:
    # Deployed as a replica, but after a failover the Sentinels name this node.
    env = script_env(world.procs, port=world.b.port, sentinels=[world.s1.port], deploy_master=free_port())
    assert decide(shell, script, env) == "master"


def test_majority_of_sentinels_wins_over_a_stale_one(shell: list[str], script: Path, world: World) -> None:
    # S3 alone names C ...
    alone = script_env(world.procs, port=free_port(), sentinels=[world.s3.port], deploy_master=free_port())
    assert decide(shell, script, alone) == f"replicaof {LOCALHOST} {world.c.port}"
    # ... but asked with S1 and S2, C is outvoted: it must not come back as a master.
    sentinels = [world.s3.port, world.s1.port, world.s2.port]
    outvoted = script_env(world.procs, port=world.c.port, sentinels=sentinels, deploy_master=world.c.port)
    assert decide(shell, script, outvoted) == f"replicaof {LOCALHOST} {world.b.port}"


def test_sentinel_that_refuses_the_login_counts_as_unreachable(
    shell: list[str], script: Path, world: World, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    me = free_port()
    env = script_env(
        world.procs,
        port=me,
        sentinels=[world.s1.port, world.s2.port],
        deploy_master=me,
        REDIS_HA_SENTINEL_PASSWORD_FILE=str(wrong),
    )
    # Without an answer the node falls back to its deploy-time role (here: master).
    assert decide(shell, script, env) == "master"


# --- the real start: exec redis-server ------------------------------------------------


def start_with_script(shell: list[str], script: Path, live: LiveNode, env: dict[str, str]) -> None:
    """Run the script as the node's process: it starts redis-server as its child."""
    with live.log.open("ab") as log:
        live.process = subprocess.Popen(
            [*shell, str(script)], env=env, cwd=live.directory, stdout=log, stderr=subprocess.STDOUT
        )


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_aof_settled(procs: Processes, live: LiveNode) -> None:
    """After a full sync a replica rewrites its AOF and ignores SIGTERM until that is
    done ("Writing initial AOF, can't exit"); let it finish so teardown is prompt."""

    def settled() -> bool:
        info = procs.client(live.port).info("persistence")
        return info["aof_rewrite_in_progress"] == 0 and info["aof_rewrite_scheduled"] == 0

    wait_until(settled, 10, f"{live.node.name}'s initial AOF rewrite")


def test_exec_starts_a_replica_of_the_master_the_sentinels_name(
    shell: list[str], script: Path, procs: Processes, world: World
) -> None:
    b = world.b
    # Rendered as the deploy-time master (no replicaof line at all).
    me = procs.redis("a", procs.topology(free_port()), 0)
    assert replicaof_lines(me.conf) == []
    sentinels = [world.s1.port, world.s2.port, world.s3.port]
    start_with_script(
        shell, script, me, script_env(procs, port=me.port, sentinels=sentinels, deploy_master=me.port, conf=me.conf)
    )
    procs.wait_ready(me)

    role = procs.client(me.port).execute_command("ROLE")
    assert role[:3] == ["slave", LOCALHOST, b.port]
    wait_until(
        lambda: procs.client(me.port).execute_command("ROLE")[3] == "connected",
        10,
        f"the replication link to B\n{me.log_tail()}",
    )
    assert replicaof_lines(me.conf) == [f"replicaof {LOCALHOST} {b.port}"]
    # The script stays as the parent (it hands over on SIGTERM); redis-server is its child.
    assert me.process is not None and me.process.poll() is None
    # Its other child is the self-fence (fence.sh).
    kids = children(me.process.pid)
    assert [Path(f"/proc/{pid}/exe").resolve().name[:5] for pid in kids].count("redis") == 1
    assert [pid for pid in kids if b"fence.sh" in Path(f"/proc/{pid}/cmdline").read_bytes()] != []
    assert len(kids) == 2
    wait_aof_settled(procs, me)


def test_exec_starts_as_master_when_the_sentinels_name_this_node(
    shell: list[str], script: Path, procs: Processes
) -> None:
    # Rendered as a replica of a node that no longer exists ...
    topology = procs.topology(free_port(), free_port())
    me = procs.redis("d", topology, 1)
    assert replicaof_lines(me.conf) == [f"replicaof {LOCALHOST} {topology.master.port}"]
    # ... while the Sentinels (failed over) name this node.
    sentinel = procs.start(procs.sentinel("s4", procs.topology(me.port)))
    env = script_env(procs, port=me.port, sentinels=[sentinel.port], deploy_master=topology.master.port, conf=me.conf)
    start_with_script(shell, script, me, env)
    procs.wait_ready(me)

    assert procs.client(me.port).execute_command("ROLE")[0] == "master"
    assert replicaof_lines(me.conf) == []
    assert me.process is not None and me.process.poll() is None


# --- preStop: hand mastership over before a planned stop ------------------------------


def test_prestop_hands_mastership_to_a_replica(shell: list[str], script: Path, procs: Processes) -> None:
    topology = procs.topology(free_port(), free_port())
    master = procs.start(procs.redis("m", topology, 0))
    replica = procs.start(procs.redis("r", topology, 1))
    wait_until(
        lambda: procs.client(replica.port).info("replication")["master_link_status"] == "up",
        10,
        "the replica's link",
    )
    # One Sentinel, so quorum 1: the hand-over asks only a Sentinel that sees a majority.
    sentinel = procs.start(procs.sentinel("s", topology, quorum=1))

    def replica_known() -> bool:
        replicas = procs.client(sentinel.port).execute_command("SENTINEL", "REPLICAS", procs.settings.master_name)
        fields = [dict(zip(r[::2], r[1::2], strict=True)) for r in replicas]
        return any(int(f["port"]) == replica.port and f["flags"] == "slave" for f in fields)

    wait_until(replica_known, 15, "the Sentinel to know the replica", interval=0.2)
    procs.client(master.port).set("before-handover", "kept")

    def env(port: int) -> dict[str, str]:
        return script_env(
            procs, port=port, sentinels=[sentinel.port], deploy_master=master.port, REDIS_HA_FAILOVER_WAIT="20"
        )

    # On a replica the hook does nothing.
    prestop(shell, script, env(replica.port))
    assert procs.client(master.port).execute_command("ROLE")[0] == "master"
    assert sentinel_master(procs, sentinel) == (LOCALHOST, master.port)

    # On the master it returns only once another node is master and this one follows it.
    started = time.monotonic()
    result = prestop(shell, script, env(master.port))
    assert time.monotonic() - started < 25, result.stderr
    assert sentinel_master(procs, sentinel) == (LOCALHOST, replica.port)
    assert procs.client(replica.port).execute_command("ROLE")[0] == "master"
    assert procs.client(master.port).execute_command("ROLE")[:3] == ["slave", LOCALHOST, replica.port]
    with pytest.raises(redis.ReadOnlyError):
        procs.client(master.port).set("after-handover", "refused")
    assert procs.client(replica.port).get("before-handover") == "kept"
    # Writes are no longer held on the old master: a read-only command answers at once.
    assert procs.client(master.port).get("before-handover") == "kept"


def test_sigterm_to_the_running_master_hands_over_before_redis_stops(
    shell: list[str], script: Path, procs: Processes
) -> None:
    """A container stop (`docker stop`, a replaced container, a deleted pod) sends SIGTERM
    to the script: it hands over first, then stops redis-server, and exits with it."""
    topology = procs.topology(free_port(), free_port())
    master = procs.redis("m", topology, 0)
    replica = procs.start(procs.redis("r", topology, 1))
    sentinel = procs.start(procs.sentinel("s", topology, quorum=1))
    env = script_env(
        procs,
        port=master.port,
        sentinels=[sentinel.port],
        deploy_master=master.port,
        conf=master.conf,
        REDIS_HA_FAILOVER_WAIT="20",
    )
    start_with_script(shell, script, master, env)
    procs.wait_ready(master)
    wait_until(
        lambda: procs.client(replica.port).info("replication")["master_link_status"] == "up", 15, "the replica's link"
    )

    def replica_known() -> bool:
        replicas = procs.client(sentinel.port).execute_command("SENTINEL", "REPLICAS", procs.settings.master_name)
        return any(int(dict(zip(r[::2], r[1::2], strict=True))["port"]) == replica.port for r in replicas)

    wait_until(replica_known, 15, "the Sentinel to know the replica", interval=0.2)
    for i in range(200):
        procs.client(master.port).set(f"before-stop:{i}", i)
    assert master.process is not None
    [server] = [pid for pid in children(master.process.pid) if Path(f"/proc/{pid}/exe").resolve().name[:5] == "redis"]
    master.process.terminate()
    master.process.wait(timeout=SCRIPT_TIMEOUT + 20)
    log = master.log.read_text(errors="replace")
    assert "stop requested" in log and "is the master after" in log, log[-3000:]
    # The self-fence ran beside it and never fenced the master a Sentinel named.
    assert "redis-ha-fence: watching" in log and "FENCED" not in log, log[-3000:]
    # redis-server was stopped only after the hand-over, and the script exited with it.
    assert not Path(f"/proc/{server}").exists()
    assert sentinel_master(procs, sentinel) == (LOCALHOST, replica.port)
    assert procs.client(replica.port).execute_command("ROLE")[0] == "master"
    assert all(procs.client(replica.port).get(f"before-stop:{i}") == str(i) for i in range(200))


def test_switchover_on_a_replica_refuses_and_names_the_master(shell: list[str], script: Path, world: World) -> None:
    env = script_env(
        world.procs,
        port=world.c.port,
        sentinels=[world.s1.port, world.s2.port],
        deploy_master=world.c.port,
    )
    result = subprocess.run(
        [*shell, str(script), "switchover"], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT
    )
    assert result.returncode == 3, result.stderr
    assert f"{LOCALHOST}:{world.b.port} is the master" in result.stderr
    master = subprocess.run(
        [*shell, str(script), "master"], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT
    )
    assert master.returncode == 0 and master.stdout.split() == [LOCALHOST, str(world.b.port)], master.stderr


# --- TLS: the same decisions and replication with the plain-text ports closed ---------


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a node certificate for 127.0.0.1, made with the openssl CLI (the stack
    makes them with pulumi_tls, which needs its provider)."""
    assert shutil.which("openssl"), "openssl is needed to make test certificates"
    directory = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)

    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=redis-ha test CA", "-days", "2", "-out", "ca.crt")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "tls.key")
    openssl("req", "-new", "-key", "tls.key", "-subj", "/CN=redis-ha test node", "-out", "tls.csr")
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl(
        *("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-days", "2", "-extfile", "ext.cnf", "-out", "tls.crt"),
    )
    return directory


@pytest.fixture
def tls_procs(tmp_path: Path, settings: Settings, role_passwords: dict[str, str], tls_dir: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path, dataclasses.replace(settings, tls=True), role_passwords, tls_dir=tls_dir)
    try:
        yield processes
    finally:
        processes.stop_all()


def test_tls_start_script_asks_the_sentinels_and_replicates_over_tls(
    shell: list[str], tmp_path: Path, tls_procs: Processes, tls_dir: Path
) -> None:
    procs = tls_procs
    script = install(
        tmp_path / "script", "redis-start.sh", rendering.start_env(procs.settings, procs.template, K8S_PATHS)
    )
    assert env_values(script.parent)["REDIS_HA_TLS_ARGS"] == "--tls --cacert /etc/redis-ha/ca.crt"
    b_topology = procs.topology(free_port())
    b = procs.start(procs.redis("b", b_topology, 0))
    sentinel = procs.start(procs.sentinel("s", b_topology))

    # tls-replication: the Sentinel's own links to Redis are TLS too.
    def sentinel_sees_master() -> bool:
        state = procs.client(sentinel.port).execute_command("SENTINEL", "MASTER", procs.settings.master_name)
        fields = dict(zip(state[::2], state[1::2], strict=True))
        return fields["flags"] == "master" and fields["role-reported"] == "master"

    wait_until(sentinel_sees_master, 10, f"the Sentinel's TLS link to B\n{sentinel.log_tail()}")
    # `port 0`: nothing answers in plain text.
    with pytest.raises(redis.ConnectionError):
        connect(b.port, "admin", procs.passwords["admin"]).ping()
    with pytest.raises(redis.ConnectionError):
        connect(sentinel.port, "admin", procs.passwords["admin"]).ping()

    me = procs.redis("a", procs.topology(free_port()), 0)
    env = script_env(
        procs,
        port=me.port,
        sentinels=[sentinel.port],
        deploy_master=me.port,
        conf=me.conf,
        REDIS_HA_TLS_ARGS=f"--tls --cacert {tls_dir / 'ca.crt'}",
    )
    assert decide(shell, script, env) == f"replicaof {LOCALHOST} {b.port}"
    start_with_script(shell, script, me, env)
    procs.wait_ready(me)
    # tls-replication: the replica's link to B is TLS, and it comes up.
    wait_until(
        lambda: procs.client(me.port).execute_command("ROLE")[:4] == ["slave", LOCALHOST, b.port, "connected"],
        10,
        f"the TLS replication link\n{me.log_tail()}",
    )
    wait_aof_settled(procs, me)
