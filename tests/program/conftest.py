"""Fixtures of the program tests: the prod stack's program, run once per module under
Pulumi's mocks, without and with TLS.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import program as support
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
