"""Fixtures of the program tests, each run once per module under Pulumi's mocks: the
prod stack's program without and with TLS, and the Redis Cluster topology (alone and
next to Sentinel) on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import program as support
from tests.support.cluster_program import BOTH, CLUSTER, dev_config, prod_config
from tests.support.prod_program import TLS_OVERRIDES
from tests.support.program import ProgramRun, run_program, stack_config, use_mocks


@pytest.fixture(scope="module")
def tls_provider_outputs() -> Iterator[None]:
    with support.mocked_tls_outputs():
        yield


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return run_program(stack_config("prod"), stack="prod")


@pytest.fixture(scope="module")
def prod_tls(tls_provider_outputs: None) -> ProgramRun:
    return run_program({**stack_config("prod"), **TLS_OVERRIDES}, stack="prod")


@pytest.fixture(scope="module", params=["prod", "prod_tls"])
def any_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


@pytest.fixture
def mocks() -> ProgramRun:
    return use_mocks(stack="prod")


@pytest.fixture(scope="module")
def dev_cluster() -> ProgramRun:
    return run_program(dev_config(**CLUSTER), stack="dev")


@pytest.fixture(scope="module")
def dev_both() -> ProgramRun:
    return run_program(dev_config(**BOTH), stack="dev")


@pytest.fixture(scope="module")
def prod_cluster() -> ProgramRun:
    return run_program(prod_config(**CLUSTER), stack="prod")


@pytest.fixture(scope="module")
def prod_both() -> ProgramRun:
    return run_program(prod_config(**BOTH), stack="prod")
