"""Run the real Pulumi program (`redis_ha.stack.run`, what `__main__.py` calls) under
Pulumi's mocks.

The SDK's mock monitor stands in for the engine: every resource the program registers
is recorded with its type, name, parent, dependencies and inputs exactly as the engine
would receive them (secret inputs still wrapped), and the stack outputs are resolved.
No engine, no provider and no network is involved.

Two users: the tests (tests/support/program.py re-exports this module, because no
Pulumi engine can be installed on the test machines) and `redis-ha render`, which
shows a reviewer the very files the program hands to the providers.

The stack files (Pulumi.<stack>.yaml) are read from a project directory: the current
working directory unless one is given, so that an installed redis-ha works on the
stack files of any directory, not only in this repository.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings

from redis_ha import stack as program_stack

PROJECT = "redis-ha"
# The marker Pulumi's wire format puts on a secret value, and the key it stands under
# in the envelope that wraps the value.
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SECRET_KEY = "4dabf18193072939515e22adb298388d"


@dataclass
class Registered:
    """One resource registration as the engine would see it."""

    type: str
    name: str
    urn: str
    parent: str
    dependencies: list[str]
    provider: str  # the provider reference (urn::id), "" for the default provider
    inputs: dict[str, Any]  # plain values (secrets unwrapped)
    wire: dict[str, Any]  # the serialized inputs, secrets still wrapped


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # outputs whose value was marked secret
    secret_outputs: set[str] = field(default_factory=set)
    passwords: dict[str, str] = field(default_factory=dict)  # every generated password

    def of_type(self, token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == token]

    def by_name(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, got {len(matches)}"
        return matches[0]


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, run: ProgramRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            alphabet = string.ascii_letters + string.digits
            password = "".join(secrets.choice(alphabet) for _ in range(int(args.inputs.get("length", 32))))
            self.run.passwords[args.name] = password
            state["result"] = password
        if args.typ == "docker:index/network:Network":
            state.setdefault("name", args.name)
        return f"{args.name}_id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, []


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: _Mocks, run: ProgramRun) -> None:
        super().__init__(mocks)
        self.run = run

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            wire = json_format.MessageToDict(request.object)
            self.run.resources.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    provider=request.provider,
                    inputs=_unwrap(wire),
                    wire=wire,
                )
            )
        return response


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_KEY) == SECRET_SIG:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def project_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the stack files are: `directory`, else the current working directory."""
    return Path(directory) if directory is not None else Path.cwd()


def stack_file(stack: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """Pulumi.<stack>.yaml of the project directory (`directory`, else the current one)."""
    return project_directory(directory) / f"Pulumi.{stack}.yaml"


def stack_config(stack: str, project_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The `redis-ha:*` values of Pulumi.<stack>.yaml, without the namespace, from
    `project_dir` (default: the current working directory)."""
    data = yaml.safe_load(stack_file(stack, project_dir).read_text())
    return {k.split(":", 1)[1]: v for k, v in data["config"].items() if k.startswith(f"{PROJECT}:")}


def use_mocks(stack: str = "dev") -> ProgramRun:
    """Install the recording mocks without running the program (component tests)."""
    run = ProgramRun()
    mocks = _Mocks(run)
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=_RecordingMonitor(mocks, run))
    return run


def run_program(
    config: Mapping[str, Any],
    stack: str = "dev",
    run: ProgramRun | None = None,
    program: Callable[[], None] | None = None,
) -> ProgramRun:
    """Run the program (redis_ha.stack.run, or `program`: another program's body, such
    as an example's __main__.py) with `config` (keys without namespace) as the stack
    config.

    Pass `run` to keep what was recorded when the program raises."""
    run = run if run is not None else ProgramRun()
    mocks = _Mocks(run)
    pulumi_settings.ROOT.set(None)  # a fresh root Stack for every run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=_RecordingMonitor(mocks, run))
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    runtime_config.set_all_config(values, [k for k in values if k.endswith("Password")])

    @pulumi.runtime.test
    def body() -> pulumi.Output[Any]:
        (program or program_stack.run)()
        stack_outputs = pulumi_settings.get_root_resource().outputs  # type: ignore[union-attr]

        def collect(name: str, output: Any) -> pulumi.Output[Any]:
            out = pulumi.Output.from_input(output)

            async def is_secret() -> bool:
                return await out.is_secret()

            def store(pair: list[Any]) -> None:
                run.outputs[name] = pair[0]
                if pair[1]:
                    run.secret_outputs.add(name)

            secret: pulumi.Output[bool] = pulumi.Output.from_input(is_secret())  # type: ignore[arg-type]
            return pulumi.Output.all(out, secret).apply(store)

        return pulumi.Output.all(*(collect(n, o) for n, o in stack_outputs.items()))

    body()
    return run
