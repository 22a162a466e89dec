"""Fixtures of the e2e tests: the Docker client, the test images and the dev stack,
deployed by tests/support/e2e_stack.py and always removed afterwards."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import docker
import pytest

from tests.support.e2e_stack import REDIS_IMAGE, ROOT, Deployment, deploy


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="session")
def test_images(docker_client: docker.DockerClient) -> None:
    subprocess.run(["bash", str(ROOT / "tests/images/build.sh")], check=True)
    # The e2e's Redis image: the default engine's (tests/support/e2e_stack.REDIS_IMAGE).
    subprocess.run(["bash", str(ROOT / "tests/images/engines.sh"), REDIS_IMAGE], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def dev_deployment(
    test_images: None, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    name = f"rhae2e-{secrets.token_hex(3)}"
    deployment = deploy(name, tmp_path_factory.mktemp("e2e"), docker_client)
    try:
        yield deployment
    finally:
        errors = deployment.applier.destroy(deployment.applied)
        assert not errors, f"teardown left resources behind: {errors}"
