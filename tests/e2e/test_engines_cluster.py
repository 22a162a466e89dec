"""The engine matrix's Redis Cluster rows (docs/engines.md): the dev stack with
topology cluster (3 shards of a master and a replica) on each engine image of
tests/images/engines.txt, created by its own creation step, checked by the post-deploy
suite, and a master stopped: its replica takes over and the old master rejoins.
REDIS_HA_ENGINES selects the rows, as for tests/e2e/test_engines.py."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.e2e.day2 import Stack, deployed
from tests.support.e2e_stack import verify
from tests.support.engine_images import EngineImage, build, matrix_params, selected_images
from tests.verify.cluster_access import wait_healthy_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("test_images")]

IMAGES = matrix_params(selected_images())


@pytest.fixture(scope="module", params=IMAGES)
def engine_cluster(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    image: EngineImage = request.param
    build(image.tag)
    directory = tmp_path_factory.mktemp(f"cluster-{image.id}")
    with deployed(docker_client, directory, prefix="rhengc", topology="cluster", **image.settings()) as stack:
        wait_healthy_cluster(stack.outputs, stack.nodes("cluster"))
        yield stack


def test_cluster_is_created_and_verified(engine_cluster: Stack) -> None:
    logs = engine_cluster.applied.logs[f"{engine_cluster.name}-cluster-create"]
    assert "done: 6 nodes" in logs, logs[-2000:]
    result = verify(engine_cluster.outputs_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.endswith(", 0 do not") and int(summary.split()[1]) >= 55, summary


def test_cluster_failover(engine_cluster: Stack) -> None:
    selected = "master_stopped_replica_takes_over"
    result = verify(engine_cluster.outputs_path, "--destructive", "--", "-m", "destructive", "-k", selected)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary == "redis-ha-verify: 1 properties hold, 0 do not", summary
