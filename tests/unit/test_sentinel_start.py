"""sentinel-start.sh, the Sentinels' command on both backends, against real processes.

The script under test is the one the prod stack ships (rendered with the Kubernetes
paths); the environment points it at a seed file (the rendered sentinel.conf), a state
file, and Sentinels and Redis nodes on 127.0.0.1 (see test_role_script.py, whose
processes and fixtures this module reuses). Each case runs under dash and busybox ash.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from redis_ha.components import rendering
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.topology import build_sentinel_topology

from tests.support.live import free_port, wait_until
from tests.support.node_scripts import env_values, install
from tests.support.role_script import LOCALHOST, SCRIPT_TIMEOUT, Processes, World


@pytest.fixture(scope="module")
def sentinel_script(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Path:
    topology = build_sentinel_topology(settings, naming_for(settings))
    env = rendering.sentinel_start_env(settings, topology, K8S_LAYOUT.sentinel)
    return install(tmp_path_factory.mktemp("sentinel-script"), "sentinel-start.sh", env)


def seed(procs: Processes, directory: Path, master_port: int) -> Path:
    """The rendered sentinel.conf of a Sentinel whose deploy-time master is on `master_port`."""
    live = procs.sentinel(directory.name, procs.topology(master_port))
    return live.conf


def run(
    shell: list[str],
    script: Path,
    seed_file: Path,
    state: Path,
    procs: Processes,
    *,
    peers: list[int],
    redis_nodes: list[int] = (),  # type: ignore[assignment]
    dry_run: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "REDIS_HA_SENTINEL_SEED": str(seed_file),
        "REDIS_HA_SENTINEL_STATE": str(state),
        "REDIS_HA_SENTINEL_PASSWORD_FILE": str(seed_file.parent / rendering.SENTINEL_CLIENT_PASSWORD_FILE),
        "REDIS_HA_MASTER_NAME": procs.settings.master_name,
        "REDIS_HA_SENTINELS": " ".join(f"{LOCALHOST}:{p}" for p in peers),
        "REDIS_HA_REDIS_NODES": " ".join(f"{LOCALHOST}:{p}" for p in redis_nodes),
        # Not 127.0.0.1: that would make every peer this Sentinel itself.
        "REDIS_HA_HOSTNAME": "this-sentinel.invalid",
        "REDIS_HA_CLI_TIMEOUT": "2",
        "REDIS_HA_DRY_RUN": "1" if dry_run else "0",
    }
    result = subprocess.run([*shell, str(script)], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result


def monitor_line(conf: Path, name: str) -> list[str]:
    lines = [line.split() for line in conf.read_text().splitlines() if line.startswith(f"sentinel monitor {name} ")]
    assert len(lines) == 1, conf.read_text()
    return lines[0]


def test_script_parses_in_the_shell(shell: list[str], sentinel_script: Path) -> None:
    result = subprocess.run([*shell, "-n", str(sentinel_script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shipped_defaults_keep_state_on_the_claim_and_seed_from_the_secret(sentinel_script: Path) -> None:
    env = env_values(sentinel_script.parent)
    assert env["REDIS_HA_SENTINEL_SEED"] == "/etc/redis-ha/sentinel.conf"
    assert env["REDIS_HA_SENTINEL_STATE"] == "/data/sentinel.conf"
    # A child, not exec: the script watches the delivered secrets while Sentinel runs.
    assert 'supervise : "${REDIS_HA_SERVER:-redis-server}" "$state" --sentinel' in sentinel_script.read_text()
    supervise = (sentinel_script.parent / "lib.sh").read_text().split("supervise() {", 1)[1]
    assert '\n    "$@" &\n    child=$!' in supervise


def test_without_state_the_other_sentinels_majority_names_the_master(
    shell: list[str],
    sentinel_script: Path,
    procs: Processes,
    world: World,
    tmp_path: Path,
) -> None:
    dead = free_port()
    seed_file = seed(procs, tmp_path / "new", dead)
    state = tmp_path / "state.conf"
    result = run(shell, sentinel_script, seed_file, state, procs, peers=[world.s1.port, world.s2.port, world.s3.port])
    name = procs.settings.master_name
    assert monitor_line(state, name)[3:5] == [LOCALHOST, str(world.b.port)], result.stderr
    assert "the other Sentinels name" in result.stderr
    # Everything else is the rendered file.
    rest = [line for line in state.read_text().splitlines() if not line.startswith(f"sentinel monitor {name} ")]
    assert rest == [
        line for line in seed_file.read_text().splitlines() if not line.startswith(f"sentinel monitor {name} ")
    ]


def test_without_state_or_sentinels_the_node_that_reports_master_is_monitored(
    shell: list[str],
    sentinel_script: Path,
    procs: Processes,
    world: World,
    tmp_path: Path,
) -> None:
    seed_file = seed(procs, tmp_path / "new", free_port())
    state = tmp_path / "state.conf"
    result = run(
        shell, sentinel_script, seed_file, state, procs, peers=[free_port()], redis_nodes=[world.b.port, free_port()]
    )
    assert monitor_line(state, procs.settings.master_name)[3:5] == [LOCALHOST, str(world.b.port)], result.stderr
    # Two masters answering (B and C are independent): no guess, the deploy-time master.
    state.unlink()
    result = run(
        shell, sentinel_script, seed_file, state, procs, peers=[free_port()], redis_nodes=[world.b.port, world.c.port]
    )
    assert state.read_text() == seed_file.read_text(), result.stderr
    assert "deploy-time master" in result.stderr


def test_a_read_only_seed_gives_a_state_sentinel_can_rewrite(
    shell: list[str],
    sentinel_script: Path,
    procs: Processes,
    tmp_path: Path,
) -> None:
    """On Kubernetes the init container copies the seed from a 0440 Secret under umask
    077 (mode 0400); Sentinel exits at once when it cannot rewrite its config file."""
    seed_file = seed(procs, tmp_path / "new", free_port())
    seed_file.chmod(0o400)
    state = tmp_path / "state.conf"
    result = run(shell, sentinel_script, seed_file, state, procs, peers=[free_port()])
    assert "deploy-time master" in result.stderr
    assert state.read_text() == seed_file.read_text()
    assert state.stat().st_mode & 0o777 == 0o600


def test_state_keeps_what_sentinel_learned_and_takes_settings_from_the_rendered_file(
    shell: list[str],
    sentinel_script: Path,
    procs: Processes,
    tmp_path: Path,
) -> None:
    name = procs.settings.master_name
    seed_file = seed(procs, tmp_path / "new", free_port())
    state = tmp_path / "state.conf"
    state.write_text(
        "port 1\n"
        f"sentinel monitor {name} 10.0.0.9 6380 7\n"
        f"sentinel down-after-milliseconds {name} 999999\n"
        "sentinel myid 0123456789abcdef0123456789abcdef01234567\n"
        "sentinel current-epoch 5\n"
        f"sentinel config-epoch {name} 4\n"
        f"sentinel leader-epoch {name} 5\n"
        f"sentinel known-replica {name} 10.0.0.8 6379\n"
        f"sentinel known-sentinel {name} 10.0.0.7 26379 fedcba9876543210fedcba9876543210fedcba98\n"
        "sentinel known-replica other-master 10.0.0.1 6379\n"
    )
    run(shell, sentinel_script, seed_file, state, procs, peers=[free_port()])
    merged = state.read_text().splitlines()
    # The current master from the state, the quorum from the settings.
    assert monitor_line(state, name) == ["sentinel", "monitor", name, "10.0.0.9", "6380", str(procs.settings.quorum)]
    for kept in (
        "sentinel myid 0123456789abcdef0123456789abcdef01234567",
        "sentinel current-epoch 5",
        f"sentinel config-epoch {name} 4",
        f"sentinel leader-epoch {name} 5",
        f"sentinel known-replica {name} 10.0.0.8 6379",
        f"sentinel known-sentinel {name} 10.0.0.7 26379 fedcba9876543210fedcba9876543210fedcba98",
    ):
        assert kept in merged
    assert f"sentinel down-after-milliseconds {name} {procs.settings.down_after_milliseconds}" in merged
    assert f"sentinel down-after-milliseconds {name} 999999" not in merged
    assert "port 1" not in merged and "sentinel known-replica other-master 10.0.0.1 6379" not in merged
    # Known peers come after the monitor line they refer to.
    assert merged.index(" ".join(monitor_line(state, name))) < merged.index(
        f"sentinel known-replica {name} 10.0.0.8 6379"
    )


def test_a_sentinel_started_from_its_state_names_the_current_master_at_once(
    shell: list[str],
    sentinel_script: Path,
    procs: Processes,
    world: World,
    tmp_path: Path,
) -> None:
    """Deploy-time master C, state (a failover since) says B: B is named from the first answer on."""
    live = procs.sentinel("fresh", procs.topology(world.c.port))
    state = tmp_path / "state" / "sentinel.conf"
    state.parent.mkdir()
    name = procs.settings.master_name
    myid = "00000000000000000000000000000000000000aa"
    state.write_text(f"sentinel monitor {name} {LOCALHOST} {world.b.port} 2\nsentinel myid {myid}\n")
    with live.log.open("ab") as log:
        env = {
            "PATH": os.environ["PATH"],
            "REDIS_HA_SENTINEL_SEED": str(live.conf),
            "REDIS_HA_SENTINEL_STATE": str(state),
            "REDIS_HA_SENTINEL_PASSWORD_FILE": str(live.conf.parent / rendering.SENTINEL_CLIENT_PASSWORD_FILE),
            "REDIS_HA_SENTINELS": f"{LOCALHOST}:{free_port()}",
            "REDIS_HA_HOSTNAME": "this-sentinel.invalid",
            "REDIS_HA_CLI_TIMEOUT": "2",
        }
        live.process = subprocess.Popen([*shell, str(sentinel_script)], env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.nodes.append(live)
    procs.wait_ready(live)
    client = procs.client(live.port, "sentinel-client")
    assert client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name) == [LOCALHOST, str(world.b.port)]
    assert procs.client(live.port).execute_command("SENTINEL", "MYID") == myid
    # It runs from the state file and rewrites it there.
    wait_until(lambda: "# Generated by CONFIG REWRITE" in state.read_text(), 10, "Sentinel to rewrite its state file")
