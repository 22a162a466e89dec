"""redis_ha/engine.py without an engine: the inline stack it asks the Automation API
for, and how it reports what the engine returns. (With the engine:
tests/pulumi_engine/test_wheel_preview.py and test_real_engine.py.)"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from redis_ha import cli, engine, stack


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text("name: redis-ha\nruntime: python\n")
    (directory / "Pulumi.prod.yaml").write_text("config: {}\n")
    return directory


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What workspace_stack hands the Automation API (the CLI check passes)."""
    recorded: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(engine, "require_pulumi_cli", lambda: None)
    for name in ("create_or_select_stack", "select_stack"):
        monkeypatch.setattr(auto, name, lambda name=name, **kw: recorded.append((name, kw)) or "the-stack")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "x")
    return recorded


def test_the_program_runs_inline_with_the_project_directory_files(
    project: Path, calls: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    backend = f"file://{tmp_path / 'state'}"
    assert engine.workspace_stack("prod", project, backend, create=True) == "the-stack"
    [(function, kwargs)] = calls
    assert function == "create_or_select_stack"
    # The program `pulumi up` runs (__main__.py calls the same function), in process.
    assert kwargs["program"] is stack.run
    assert kwargs["project_name"] == "redis-ha" and kwargs["stack_name"] == "prod"
    options = kwargs["opts"]
    assert options.work_dir == str(project)
    assert options.env_vars == {"PULUMI_BACKEND_URL": backend}
    # No project settings of its own: the workspace reads Pulumi.yaml of work_dir.
    assert options.project_settings is None
    assert (tmp_path / "state").is_dir()
    # Nothing written into the user's directory.
    assert sorted(p.name for p in project.iterdir()) == ["Pulumi.prod.yaml", "Pulumi.yaml"]


def test_destroy_and_refresh_select_an_existing_stack(project: Path, calls: list[tuple[str, dict[str, Any]]]) -> None:
    for command in ("destroy", "refresh"):
        args = cli.build_parser().parse_args([command, "--stack", "prod", "--project-dir", str(project)])
        cli._workspace_stack(args, create=command not in ("destroy", "refresh"))
    assert [c[0] for c in calls] == ["select_stack", "select_stack"]
    assert all(kw["program"] is stack.run for _, kw in calls)


def test_no_project_file_and_no_passphrase_stop_before_the_engine(
    tmp_path: Path, calls: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(engine.CliError, match="no Pulumi.yaml in"):
        engine.workspace_stack("prod", tmp_path, "file:///tmp/x", create=True)
    (tmp_path / "Pulumi.yaml").write_text("name: redis-ha\nruntime: python\n")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    with pytest.raises(engine.CliError, match="set PULUMI_CONFIG_PASSPHRASE"):
        engine.workspace_stack("prod", tmp_path, "file:///tmp/x", create=True)
    assert calls == []


class _Stack:
    """Answers as the Automation API's Stack does (the fields engine.py reads)."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail, self.calls = fail, []

    def _maybe_fail(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))
        if self.fail == name:
            raise auto.CommandError(CommandResult(stdout="", stderr="error: boom\nlast: the reason\n", code=1))

    def up(self, **kw: Any) -> Any:
        self._maybe_fail("up", kw)
        return types.SimpleNamespace(summary=types.SimpleNamespace(result="succeeded", resource_changes={"create": 3}))

    def preview(self, **kw: Any) -> Any:
        self._maybe_fail("preview", kw)
        return types.SimpleNamespace(change_summary={auto.OpType.SAME: 40})

    def refresh(self, **kw: Any) -> Any:
        self._maybe_fail("refresh", kw)
        return types.SimpleNamespace(summary=types.SimpleNamespace(result="succeeded", resource_changes={"same": 40}))

    def destroy(self, **kw: Any) -> Any:
        self._maybe_fail("destroy", kw)
        return types.SimpleNamespace(summary=types.SimpleNamespace(result="succeeded", resource_changes={}))


def test_each_command_reports_the_engines_summary(capsys: pytest.CaptureFixture[str]) -> None:
    s = _Stack()
    assert engine.run_command("up", s, "prod", {"refresh": True}) == 0
    assert engine.run_command("preview", s, "prod", {"diff": False}) == 0
    assert engine.run_command("refresh", s, "prod", {}) == 0
    assert engine.run_command("destroy", s, "prod", {"remove": True}) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "redis-ha up: succeeded, create 3, stack prod",
        "redis-ha preview: no changes, stack prod",
        "redis-ha refresh: succeeded, no changes, stack prod",
        "redis-ha destroy: succeeded, stack prod (stack removed)",
    ]
    up_kwargs = s.calls[0][1]
    # Outputs hold passwords: never printed by up.
    assert up_kwargs["suppress_outputs"] is True and up_kwargs["refresh"] is True
    assert s.calls[3][1]["remove"] is True
    with pytest.raises(ValueError, match="allowed: up, preview, refresh, destroy"):
        engine.run_command("import", s, "prod", {})


def test_a_failed_command_exits_1_with_the_clis_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine.run_command("preview", _Stack(fail="preview"), "prod", {}) == 1
    assert capsys.readouterr().err == "redis-ha preview: failed (error: boom)\n"


def test_the_reason_is_the_last_error_line_else_the_last_line() -> None:
    # As the real CLI failed here on a missing plugin: the error in stdout, stderr empty.
    stdout = (
        "Previewing update (dev):\n    pulumi:providers:docker  error: no plugin\nDiagnostics:\n    error: no plugin\n"
    )
    assert engine.last_line(auto.CommandError(CommandResult(stdout=stdout, stderr="", code=1))) == "error: no plugin"
    plain = auto.CommandError(CommandResult(stdout="", stderr="something broke\n", code=1))
    assert engine.last_line(plain) == "something broke"
    assert engine.last_line(auto.CommandError(CommandResult(stdout="", stderr="", code=1))) == "no message"


def test_change_summary_counts_only_changes() -> None:
    assert engine.change_summary({auto.OpType.SAME: 5}) == "no changes"
    assert engine.change_summary({auto.OpType.CREATE: 2, auto.OpType.UPDATE: 1, "same": 9}) == "create 2, update 1"
