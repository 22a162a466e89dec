"""The GitHub Actions workflows as the workflow tests (tests/unit/test_workflows*.py) read
them: the files, YAML 1.2 as GitHub loads it, and the simple commands of `run:` steps.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml")) + sorted(WORKFLOWS_DIR.glob("*.yaml"))


def load_yaml(path: Path) -> Any:
    # YAML 1.2, as GitHub reads workflows: `on` stays a string (PyYAML would make it True).
    return YAML(typ="safe").load(path.read_text())


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


def run_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in workflow.get("jobs", {}).items():
        for i, step in enumerate(job.get("steps", [])):
            yield f"{job_name}[{i}] {step.get('name', '')}".strip(), step
