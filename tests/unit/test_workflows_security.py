"""The GitHub Actions workflows and their secrets: pull requests are previewed, the prod
preview and deployment run only behind their protected environments, every action is
pinned by commit SHA, zizmor finds nothing above low, and the stack outputs (every
password) never reach a log or an artifact.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.workflows import ROOT, WORKFLOWS, WORKFLOWS_DIR, load_yaml, run_steps, simple_commands


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
