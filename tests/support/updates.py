"""A second run of the program for the same stack, as `pulumi up` after a config change.

The engine keeps the state of `random:RandomPassword` resources between updates, so
their results do not change; under the mocks every run generates new ones. This runs
the program with the previous run's passwords handed back by resource name, so that
the applier's update (tests/support/applier.py) sees only what the change really
changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.support import program as support
from tests.support.program import ProgramRun, run_program

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


def run_update(config: Mapping[str, Any], previous: ProgramRun, stack: str = "dev") -> ProgramRun:
    original = support._Mocks.new_resource

    def new_resource(self: Any, args: Any) -> tuple[str, dict[str, Any]]:
        resource_id, state = original(self, args)
        if args.typ == RANDOM_PASSWORD and args.name in previous.passwords:
            state["result"] = previous.passwords[args.name]
            self.run.passwords[args.name] = previous.passwords[args.name]
        return resource_id, state

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(support._Mocks, "new_resource", new_resource)
        return run_program(config, stack=stack)
