"""A prod stack under the real Pulumi engine for tests/pulumi_engine: a project directory
holding only Pulumi.yaml and the stack file, a local file backend (engine_env.py), every
password configured as a secret through stdin (no pulumi-random resource is then
registered), and the program run inline through the Automation API with the built CLI.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from redis_ha.components import security
from redis_ha.components.settings_load import load_settings
from redis_ha.components.settings_roles import password_key

from tests.k8s.api import Api
from tests.support.engine_env import engine_env

ROOT = Path(__file__).resolve().parents[2]
# The marker of a Pulumi secret envelope in `stack export`.
SECRET_SIG = "4dabf18193072939515e22adb298388d"


@dataclass
class Engine:
    project: Path
    env: dict[str, str]
    passwords: dict[str, str]
    api: Api
    pulumi_bin: Path
    stack_name: str
    program: Callable[[], None]
    results: dict[str, Any] = field(default_factory=dict)

    def stack(self) -> auto.Stack:
        """The stack through the Automation API, its program inline."""
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self.project),
            env_vars=self.env,
            pulumi_command=auto.PulumiCommand(root=str(self.pulumi_bin.parent)),
        )
        return auto.select_stack(
            stack_name=self.stack_name, project_name="redis-ha", program=self.program, opts=options
        )

    def pulumi(self, *args: str, stdin: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        with open(stdin) if stdin else open(os.devnull) as feed:
            result = subprocess.run(
                ["pulumi", *args, "--non-interactive"],
                cwd=self.project,
                env=self.env,
                stdin=feed,
                capture_output=True,
                text=True,
                timeout=900,
            )
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            pytest.fail(f"pulumi {' '.join(args)} exited {result.returncode}:\n{tail}", pytrace=False)
        return result

    def set_config(self, key: str, value: str) -> None:
        """A plain (non-secret) `redis-ha:<key>` in the stack file."""
        self.pulumi("config", "set", f"redis-ha:{key}", value)

    def export_text(self) -> str:
        return self.pulumi("stack", "export", "--stack", self.stack_name).stdout

    def remove(self) -> None:
        """destroy (unless done) and `stack rm`: the end of a module's stack."""
        listed = self.pulumi("stack", "ls", "--json", check=False).stdout
        if f'"{self.stack_name}' in listed and not self.results.get("destroyed"):
            try:
                self.stack().destroy()
            except auto.CommandError as error:
                print(f"cleanup destroy failed: {str(error)[-500:]}")
        self.pulumi("stack", "rm", "--yes", "--force", self.stack_name, check=False)


def new_engine(
    tmp: Path,
    pulumi_bin: Path,
    api: Api,
    stack_name: str,
    program: Callable[[], None],
    settings: dict[str, Any],
) -> Engine:
    """A stack `stack_name` whose config is Pulumi.prod.yaml's with `settings` (redis-ha
    keys without the prefix) on top, the cluster's kubeconfig, and every password."""
    project = tmp / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    path = [str(pulumi_bin), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    env, secret_dir = engine_env(tmp, path)
    eng = Engine(project, env, {}, api, pulumi_bin, stack_name, program)
    eng.pulumi("login", env["PULUMI_BACKEND_URL"])
    eng.pulumi("stack", "init", stack_name, "--secrets-provider", "passphrase")
    stack_file = project / f"Pulumi.{stack_name}.yaml"
    stack = yaml.safe_load(stack_file.read_text()) or {}
    config = dict(yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"])
    config.update({f"redis-ha:{key}": value for key, value in settings.items()})
    config["kubernetes:kubeconfig"] = str(api.state / "admin.kubeconfig")
    stack["config"] = config
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    # Every user's password, application roles included: with none generated, the
    # program needs no pulumi-random provider.
    loaded = load_settings({k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("redis-ha:")})
    for user in security.user_names(loaded):
        value = secrets.token_urlsafe(24)
        eng.passwords[user] = value
        secret_file = secret_dir / user
        secret_file.write_text(value)
        eng.pulumi("config", "set", "--secret", f"redis-ha:{password_key(user)}", stdin=secret_file)
        secret_file.unlink()
    return eng


def plain_passwords(text: str, passwords: dict[str, str]) -> list[str]:
    """The users whose password (or its SHA-256) is in `text` in plain text."""
    found = []
    for user, value in passwords.items():
        if value in text or hashlib.sha256(value.encode()).hexdigest() in text:
            found.append(user)
    return found
