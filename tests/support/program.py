"""Run the real Pulumi program (`__main__.py`) under Pulumi's mocks.

No Pulumi engine exists on these machines; the SDK's mock monitor stands in for it.
The runner lives in components/mocked_program.py, where `redis-ha render` uses it
too; this module keeps the tests' import path.
"""

from components.mocked_program import (
    MAIN,
    PROJECT,
    ROOT,
    SECRET_SIG,
    ProgramRun,
    Registered,
    _Mocks,
    _RecordingMonitor,
    _unwrap,
    run_program,
    stack_config,
    use_mocks,
)

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
