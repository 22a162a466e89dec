"""Fixtures for the unit tests: random passwords and real Redis/Sentinel processes
(tests/support/live.py). Every process is terminated in fixture teardown, whatever the
tests did."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_ha.components import rendering, security
from redis_ha.components.node_files import FENCE
from redis_ha.components.node_files import script as node_script
from redis_ha.components.program import naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_sentinel_topology

from tests.support.live import LIVE_CONFIG, LiveDeployment, bare_command_table, free_port, make_password
from tests.support.node_scripts import install
from tests.support.role_script import K8S_PATHS, SHELLS, Processes, World, prod_settings

# The S3-compatible server of the backup tests (built from its Go module): a fixture.
from tests.support.s3 import s3_server  # noqa: F401
from tests.verify import acl_sweep


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    """A random password for every user of the live settings, new each session."""
    settings = load_settings(LIVE_CONFIG)
    return {user: make_password() for user in security.user_names(settings)}


@pytest.fixture(scope="module")
def backup_password() -> str:
    """The password the backup engine's live tests give the `backup` user they set up
    with exactly the engine's documented commands (backup_helpers), new each module."""
    return make_password()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[LiveDeployment]:
    """Master + replica (link up) + one Sentinel, shared by the read-mostly tests of a module."""
    live = LiveDeployment(tmp_path_factory.mktemp("deployment"), passwords)
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture
def fresh_deployment(tmp_path: Path, passwords: dict[str, str]) -> Iterator[LiveDeployment]:
    """A deployment of its own, for tests that fail over or restart nodes."""
    live = LiveDeployment(tmp_path, passwords)
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture
def lone_master(tmp_path: Path, passwords: dict[str, str]) -> Iterator[LiveDeployment]:
    """Only the master is started; the test may stop it."""
    live = LiveDeployment(tmp_path, passwords)
    try:
        yield live.start(replica=False, sentinel=False)
    finally:
        live.stop()


@pytest.fixture(scope="session")
def command_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, acl_sweep.ServerCommand]]:
    """The command tables of Debian's redis-server and redis-sentinel (7.0), by server
    kind as components/security.py names them: `redis`, `sentinel`, `cluster` (a
    cluster node runs the same redis-server)."""
    directory = tmp_path_factory.mktemp("command-tables")
    redis_table = bare_command_table(directory, "redis-server")
    return {
        "redis": redis_table,
        "sentinel": bare_command_table(directory, "redis-sentinel"),
        "cluster": redis_table,
    }


# --- the start-script tests' settings, passwords, shells and processes -----------------


@pytest.fixture(scope="module")
def settings() -> Settings:
    return prod_settings()


@pytest.fixture(scope="module")
def role_passwords(settings: Settings) -> dict[str, str]:
    return {user: make_password() for user in security.user_names(settings)}


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> list[str]:
    command = SHELLS[request.param]
    assert shutil.which(command[0]), f"{command[0]} is needed to run the start script"
    return command


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, role_passwords: dict[str, str]
) -> Iterator[World]:
    procs = Processes(tmp_path_factory.mktemp("world"), settings, role_passwords)
    try:
        b_topology = procs.topology(free_port())
        c_topology = procs.topology(free_port())
        yield World(
            procs=procs,
            b=procs.start(procs.redis("b", b_topology, 0)),
            c=procs.start(procs.redis("c", c_topology, 0)),
            s1=procs.start(procs.sentinel("s1", b_topology)),
            s2=procs.start(procs.sentinel("s2", b_topology)),
            s3=procs.start(procs.sentinel("s3", c_topology)),
            dead=free_port(),
        )
    finally:
        procs.stop_all()


@pytest.fixture
def procs(tmp_path: Path, settings: Settings, role_passwords: dict[str, str]) -> Iterator[Processes]:
    """Processes of one test's own, for the tests that start or fail over a node."""
    processes = Processes(tmp_path, settings, role_passwords)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Path:
    """The start script exactly as the ConfigMap carries it, with the node.env of the
    prod stack's Redis pods and the fence beside it."""
    topology = build_sentinel_topology(settings, naming_for(settings))
    path = install(
        tmp_path_factory.mktemp("script"), "redis-start.sh", rendering.start_env(settings, topology, K8S_PATHS)
    )
    (path.parent / FENCE).write_text(node_script(FENCE))
    return path
