"""The GitHub Actions workflows: valid against the GitHub workflow JSON schema (offline),
and calling only project commands that exist. What the workflows may do with secrets,
actions and the stack outputs: tests/unit/test_workflows_security.py.

The schema is the one check-jsonschema vendors (schemastore's github-workflow.json):
both its CLI (`--builtin-schema vendor.github-workflows`) and jsonschema with the
vendored file run here, with every socket connection refused, so a check that
silently needed the network would fail instead of passing.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.resources
import json
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import pytest

from redis_ha import cli as redis_ha_cli
from tests.support.workflows import ROOT, WORKFLOWS, WORKFLOWS_DIR, load_yaml, run_steps, simple_commands

ENTRY_POINTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


# Top-level directories of this repository: a token under one of them is a project path.
PROJECT_DIRS = ("scripts/", "tests/", "components/", "redis_ha/", "monitoring/", "templates/", ".ci/", "bench/")


def vendored_schema() -> dict[str, Any]:
    files = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((files / "github-workflows.json").read_text())


class NetworkUsed(AssertionError):
    pass


@contextlib.contextmanager
def no_network() -> Iterator[list[str]]:
    """Every outgoing connection and name lookup raises NetworkUsed (and is recorded)."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise NetworkUsed(f"network access attempted: {args[:2]!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield attempts


def run_check_jsonschema(*files: Path) -> int:
    """check-jsonschema's own CLI, in this process, without network."""
    with no_network() as attempts:
        try:
            check_jsonschema.main(["--builtin-schema", "vendor.github-workflows", *map(str, files)])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        else:
            code = 0
    assert not attempts, f"check-jsonschema tried the network: {attempts}"
    return code


BROKEN_WORKFLOW: dict[str, Any] = {
    "name": "broken",
    "on": {"pull_request": {"branches": "main", "typo": True}},
    "jobs": {
        "no-runner": {"steps": [{"run": "true"}]},
        "both-uses-and-run": {"runs-on": "ubuntu-24.04", "steps": [{"uses": "actions/checkout@v4", "run": "ls"}]},
    },
}


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(vendored_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def _parse_redis_ha(args: list[str]) -> str | None:
    """None if `redis-ha ARGS` parses, else argparse's complaint."""
    args = [a if "$" not in a and a != "EXPR" else "placeholder" for a in args]
    try:
        redis_ha_cli.build_parser().parse_args(args)
    except SystemExit:
        return f"`redis-ha {' '.join(args)}` is not a valid redis-ha command line"
    return None


def _parse_redis_ha_verify(args: list[str]) -> str | None:
    """None if `redis-ha-verify ARGS` parses. Its parser lives inside main(), which
    returns 2 without running anything when --outputs names no file."""
    from tests.verify import cli as verify_cli

    missing = str(ROOT / "does-not-exist" / "outputs.json")
    args = [missing if "$" in a or a == "EXPR" else a for a in args]
    if "--outputs" in args:
        args[args.index("--outputs") + 1 : args.index("--outputs") + 2] = [missing]
    try:
        code = verify_cli.main(args)
    except SystemExit:
        return f"`redis-ha-verify {' '.join(args)}` does not parse"
    return None if code == 2 else f"redis-ha-verify ran instead of stopping at the missing file ({code})"


def command_problems(script: str) -> list[str]:
    """Every project command in `script` that does not exist."""
    problems = []
    for command in simple_commands(script):
        name = command[0]
        for token in command:
            path = token.split("::")[0]
            if "$" in path or not path.startswith(PROJECT_DIRS):
                continue
            if not (ROOT / path).exists():
                problems.append(f"{path}: no such file in the repository (in `{' '.join(command)}`)")
        # A script outside the project directories (those were checked just above).
        script_arg = command[1] if name in ("bash", "sh", "source", ".") and len(command) > 1 else "$"
        if "$" not in script_arg and not script_arg.startswith(PROJECT_DIRS) and not (ROOT / script_arg).is_file():
            problems.append(f"{script_arg}: no such script (in `{' '.join(command)}`)")
        program = name.rsplit("/", 1)[-1] if name.startswith((".venv/bin/", "./.venv/bin/")) else name
        if program.startswith("redis-ha"):
            if program not in ENTRY_POINTS:
                problems.append(f"{program}: not a console entry point of pyproject.toml")
            elif program == "redis-ha":
                problem = _parse_redis_ha(command[1:])
                if problem:
                    problems.append(problem)
            elif program == "redis-ha-verify":
                problem = _parse_redis_ha_verify(command[1:])
                if problem:
                    problems.append(problem)
        if name.startswith("./") and not (ROOT / name).exists() and not name.startswith("./.venv/"):
            problems.append(f"{name}: no such file")
        if program in ("python", "python3") and command[1:2] == ["-m"] and len(command) > 2:
            module = command[2]
            if (
                module.split(".")[0] in ("components", "redis_ha", "tests")
                and not (ROOT / (module.replace(".", "/") + ".py")).is_file()
            ):
                problems.append(f"python -m {module}: no such project module")
    return problems


def test_the_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"pull-request.yml", "deploy.yml"} <= names, names


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_is_valid_against_the_vendored_schema(path: Path) -> None:
    assert schema_errors(load_yaml(path)) == []


def test_check_jsonschema_cli_accepts_every_workflow_offline() -> None:
    assert run_check_jsonschema(*WORKFLOWS) == 0


def test_a_broken_workflow_fails_both_validations(tmp_path: Path) -> None:
    errors = schema_errors(BROKEN_WORKFLOW)
    assert errors, "the broken workflow passed the schema"
    broken = tmp_path / "broken.yml"
    broken.write_text(json.dumps(BROKEN_WORKFLOW))  # JSON is YAML
    assert run_check_jsonschema(broken) == 1
    # And a valid workflow made invalid by one change fails too.
    one_change = copy.deepcopy(load_yaml(WORKFLOWS_DIR / "deploy.yml"))
    del one_change["jobs"]["dev"]["runs-on"]
    assert schema_errors(one_change)


def test_the_network_guard_really_refuses_connections() -> None:
    with no_network() as attempts, pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert attempts


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_run_steps_call_only_existing_project_commands(path: Path) -> None:
    problems = []
    for where, step in run_steps(load_yaml(path)):
        if "run" in step:
            problems += [f"{where}: {p}" for p in command_problems(step["run"])]
    assert problems == []


def test_the_command_check_catches_missing_commands() -> None:
    script = """
    bash tests/nope.sh
    scripts/missing.sh --flag
    .venv/bin/redis-ha-frobnicate
    redis-ha frobnicate --stack dev
    redis-ha up --stak dev
    redis-ha-verify --outputs "$RUNNER_TEMP/o.json" --no-such-flag
    python -m components.nope
    """
    problems = command_problems(script)
    assert len(problems) == 7, problems
    for needle in ("tests/nope.sh", "scripts/missing.sh", "redis-ha-frobnicate", "frobnicate --stack", "--stak"):
        assert any(needle in p for p in problems), (needle, problems)
    # ... and lets existing ones through.
    good = """
    bash tests/run.sh -q
    PULUMI_CONFIG_PASSPHRASE=x bash scripts/deploy.sh dev && redis-ha verify --outputs "$F" -- -k quorum
    redis-ha render --stack prod --out review
    redis-ha-verify --outputs "${{ runner.temp }}/outputs.json" --destructive
    bash tests/typecheck.sh
    python -m redis_ha.cli render --stack dev --out review
    """
    assert command_problems(good) == []


def test_the_project_commands_used_are_the_expected_ones() -> None:
    # The check above must have had something to check.
    used = [
        c[0] for path in WORKFLOWS for _, s in run_steps(load_yaml(path)) for c in simple_commands(s.get("run", ""))
    ]
    assert "redis-ha-verify" in used and "bash" in used, used
