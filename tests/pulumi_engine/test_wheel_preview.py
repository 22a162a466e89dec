"""`redis-ha preview --stack prod` from the installed wheel alone, on the real engine.

The project's wheel is built and installed into a fresh venv (its dependencies from
PyPI, at the versions of this venv so the SDK asks for the provider plugin that
scripts/pulumi/build.sh built). In a directory holding only Pulumi.yaml and the stack's
Pulumi.<stack>.yaml (prod's settings, every password a secret set through stdin, the
test control plane's kubeconfig), the venv's `redis-ha preview` runs the program inline
through the Automation API: the CLI built from the Go module proxy, no language host,
no checkout of this repository.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from redis_ha.components import security
from redis_ha.components.settings_load import load_settings
from redis_ha.components.settings_roles import password_key

from tests.k8s.api import Api
from tests.support.engine_env import engine_env

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
STACK = "prod-wheel"
NAMESPACE = "redis-ha-wheel"
PINNED = ("pulumi", "pulumi-kubernetes", "pulumi-docker", "pulumi-random", "pulumi-tls")


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: Path | None = None) -> str:
    with open(stdin) if stdin else open(os.devnull) as feed:
        result = subprocess.run(
            args, cwd=cwd, env=env, stdin=feed, capture_output=True, text=True, timeout=1200, check=False
        )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        pytest.fail(f"{' '.join(args[:3])} exited {result.returncode}:\n{tail}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(ROOT))
    [wheel] = (tmp / "dist").glob("redis_ha-*.whl")
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    pins = [f"{name}=={metadata.version(name)}" for name in PINNED]
    _run(str(venv / "bin" / "pip"), "install", "-q", str(wheel), *pins)
    return venv


def test_preview_from_the_wheel_alone_reaches_the_engine(
    pulumi_bin: Path, control_plane: Api, wheel_venv: Path, tmp_path: Path
) -> None:
    # (pulumi_bin first: without the engine the test is skipped before anything is built)
    project = tmp_path / "stack-files"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    # The fresh venv and the built engine only: not this checkout's venv.
    env, secret_dir = engine_env(tmp_path, [str(pulumi_bin), str(wheel_venv / "bin"), "/usr/bin", "/bin"])
    _run(
        "pulumi", "stack", "init", STACK, "--secrets-provider", "passphrase", "--non-interactive", cwd=project, env=env
    )
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack = yaml.safe_load(stack_file.read_text()) or {}
    config = dict(yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"])
    config["redis-ha:namespace"] = NAMESPACE
    config["kubernetes:kubeconfig"] = str(control_plane.state / "admin.kubeconfig")
    stack["config"] = config
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    settings = load_settings({k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("redis-ha:")})
    for user in security.user_names(settings):
        path = secret_dir / user
        path.write_text(secrets.token_urlsafe(24))
        _run("pulumi", "config", "set", "--secret", f"redis-ha:{password_key(user)}", cwd=project, env=env, stdin=path)
        path.unlink()
    assert sorted(p.name for p in project.iterdir()) == sorted(["Pulumi.yaml", f"Pulumi.{STACK}.yaml"])

    result = subprocess.run(
        [str(wheel_venv / "bin" / "redis-ha"), "preview", "--stack", STACK],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        summary = [line for line in result.stdout.splitlines() if line.startswith("redis-ha preview: ")]
        # Every object of the stack is planned by the engine (the provider's dry runs).
        assert len(summary) == 1 and summary[0].startswith("redis-ha preview: create "), result.stdout[-2000:]
        assert int(summary[0].split()[3].rstrip(",")) >= 20, summary
        assert "kubernetes:apps/v1:StatefulSet" in result.stdout
        # Nothing was deployed by a preview, and nothing written next to the stack files.
        assert not control_plane.exists("v1", "Namespace", NAMESPACE)
        assert sorted(p.name for p in project.iterdir()) == sorted(["Pulumi.yaml", f"Pulumi.{STACK}.yaml"])
    finally:
        subprocess.run(
            ["pulumi", "stack", "rm", "--yes", "--force", STACK, "--non-interactive"],
            cwd=project,
            env=env,
            capture_output=True,
            timeout=300,
        )
