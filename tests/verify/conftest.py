"""Fixtures of the post-deploy verification suite, driven only by the stack outputs.

pulumi stack output --json --show-secrets > outputs.json
redis-ha-verify --outputs outputs.json        # or: pytest tests/verify --outputs outputs.json
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Relative imports: the suite is tests.verify in the repository and redis_ha_verify
# once installed (pytest imports it under whichever name its __init__.py files give).
from . import faults
from .access import Node, Outputs, Redactor
from .celery_runtime import CeleryRuntime, Worker, celery_runtime
from .topology_state import LiveState, wait_healthy


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--outputs",
        default=os.environ.get("REDIS_HA_OUTPUTS", "outputs.json"),
        help="stack outputs JSON (pulumi stack output --json --show-secrets)",
    )


def _outputs(config: pytest.Config) -> Outputs:
    return Outputs.load(config.getoption("--outputs"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "destructive: stops, kills or disconnects nodes; opt in on production")
    config.addinivalue_line(
        "markers",
        "topology(*parts): runs only against a deployment with one of these parts (sentinel, cluster); "
        "unmarked tests check the Sentinel group",
    )
    path = Path(config.getoption("--outputs"))
    if path.exists():
        redactor = Redactor(Outputs.load(path).passwords.values())
        for name in ("testinfra", ""):
            logging.getLogger(name).addFilter(redactor)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per node, named after it, for tests that take `redis_node`,
    `cluster_node`, `sentinel_node`, `replica_spec` or `role`."""
    outputs = _outputs(metafunc.config)
    params = {
        "redis_spec": outputs.nodes("redis"),
        "cluster_spec": outputs.nodes("cluster"),
        "sentinel_spec": outputs.nodes("sentinel"),
        "role": outputs.deployment["roles"],
    }
    for name, values in params.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values, ids=[v["name"] for v in values])
    if "acl_target" in metafunc.fixturenames:
        # (node, user) for every user of every Redis node, Sentinel and cluster node; a
        # None user when the outputs publish no allowlists (the case then fails).
        servers = (outputs.deployment.get("acl") or {}).get("servers", {})
        targets = [
            (spec, user)
            for spec in outputs.deployment["nodes"]
            if spec["kind"] in ("redis", "sentinel", "cluster")
            for user in (servers.get(spec["kind"]) or [None])
        ]
        metafunc.parametrize("acl_target", targets, ids=[f"{spec['name']}-{user}" for spec, user in targets])


def deployed_parts(outputs: Outputs) -> set[str]:
    """`sentinel` and/or `cluster`, from the outputs' topology."""
    topology = outputs.deployment.get("topology", "sentinel")
    return {"sentinel", "cluster"} if topology == "both" else {topology}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) what the deployment does not have: Redis Cluster cases on a
    Sentinel-only deployment, Sentinel cases on a cluster-only one."""
    deployed = deployed_parts(_outputs(config))
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("topology")
        wanted = set(marker.args) if marker else {"sentinel"}
        (selected if wanted & deployed else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope="session")
def outputs(pytestconfig: pytest.Config) -> Outputs:
    return _outputs(pytestconfig)


@pytest.fixture(scope="session")
def redis_nodes(outputs: Outputs) -> list[Node]:
    return [Node(spec, outputs) for spec in outputs.nodes("redis")]


@pytest.fixture(scope="session")
def sentinels(outputs: Outputs) -> list[Node]:
    return [Node(spec, outputs) for spec in outputs.nodes("sentinel")]


@pytest.fixture(scope="session")
def cluster_nodes(outputs: Outputs) -> list[Node]:
    return [Node(spec, outputs) for spec in outputs.nodes("cluster")]


@pytest.fixture
def cluster_node(cluster_spec: dict, outputs: Outputs) -> Node:
    return Node(cluster_spec, outputs)


@pytest.fixture
def redis_node(redis_spec: dict, outputs: Outputs) -> Node:
    return Node(redis_spec, outputs)


@pytest.fixture
def sentinel_node(sentinel_spec: dict, outputs: Outputs) -> Node:
    return Node(sentinel_spec, outputs)


@pytest.fixture
def master(outputs: Outputs, sentinels: list[Node], redis_nodes: list[Node]) -> Node:
    """The node the first reachable Sentinel names as master (not the deploy-time role)."""
    name = outputs.deployment["masterName"]
    for sentinel in sentinels:
        reply = sentinel.cli("sentinel-client", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).splitlines()
        if len(reply) == 2:
            matches = [n for n in redis_nodes if n.hostname == reply[0]]
            assert matches, f"{sentinel.name} names {reply[0]} as master, which is not a deployed node"
            return matches[0]
    raise AssertionError("no Sentinel answered GET-MASTER-ADDR-BY-NAME")


@pytest.fixture
def replicas(master: Node, redis_nodes: list[Node]) -> list[Node]:
    return [n for n in redis_nodes if n.name != master.name]


@pytest.fixture
def exporter(outputs: Outputs) -> Node:
    specs = outputs.nodes("exporter")
    assert specs, "the deployment has no exporter (settings: exporter false?)"
    return Node(specs[0], outputs)


@pytest.fixture
def live(outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]) -> Iterator[LiveState]:
    """For the destructive drills: a healthy topology before the drill; after it, every
    node is started again and the topology must be healthy once more (each drill
    proves recovery)."""
    state = wait_healthy(outputs, redis_nodes, sentinels, timeout=90)
    yield state
    for node in [*redis_nodes, *sentinels]:
        faults.start(node)  # a no-op for running nodes
    wait_healthy(outputs, redis_nodes, sentinels, timeout=120)


@pytest.fixture(scope="module")
def runtime(outputs: Outputs) -> Iterator[CeleryRuntime]:
    """Where the Celery producer and worker of a module's cases run (celery_runtime.py),
    shared by test_app_celery.py and test_app_failover.py. After the module, what its
    run left in Redis is removed, and the runtime is closed even if that fails."""
    runtime = celery_runtime(outputs)
    try:
        yield runtime
        runtime.cleanup()
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def worker(runtime: CeleryRuntime) -> Iterator[Worker]:
    """One Celery worker for all the cases of a module: in test_app_failover.py it has
    to survive every drill of the module."""
    with runtime.worker() as worker:
        yield worker
