"""`redis-ha`, the user CLI.

- render writes exactly the files the program deploys (compared with what a separate
  run of the real program under mocks registers), with every password redacted;
- without a Pulumi CLI, up/preview/destroy/`verify --stack` say so in one line and
  exit 2, while render and `verify --outputs` work;
- verify exits 0 on a live dev deployment and non-zero once it is broken: one
  deployment on the real Docker engine (tests/e2e/conftest.py) serves both cases.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from redis_ha.components.outputs import stack_passwords
from redis_ha.components.settings_load import load_settings

from redis_ha import cli, deployed_files, engine, mocked_program
from tests.support.e2e_stack import Deployment, deploy
from tests.support.program import ProgramRun, run_program, stack_config
from tests.verify.access import Node, Outputs

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "https://www.pulumi.com/docs/install/"


# --- helpers ------------------------------------------------------------------------


def path_without_pulumi() -> str:
    """PATH with every directory that holds a `pulumi` executable left out."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "pulumi").exists()]
    path = os.pathsep.join(keep)
    assert shutil.which("pulumi", path=path) is None
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`redis-ha ARGS` as a user runs it (the module behind the console entry point),
    on a PATH without the Pulumi CLI, by default in this repository."""
    environment = {**os.environ, "PATH": path_without_pulumi(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "redis_ha.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def redact_like_a_reviewer(text: str, passwords: dict[str, str]) -> str:
    """The redaction the CLI promises, written out independently of it."""
    for user, password in passwords.items():
        text = text.replace("#" + hashlib.sha256(password.encode()).hexdigest(), f"#<redacted-sha256:{user}>")
        text = text.replace(password, f"<redacted:{user}>")
    return text


def tree(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in sorted(directory.rglob("*")) if p.is_file()}


def _by_name(run: ProgramRun, token: str) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(token)}


def expected_files(run: ProgramRun, stack: str) -> dict[str, str]:
    """path -> content (in the clear) of every file `run` deploys, from its resources."""
    files: dict[str, str] = {}
    if stack == "dev":
        for container in run.of_type("docker:index/container:Container"):
            # A node's secrets writer delivers its secret files (components/docker/deployment.py);
            # its own program (script, lib.sh, node.env: the executable uploads) stays its own.
            name = container.inputs["name"]
            writer = {"label": "redis-ha.kind", "value": "secrets-writer"} in container.inputs["labels"]
            for upload in container.inputs.get("uploads", []):
                node = name.removesuffix("-secrets") if writer and not upload.get("executable") else name
                files[f"{node}/{Path(upload['file']).name}"] = upload["content"]
        # The Prometheus scrape targets, from the stack output (components/scrape.py).
        files["prometheus/scrape-configs.yml"] = run.outputs["prometheusScrapeConfigs"]
        return files
    secrets_ = {name: i["stringData"] for name, i in _by_name(run, "kubernetes:core/v1:Secret").items()}
    scripts = _by_name(run, "kubernetes:core/v1:ConfigMap")["redis-ha-scripts"]["data"]
    sets = _by_name(run, "kubernetes:apps/v1:StatefulSet")
    for component in ("redis", "sentinel"):
        for i in range(int(sets[f"redis-ha-{component}"]["spec"]["replicas"])):
            pod = f"redis-ha-{component}-{i}"
            # Every pod mounts the scripts ConfigMap (the items its volume projects, at
            # their paths: its group's env file as node.env) and its component's Secret.
            volumes = sets[f"redis-ha-{component}"]["spec"]["template"]["spec"]["volumes"]
            [projected] = [v["configMap"]["items"] for v in volumes if v["name"] == "scripts"]
            files.update({f"{pod}/{item['path']}": scripts[item["key"]] for item in projected})
            for key, value in secrets_[f"redis-ha-{component}"].items():
                owner, _, name = key.partition(".")
                if owner.startswith("redis-ha-"):
                    if owner == pod:
                        files[f"{pod}/{name}"] = value
                else:
                    files[f"{pod}/{key}"] = value
            # The exporter sidecar mounts its own Secret.
            exporter = "redis-ha-exporter" if component == "redis" else "redis-ha-sentinel-exporter"
            files[f"{pod}/passwords.json"] = secrets_[exporter]["passwords.json"]
    # What no pod of ours mounts: each application role's Secret, for its application.
    for role in load_settings(stack_config(stack)).roles:
        for key, value in secrets_[f"redis-ha-{role.name}"].items():
            files[f"secret-redis-ha-{role.name}/{key}"] = value
    return files


@pytest.fixture
def capture_runs(monkeypatch: pytest.MonkeyPatch) -> list[ProgramRun]:
    """The ProgramRun of every run_program the CLI makes (in this process)."""
    runs: list[ProgramRun] = []
    original = mocked_program.run_program

    def capturing(*args: object, **kwargs: object) -> ProgramRun:
        run = original(*args, **kwargs)  # type: ignore[arg-type]
        runs.append(run)
        return run

    monkeypatch.setattr(mocked_program, "run_program", capturing)
    return runs


# --- render -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_render_writes_exactly_what_the_program_deploys(
    stack: str, tmp_path: Path, capture_runs: list[ProgramRun], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review"
    assert cli.main(["render", "--stack", stack, "--out", str(out), "--project-dir", str(ROOT)]) == 0
    (cli_run,) = capture_runs
    rendered = tree(out)

    # A separate run of the real program, with its own generated passwords: modulo
    # redaction, what it deploys is what render wrote.
    reference = run_program(stack_config(stack), stack=stack)
    expected = {
        path: (
            "<redacted:digest of the secret files>\n"
            if path.endswith("/secrets.version")
            else redact_like_a_reviewer(content, stack_passwords(reference.outputs))
        )
        for path, content in expected_files(reference, stack).items()
    }
    assert sorted(rendered) == sorted(expected)
    for path, content in expected.items():
        assert rendered[path] == content, path
    # Every file of every node: Redis config and ACL, Sentinel config, healthchecks,
    # and on Kubernetes the start script.
    names = {Path(p).name for p in rendered}
    assert {"redis.conf", "users.acl", "sentinel.conf"} <= names
    assert "redis-start.sh" in names and "sentinel-start.sh" in names
    assert any(n.endswith("healthcheck.sh") for n in names)
    listing = capsys.readouterr().out
    assert f"{len(rendered)} files of stack {stack}" in listing


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_render_contains_no_password_nor_password_hash(
    stack: str, tmp_path: Path, capture_runs: list[ProgramRun]
) -> None:
    out = tmp_path / "review"
    assert cli.main(["render", "--stack", stack, "--out", str(out), "--project-dir", str(ROOT)]) == 0
    (run,) = capture_runs
    passwords = {**run.passwords, **stack_passwords(run.outputs)}
    assert len(passwords) >= 5
    everything = "\n".join(tree(out).values())
    for user, password in passwords.items():
        assert password not in everything, f"the {user} password is in the rendered files"
        assert hashlib.sha256(password.encode()).hexdigest() not in everything, f"the {user} hash is in them"
    assert not re.search(r"#[0-9a-f]{64}", everything)
    # The secrets are there, as placeholders naming the user.
    assert "masterauth <redacted:replica>" in everything
    assert f"sentinel auth-pass {stack_config(stack)['masterName']} <redacted:sentinel>" in everything
    assert "user admin on #<redacted-sha256:admin> " in everything


def test_configured_passwords_are_redacted_too() -> None:
    configured = {"adminPassword": "Configured-Admin-Secret-1", "replicaPassword": "Configured-Replica-Secret-2"}
    run = run_program({**stack_config("dev"), **configured}, stack="dev")
    text = "\n".join(f.content for f in deployed_files.redacted_files(run))
    clear = "\n".join(f.content for f in deployed_files.deployed_files(run))
    for password in configured.values():
        assert password in clear or hashlib.sha256(password.encode()).hexdigest() in clear  # the control
        assert password not in text and hashlib.sha256(password.encode()).hexdigest() not in text
    assert "#<redacted-sha256:admin>" in text and "<redacted:replica>" in text


def test_redaction_catches_secrets_it_was_not_told_about() -> None:
    digest = hashlib.sha256(b"unknown").hexdigest()
    text = f"masterauth unknown\nsentinel auth-pass mymaster s3cret\nuser x on #{digest} ~*\n"
    redacted = deployed_files.redact(text, {})
    assert "unknown" not in redacted and "s3cret" not in redacted and digest not in redacted
    assert "masterauth <redacted>" in redacted and "#<redacted-sha256>" in redacted


def test_render_refuses_a_non_empty_directory_and_an_unknown_stack(tmp_path: Path) -> None:
    (tmp_path / "old.conf").write_text("x")
    result = run_cli("render", "--stack", "dev", "--out", str(tmp_path))
    assert result.returncode == 2 and "is not an empty directory" in result.stderr
    result = run_cli("render", "--stack", "nosuchstack", "--out", str(tmp_path / "new"))
    assert result.returncode == 2 and "no Pulumi.nosuchstack.yaml" in result.stderr


def test_render_works_without_the_pulumi_cli(tmp_path: Path) -> None:
    out = tmp_path / "review"
    result = run_cli("render", "--stack", "prod", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("redis-ha render: ")
    assert (out / "redis-ha-redis-0" / "redis.conf").is_file()
    assert not re.search(r"#[0-9a-f]{64}", "\n".join(tree(out).values()))


# --- the project directory ---------------------------------------------------------


def test_render_reads_the_stack_files_of_the_project_directory(tmp_path: Path) -> None:
    """The current directory by default, --project-dir otherwise: not the repository
    redis_ha happens to be imported from."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, project / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = run_cli("render", "--stack", "dev", "--out", str(tmp_path / "here"), cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli(
        "render", "--stack", "dev", "--out", str(tmp_path / "there"), "--project-dir", str(project), cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert tree(tmp_path / "here").keys() == tree(tmp_path / "there").keys()
    assert "redis-ha-redis-1/redis.conf" in tree(tmp_path / "here")

    # A stack the project directory does not have: named with the directory looked in.
    result = run_cli("render", "--stack", "prod", "--out", str(tmp_path / "none"), cwd=project)
    assert result.returncode == 2 and f"no Pulumi.prod.yaml in {project}" in result.stderr
    result = run_cli("render", "--stack", "dev", "--out", str(tmp_path / "none"), cwd=elsewhere)
    assert result.returncode == 2 and f"no Pulumi.dev.yaml in {elsewhere}" in result.stderr


def test_pulumi_commands_need_a_pulumi_project_in_the_project_directory(tmp_path: Path) -> None:
    # A stand-in `pulumi` on the PATH: the command stops before running anything.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text("#!/bin/sh\necho 'the stand-in pulumi ran' >&2\nexit 99\n")
    (bin_dir / "pulumi").chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{path_without_pulumi()}", "PULUMI_CONFIG_PASSPHRASE": "x"}
    for args in (["up", "--stack", "dev"], ["verify", "--stack", "dev"]):
        result = subprocess.run(
            [sys.executable, "-m", "redis_ha.cli", *args, "--project-dir", str(empty)],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert f"no Pulumi.yaml in {empty}: run in the project directory or pass --project-dir DIR" in result.stderr
        assert "stand-in" not in result.stderr


# --- the verification suite's module -------------------------------------------------


def test_the_verify_cli_is_the_installed_suite() -> None:
    # The editable install maps redis_ha_verify onto tests/verify.
    module = cli.verify_cli_module()
    assert module.__name__ == "redis_ha_verify.cli"
    assert Path(module.__file__).resolve() == ROOT / "tests" / "verify" / "cli.py"


def test_the_verify_cli_falls_back_to_the_repository_and_reports_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "VERIFY_CLI_MODULES", ("redis_ha_no_such_suite.cli", "tests.verify.cli"))
    assert cli.verify_cli_module().__name__ == "tests.verify.cli"
    monkeypatch.setattr(cli, "VERIFY_CLI_MODULES", ("redis_ha_no_such_suite.cli",))
    with pytest.raises(cli.CliError, match="the verification suite is not installed"):
        cli.verify_cli_module()
    # A suite whose dependency is missing: that is the error, not "try the next name".
    suite = tmp_path / "redis_ha_broken_suite"
    suite.mkdir()
    (suite / "__init__.py").write_text("")
    (suite / "cli.py").write_text("import redis_ha_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "VERIFY_CLI_MODULES", ("redis_ha_broken_suite.cli", "tests.verify.cli"))
    with pytest.raises(cli.CliError, match="packages are missing .*redis_ha_no_such_dependency"):
        cli.verify_cli_module()


# --- without the Pulumi CLI --------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["up", "--stack", "dev"], ["preview", "--stack", "prod"], ["destroy", "--stack", "dev"], ["verify", "-s", "dev"]],
    ids=["up", "preview", "destroy", "verify-stack"],
)
def test_missing_pulumi_cli_is_one_line_and_exit_2(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env["PATH"] = path_without_pulumi()
    result = subprocess.run(
        [sys.executable, "-m", "redis_ha.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"redis-ha {args[0]}: the Pulumi CLI is not installed: see {INSTALL_HINT} "
        "(render and verify --outputs work without it)\n"
    )


# --- backend and passphrase ----------------------------------------------------------


def test_default_backend_is_local_and_expanded() -> None:
    url = engine.backend_url(None, {})
    assert url == "file://" + os.path.expanduser("~/.pulumi-redis-ha")
    assert engine.backend_url(None, {"PULUMI_BACKEND_URL": "s3://bucket"}) == "s3://bucket"
    assert engine.backend_url("file:///srv/state", {"PULUMI_BACKEND_URL": "s3://bucket"}) == "file:///srv/state"


@pytest.mark.parametrize("url", ["file:///tmp/state", "s3://bucket/redis-ha", "azblob://container", "gs://bucket"])
def test_a_self_managed_backend_needs_the_passphrase(url: str) -> None:
    with pytest.raises(cli.CliError, match="set PULUMI_CONFIG_PASSPHRASE"):
        engine.check_passphrase(url, {})
    with pytest.raises(cli.CliError):
        engine.check_passphrase(url, {"PULUMI_CONFIG_PASSPHRASE": ""})
    engine.check_passphrase(url, {"PULUMI_CONFIG_PASSPHRASE": "x"})
    engine.check_passphrase(url, {"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/passphrase"})


def test_pulumi_cloud_needs_no_passphrase() -> None:
    engine.check_passphrase("https://api.pulumi.com", {})


def test_verify_needs_exactly_one_source(tmp_path: Path) -> None:
    assert run_cli("verify").returncode == 2
    both = run_cli("verify", "--stack", "dev", "--outputs", str(tmp_path / "o.json"))
    assert both.returncode == 2 and "exactly one of --outputs FILE or --stack STACK" in both.stderr
    missing = run_cli("verify", "--outputs", str(tmp_path / "o.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


# --- verify against a live deployment ---------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One dev deployment on the real Docker engine for the verify cases."""
    subprocess.run(["bash", str(ROOT / "tests/images/build.sh")], check=True, capture_output=True)
    client = docker.from_env()
    client.ping()
    deployment = deploy(f"rhcli-{secrets.token_hex(3)}", tmp_path_factory.mktemp("cli"), client)
    try:
        yield deployment
    finally:
        errors = deployment.applier.destroy(deployment.applied)
        assert not errors, f"teardown left resources behind: {errors}"


def _summary(result: subprocess.CompletedProcess[str]) -> str:
    """The closing summary line of redis-ha-verify (failures are listed after it)."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("redis-ha-verify: ")]
    assert len(lines) == 1, result.stdout[-3000:]
    return lines[0]


@pytest.mark.e2e
def test_verify_passes_on_a_live_deployment(live: Deployment) -> None:
    result = run_cli("verify", "--outputs", str(live.outputs_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = _summary(result)
    assert re.fullmatch(r"redis-ha-verify: (\d+) properties hold, 0 do not", summary), summary
    assert int(summary.split()[1]) >= 80, summary


@pytest.mark.e2e
def test_verify_fails_on_a_broken_deployment(live: Deployment) -> None:
    outputs = Outputs.load(live.outputs_path)
    replica = Node(outputs.nodes("redis")[-1], outputs)
    # The replica loses its master link: wrong masterauth, and its link cut.
    assert replica.cli("admin", "CONFIG", "SET", "masterauth", "wrong-password") == "OK"
    replica.cli("admin", "CLIENT", "KILL", "TYPE", "master")
    try:
        result = run_cli("verify", "--outputs", str(live.outputs_path), "--", "-k", "replica_link or connected")
        assert result.returncode == 1, result.stdout[-3000:]
        summary = _summary(result)
        assert re.fullmatch(r"redis-ha-verify: \d+ properties hold, [1-9]\d* do not", summary), summary
        failures = [line for line in result.stdout.splitlines() if line.startswith("  FAIL ")]
        assert any(f"test_replica_link_is_up[{replica.name}]" in line for line in failures), failures
        assert not [p for p in outputs.passwords.values() if p in result.stdout + result.stderr]
    finally:
        replica.cli("admin", "CONFIG", "SET", "masterauth", outputs.passwords["replica"])
        deadline = time.monotonic() + 30
        while replica.info("admin", "replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not reconnect after the repair"
            time.sleep(0.5)
