"""Run the real Pulumi program (`redis_ha.stack.run`, what `__main__.py` calls) under
Pulumi's mocks.

No Pulumi engine exists on these machines; the SDK's mock monitor stands in for it.
The runner lives in redis_ha/mocked_program.py, where `redis-ha render` uses it too;
this module keeps the tests' import path, and reads the stack files of this repository
(ROOT) whatever the current directory is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from redis_ha import mocked_program
from redis_ha.mocked_program import (
    PROJECT,
    SECRET_KEY,
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


def ints(value: Any) -> Any:
    """The wire format carries every number as a float; manifests want integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [ints(v) for v in value]
    return value


def manifest(resource: Registered) -> dict[str, Any]:
    """The Kubernetes object the provider would send: the registered inputs of a
    `kubernetes:*` resource are the camelCase manifest itself (apiVersion, kind, ...)."""
    return ints(resource.inputs)


def is_secret(wire_value: Any) -> bool:
    """Whether a wire-format value is a secret's envelope (registered as a secret)."""
    return isinstance(wire_value, dict) and wire_value.get(SECRET_KEY) == SECRET_SIG


def plain_strings(value: Any) -> list[str]:
    """Every string in a wire-format value that is NOT inside a secret: dict keys as
    well as values, so that a password leaked into a name is found too."""
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *plain_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in plain_strings(v)]
    return [value] if isinstance(value, str) else []


def mock_pem(kind: str, name: str) -> str:
    """The recognisable PEM text mocked_tls_outputs gives resource `name`."""
    return f"-----BEGIN {kind}-----\nmock-{name}-{kind.lower().replace(' ', '-')}\n-----END {kind}-----\n"


@contextmanager
def mocked_tls_outputs() -> Iterator[None]:
    """pulumi_tls computes its PEMs in the provider; under mocks a resource's outputs
    are its inputs, so stand in for the provider with recognisable PEM text."""
    original = _Mocks.new_resource

    def new_resource(self: Any, args: Any) -> tuple[str, dict[str, Any]]:
        resource_id, state = original(self, args)
        if args.typ == "tls:index/privateKey:PrivateKey":
            state["privateKeyPem"] = mock_pem("PRIVATE KEY", args.name)
        elif args.typ == "tls:index/certRequest:CertRequest":
            state["certRequestPem"] = mock_pem("CERTIFICATE REQUEST", args.name)
        elif args.typ.startswith("tls:index/") and args.typ.endswith("Cert"):
            state["certPem"] = mock_pem("CERTIFICATE", args.name)
        return resource_id, state

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Mocks, "new_resource", new_resource)
        yield


__all__ = [
    "MAIN",
    "PROJECT",
    "ROOT",
    "SECRET_KEY",
    "SECRET_SIG",
    "ProgramRun",
    "Registered",
    "_Mocks",
    "_RecordingMonitor",
    "_unwrap",
    "ints",
    "is_secret",
    "manifest",
    "mock_pem",
    "mocked_tls_outputs",
    "plain_strings",
    "run_program",
    "stack_config",
    "use_mocks",
]
