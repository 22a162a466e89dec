"""Run the real Pulumi program (`redis_ha.stack.run`, what `__main__.py` calls) under
Pulumi's mocks.

No Pulumi engine exists on these machines; the SDK's mock monitor stands in for it.
The runner lives in redis_ha/mocked_program.py, where `redis-ha render` uses it too;
this module keeps the tests' import path, and reads the stack files of this repository
(ROOT) whatever the current directory is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from redis_ha import mocked_program
from redis_ha.mocked_program import (
    PROJECT,
    SECRET_SIG,
    ProgramRun,
    Registered,
    _Mocks,
    _RecordingMonitor,
    _unwrap,
    run_program,
    use_mocks,
)

# The repository: its Pulumi.<stack>.yaml files are the tests' stack configs.
ROOT = Path(__file__).resolve().parents[2]
# The program's entry point as Pulumi runs it (a shim calling redis_ha.stack.run).
MAIN = ROOT / "__main__.py"


def stack_config(stack: str, project_dir: str | os.PathLike[str] | None = ROOT) -> dict[str, Any]:
    """The `redis-ha:*` values of Pulumi.<stack>.yaml of this repository (by default)."""
    return mocked_program.stack_config(stack, project_dir)


__all__ = [
    "MAIN",
    "PROJECT",
    "ROOT",
    "SECRET_SIG",
    "ProgramRun",
    "Registered",
    "_Mocks",
    "_RecordingMonitor",
    "_unwrap",
    "run_program",
    "stack_config",
    "use_mocks",
]
