"""The GitHub Actions workflows: valid against the GitHub workflow JSON schema (offline),
calling only project commands that exist, and never letting the stack outputs (every
password) reach a log or an artifact.

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
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import pytest
from ruamel.yaml import YAML

from redis_ha import cli as redis_ha_cli

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml")) + sorted(WORKFLOWS_DIR.glob("*.yaml"))
ENTRY_POINTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Top-level directories of this repository: a token under one of them is a project path.
PROJECT_DIRS = ("scripts/", "tests/", "components/", "redis_ha/", "monitoring/", "templates/", ".ci/", "bench/")


def load_yaml(path: Path) -> Any:
    # YAML 1.2, as GitHub reads workflows: `on` stays a string (PyYAML would make it True).
    return YAML(typ="safe").load(path.read_text())


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


# --- a deliberately broken workflow: the negative control of every check -------------

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


# --- project commands in run: steps -------------------------------------------------

_OPERATORS = {"&&", "||", "|", ";", "&", "(", ")", ";;", "|&"}
_REDIRECTIONS = {">", ">>", "<", "2>", "&>", ">&", "<<", "<<<"}
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case", "esac", "!"}
_WRAPPERS = {"sudo", "env", "exec", "time", "nohup", "command"}


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, as token lists (good enough for the
    one-liners of a workflow; `${{ }}` expressions become a placeholder)."""
    script = re.sub(r"\$\{\{.*?\}\}", "EXPR", script).replace("\\\n", " ")
    commands: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # an unterminated quote: a heredoc body or similar
            continue
        current: list[str] = []
        skip_next = False
        for token in tokens:
            if skip_next:
                skip_next = False
                continue
            if token in _REDIRECTIONS or re.fullmatch(r"\d?>>?", token):
                skip_next = True
                continue
            if token in _OPERATORS or (not current and token in _KEYWORDS):
                if current:
                    commands.append(current)
                current = []
                continue
            current.append(token)
        if current:
            commands.append(current)
    cleaned = []
    for command in commands:
        while command and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]) or command[0] in _WRAPPERS):
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned


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


def run_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in workflow.get("jobs", {}).items():
        for i, step in enumerate(job.get("steps", [])):
            yield f"{job_name}[{i}] {step.get('name', '')}".strip(), step


# --- tests --------------------------------------------------------------------------


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


# --- pulumi steps and secrets -----------------------------------------------------


def pulumi_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (job_name, job, step)
        for job_name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("pulumi/actions@")
    ]


def test_pull_requests_are_linted_tested_and_previewed_with_a_comment() -> None:
    workflow = load_yaml(WORKFLOWS_DIR / "pull-request.yml")
    assert "pull_request" in workflow["on"]
    runs = "\n".join(s.get("run", "") for _, s in run_steps(workflow))
    lint = ("ruff check .", "ruff format --check .", "bash tests/typecheck.sh")
    for command in (*lint, "bash tests/run.sh"):
        assert command in runs, command
    previews = pulumi_steps(workflow)
    assert len(previews) == 1
    job_name, job, step = previews[0]
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert job["permissions"]["pull-requests"] == "write"
    stacks = [entry["stack"] for entry in job["strategy"]["matrix"]["include"]]
    assert step["with"]["stack-name"] == "${{ matrix.stack }}" and sorted(stacks) == ["dev", "prod"]
    for stack in stacks:
        assert (ROOT / f"Pulumi.{stack}.yaml").is_file()


# --- CI that cannot leak prod (issue 13) ------------------------------------------

PROTECTED_PREVIEW = "prod-preview"
# The only secret a job outside a GitHub environment may see.
UNGATED_SECRETS = {"GITHUB_TOKEN"}


def _secrets_of(job: dict[str, Any]) -> set[str]:
    return set(re.findall(r"secrets\.([A-Za-z0-9_]+)", json.dumps(job)))


def test_the_prod_preview_runs_only_in_its_protected_environment() -> None:
    """A pull request's program runs with the prod credentials only in the prod-preview
    environment (required reviewers), whether the branch is a fork's or the
    repository's own; fork pull requests do not run the preview at all."""
    workflow = load_yaml(WORKFLOWS_DIR / "pull-request.yml")
    assert set(workflow["on"]) == {"pull_request"}, "never pull_request_target: it hands forks the secrets"
    (job_name, job, _), *_ = pulumi_steps(workflow)
    assert job["environment"] == "${{ matrix.environment }}"
    environments = {e["stack"]: e["environment"] for e in job["strategy"]["matrix"]["include"]}
    assert environments == {"dev": "dev-preview", "prod": PROTECTED_PREVIEW}
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    # The stack's secrets are read only by jobs that run in an environment.
    for path in WORKFLOWS:
        for name, other in load_yaml(path)["jobs"].items():
            if "environment" not in other:
                assert _secrets_of(other) <= UNGATED_SECRETS, f"{path.name}: job {name} reads secrets ungated"
    # Pulumi's credentials reach no job-level or workflow-level env of an ungated job.
    assert "env" not in workflow


def test_the_secrets_check_catches_an_ungated_prod_preview() -> None:
    workflow = load_yaml(WORKFLOWS_DIR / "pull-request.yml")
    job = copy.deepcopy(workflow["jobs"]["preview"])
    del job["environment"]
    assert _secrets_of(job) - UNGATED_SECRETS >= {"KUBECONFIG", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN"}


USES_RE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    lines = [USES_RE.match(line) for line in path.read_text().splitlines()]
    uses = [(m.group(1), m.group(2).strip()) for m in lines if m]
    assert uses, path.name
    for reference, comment in uses:
        assert PINNED_RE.match(reference), f"{path.name}: {reference} is not pinned by a full commit SHA"
        assert re.fullmatch(r"# v\d+\.\d+\.\d+", comment), f"{path.name}: {reference} lacks its `# vX.Y.Z` comment"
    # One SHA per action across the workflows: an upgrade moves every use at once.
    by_action: dict[str, set[str]] = {}
    for other in WORKFLOWS:
        for m in (USES_RE.match(line) for line in other.read_text().splitlines()):
            if m:
                action, sha = m.group(1).split("@")
                by_action.setdefault(action, set()).add(sha)
    assert all(len(shas) == 1 for shas in by_action.values()), by_action


ZIZMOR = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
# zizmor's severities; a finding above `low` fails.
ALLOWED_SEVERITIES = {"unknown", "informational", "low"}


def zizmor_findings(*paths: Path) -> list[dict[str, Any]]:
    """zizmor's findings (JSON) for the workflow files, offline: no GitHub API, no
    network (--offline), every audit of the default persona."""
    if ZIZMOR is None:
        pytest.fail("zizmor is not installed: pip install -e '.[test]'")
    result = subprocess.run(
        [ZIZMOR, "--offline", "--no-progress", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "NO_COLOR": "1"},
    )
    # Exit codes 0 and 10-14 are "no findings" and "findings of some severity".
    assert result.returncode == 0 or 10 <= result.returncode <= 14, result.stderr[-2000:]
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def _describe(finding: dict[str, Any]) -> str:
    location = finding["locations"][0]
    path = location["symbolic"]["key"]["Local"]["verbatim_path"]
    row = location["concrete"]["location"]["start_point"]["row"] + 1
    return f"{Path(path).name}:{row} {finding['ident']} ({finding['determinations']['severity']}): {finding['desc']}"


def test_zizmor_reports_nothing_above_low() -> None:
    findings = zizmor_findings(*WORKFLOWS)
    above_low = [_describe(f) for f in findings if f["determinations"]["severity"].lower() not in ALLOWED_SEVERITIES]
    assert above_low == []


def test_zizmor_catches_what_the_workflows_must_not_do(tmp_path: Path) -> None:
    """The negative control: an unpinned action, a pull_request_target checkout of the
    branch, a template injection and persisted credentials are all reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        json.dumps(
            {
                "name": "bad",
                "on": {"pull_request_target": {}},
                "permissions": "write-all",
                "jobs": {
                    "x": {
                        "runs-on": "ubuntu-24.04",
                        "steps": [
                            {
                                "uses": "actions/checkout@v4",
                                "with": {"ref": "${{ github.event.pull_request.head.sha }}"},
                            },
                            {"run": 'echo "${{ github.event.pull_request.title }}"'},
                        ],
                    }
                },
            }
        )
    )
    findings = zizmor_findings(bad)
    idents = {f["ident"] for f in findings if f["determinations"]["severity"].lower() not in ALLOWED_SEVERITIES}
    assert {"unpinned-uses", "dangerous-triggers", "template-injection", "artipacked"} <= idents, idents


def test_main_deploys_dev_then_prod_behind_the_production_approval() -> None:
    workflow = load_yaml(WORKFLOWS_DIR / "deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in workflow["on"]
    ups = {job_name: step for job_name, _, step in pulumi_steps(workflow)}
    assert {name: s["with"]["command"] for name, s in ups.items()} == {"dev": "up", "prod": "up"}
    assert ups["dev"]["with"]["stack-name"] == "dev" and ups["prod"]["with"]["stack-name"] == "prod"
    prod = workflow["jobs"]["prod"]
    assert prod["needs"] == "dev" and prod["environment"] == "production"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    for job_name in ("dev", "prod"):
        steps = workflow["jobs"][job_name]["steps"]
        after_up = steps[[s.get("uses", "").startswith("pulumi/actions@") for s in steps].index(True) :]
        assert any("redis-ha-verify --outputs" in s.get("run", "") for s in after_up), job_name


def test_secrets_come_from_repository_secrets() -> None:
    text = "\n".join(p.read_text() for p in WORKFLOWS)
    for name in ("PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "KUBECONFIG"):
        assert f"secrets.{name} }}}}" in text, name
    # No literal value of a secret-looking variable anywhere.
    assert not re.search(r"(PASSPHRASE|TOKEN|PASSWORD)\s*:\s*[^$\s{][^\n]*", text), "a literal secret value"


def _steps_with(workflow: dict[str, Any], needle: str) -> list[tuple[str, int, dict[str, Any]]]:
    return [
        (job_name, i, step)
        for job_name, job in workflow["jobs"].items()
        for i, step in enumerate(job.get("steps", []))
        if needle in step.get("run", "")
    ]


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_stack_outputs_never_reach_a_log_or_an_artifact(path: Path) -> None:
    workflow = load_yaml(path)
    assert not [s for _, s in run_steps(workflow) if "upload-artifact" in str(s.get("uses", ""))]
    for _, _, step in pulumi_steps(workflow):
        assert step["with"].get("suppress-outputs") is True, step
    for job_name, i, step in _steps_with(workflow, "--show-secrets"):
        script = step["run"]
        # Written by a redirection into a private file outside the workspace...
        match = re.search(r'--show-secrets\s*>\s*"(\$RUNNER_TEMP/[^"]+)"', script)
        assert match, f"{job_name}: the outputs must go to a file under $RUNNER_TEMP: {script}"
        outputs_file = match.group(1)
        assert "umask 077" in script.split("--show-secrets")[0], f"{job_name}: umask 077 before writing {outputs_file}"
        # ... every password masked in the same step, before any other step runs ...
        assert "::add-mask::" in script and ".passwords" in script, f"{job_name}: passwords not masked"
        # ... never printed ...
        for _, other in run_steps(workflow):
            for command in simple_commands(other.get("run", "")):
                if outputs_file in command:
                    assert command[0] in ("jq", "redis-ha-verify", "rm", "pulumi"), f"{job_name}: {command}"
        # ... and removed whatever happens.
        later = workflow["jobs"][job_name]["steps"][i + 1 :]
        assert any(
            s.get("if") == "always()" and re.search(r"rm -f .*" + re.escape(outputs_file), s.get("run", ""))
            for s in later
        ), f"{job_name}: no always() step removes {outputs_file}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_kubeconfig_goes_to_a_private_file_that_is_removed(path: Path) -> None:
    workflow = load_yaml(path)
    for job_name, i, step in _writes_kubeconfig(workflow):
        script = step["run"]
        assert "umask 077" in script, f"{job_name}: kubeconfig written without umask 077"
        assert "$RUNNER_TEMP/kubeconfig" in script
        later = workflow["jobs"][job_name]["steps"][i + 1 :]
        assert any(s.get("if") == "always()" and "$RUNNER_TEMP/kubeconfig" in s.get("run", "") for s in later)


def _writes_kubeconfig(workflow: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """Steps that get the KUBECONFIG secret (through their environment)."""
    return [
        (job_name, i, step)
        for job_name, job in workflow["jobs"].items()
        for i, step in enumerate(job.get("steps", []))
        if "secrets.KUBECONFIG" in str(step.get("env", {}))
    ]


def test_the_prod_jobs_get_a_kubeconfig() -> None:
    assert [j for j, _, _ in _writes_kubeconfig(load_yaml(WORKFLOWS_DIR / "deploy.yml"))] == ["prod"]
    assert [j for j, _, _ in _writes_kubeconfig(load_yaml(WORKFLOWS_DIR / "pull-request.yml"))] == ["preview"]
