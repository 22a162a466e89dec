"""The wheel, installed the way a user installs it: nothing of this repository in use.

The wheel is built from a copy of the repository (`pip wheel --no-deps`, so a stale
build/ of the work tree cannot leak into it), installed with its [verify] extra into a
fresh virtual environment (dependencies from the package index or pip's cache), and
run from a directory that holds only the stack files: `redis-ha render` must find the
templates inside the installed package and the stack files in the current directory
(or --project-dir), and `redis-ha-verify` must start. Takes a minute or two: most of it
is installing the dependencies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK_FILES = ("Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.dev.yaml")
# The node scripts (components/node), shipped as package data.
NODE_SCRIPTS = (
    "lib.sh",
    "redis-start.sh",
    "sentinel-start.sh",
    "cluster-create.sh",
    "healthcheck.sh",
    "secrets-writer.sh",
    "fence.sh",
)
# What the wheel holds at its top level, and nothing else.
TOP_LEVEL = {"redis_ha", "redis_ha_verify", "redis_ha-0.1.0.dist-info"}
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "outputs*.json"
)
_SHA256_HASH = re.compile(r"#[0-9a-f]{64}\b")
_PASSWORD_DIRECTIVE = re.compile(
    r"^\s*(?:masterauth|requirepass|sentinel\s+auth-pass\s+\S+|sentinel\s+sentinel-pass)\s+(\S+)\s*$", re.MULTILINE
)


def run(args: list[str | Path], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`args` in `cwd`, with nothing pointing at this repository in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def tree(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_redacted(files: dict[str, str], known_passwords: dict[str, str] | None = None) -> None:
    """No password nor password hash in the clear: every secret is a placeholder."""
    everything = "\n".join(files.values())
    assert not _SHA256_HASH.search(everything), "an ACL password hash is in the clear"
    values = _PASSWORD_DIRECTIVE.findall(everything)
    assert values, "no password directive rendered at all"
    assert all(v.startswith("<redacted") for v in values), [v for v in values if not v.startswith("<redacted")]
    assert "masterauth <redacted:replica>" in everything
    assert "#<redacted-sha256:admin>" in everything
    for user, password in (known_passwords or {}).items():
        assert password not in everything, f"the {user} password is in the rendered files"
        assert hashlib.sha256(password.encode()).hexdigest() not in everything, f"the {user} hash is in them"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv with the built wheel and its [verify] extra."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED, symlinks=True)
    wheels = base / "wheels"
    ok(run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source], cwd=base))
    (wheel,) = wheels.glob("redis_ha-*.whl")

    venv = base / "venv"
    ok(run([sys.executable, "-m", "venv", venv], cwd=base))
    python = venv / "bin" / "python"
    version = ok(run([python, "-c", "import sys; print(*sys.version_info[:2])"], cwd=base)).stdout.split()
    assert tuple(map(int, version)) == sys.version_info[:2], f"the venv runs Python {version}"
    ok(run([python, "-m", "pip", "install", "-q", f"{wheel}[verify]"], cwd=base))
    site_packages = Path(
        ok(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base)).stdout.strip()
    )

    project = base / "project"
    project.mkdir()
    for name in STACK_FILES:
        shutil.copy(ROOT / name, project / name)
    return {"wheel": wheel, "venv": venv, "site_packages": site_packages, "project": project, "base": base}


def test_the_wheel_holds_the_toolkit_and_nothing_of_the_tests(installed: dict[str, Path]) -> None:
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
    assert {n.split("/")[0] for n in names} == TOP_LEVEL
    for expected in (
        "redis_ha/components/templates/redis.conf.j2",
        "redis_ha/components/templates/sentinel.conf.j2",
        "redis_ha/components/templates/users.acl.j2",
        "redis_ha/components/monitoring/prometheus-rules.yml",
        "redis_ha/components/monitoring/grafana-dashboard.json",
        *(f"redis_ha/components/node/{script}" for script in NODE_SCRIPTS),
        "redis_ha/cli.py",
        "redis_ha/stack.py",
        "redis_ha/backup/__main__.py",
        "redis_ha/backup/engine.py",
        "redis_ha_verify/cli.py",
        "redis_ha_verify/conftest.py",
        "redis_ha_verify/celery_app/tasks.py",
    ):
        assert expected in names, expected
    entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        scripts = wheel.read(entry_points[0]).decode()
    assert "redis-ha = redis_ha.cli:main" in scripts and "redis-ha-verify = redis_ha_verify.cli:main" in scripts


def test_the_installed_packages(installed: dict[str, Path]) -> None:
    site_packages = installed["site_packages"]
    assert not (site_packages / "tests").exists(), "a top-level `tests` package was installed"
    assert not (site_packages / "components").exists(), "a top-level `components` package was installed"
    assert not (site_packages / "__main__.py").exists()
    assert (site_packages / "redis_ha" / "components" / "templates" / "redis.conf.j2").is_file()
    assert (site_packages / "redis_ha" / "components" / "monitoring" / "prometheus-rules.yml").is_file()
    for script in NODE_SCRIPTS:
        assert (site_packages / "redis_ha" / "components" / "node" / script).read_text() == (
            ROOT / "components/node" / script
        ).read_text()
    # The program reads the installed copies, and the suite finds its Celery app.
    probe = (
        "import json, redis_ha.components.package_data as p, redis_ha_verify.celery_runtime as c;"
        "print(json.dumps([str(p.templates_dir()), str(p.monitoring_dir()), str(c.APP_DIR), str(p.node_dir())]))"
    )
    result = ok(run([installed["venv"] / "bin" / "python", "-c", probe], cwd=installed["project"]))
    templates, monitoring, app_dir, node = map(Path, json.loads(result.stdout))
    assert templates == site_packages / "redis_ha" / "components" / "templates"
    assert monitoring == site_packages / "redis_ha" / "components" / "monitoring"
    assert node == site_packages / "redis_ha" / "components" / "node"
    assert app_dir == site_packages / "redis_ha_verify" / "celery_app" and (app_dir / "tasks.py").is_file()
    assert run([installed["venv"] / "bin" / "python", "-c", "import tests"], cwd=installed["project"]).returncode != 0
    # A program of its own imports the components from the package's namespace only:
    # a `components` folder of its own is not ours, nor ours theirs.
    own = installed["base"] / "own-program"
    (own / "components").mkdir(parents=True, exist_ok=True)
    (own / "components" / "__init__.py").write_text("MINE = True\n")
    probe = (
        "import sys, components, redis_ha; from redis_ha import RedisHA, RedisCluster;"
        "print(RedisHA.__module__, RedisCluster.__module__, components.MINE,"
        " sorted(m for m in sys.modules if m.startswith('components.')))"
    )
    result = ok(run([installed["venv"] / "bin" / "python", "-c", probe], cwd=own))
    assert result.stdout.split() == ["redis_ha.components.library", "redis_ha.components.library", "True", "[]"]


def test_render_prod_from_a_directory_with_only_the_stack_files(installed: dict[str, Path]) -> None:
    out = installed["base"] / "review-prod"
    result = ok(
        run([installed["venv"] / "bin" / "redis-ha", "render", "--stack", "prod", "--out", out], installed["project"])
    )
    assert result.stdout.strip().splitlines()[-1].startswith("redis-ha render: ")
    files = tree(out)
    for path in ("redis-ha-redis-0/redis.conf", "redis-ha-redis-0/users.acl", "redis-ha-sentinel-0/sentinel.conf"):
        assert path in files, sorted(files)
    assert "redis-ha-redis-0/redis-start.sh" in files
    assert_redacted(files)
    assert not _SHA256_HASH.search(result.stdout + result.stderr)


def test_render_dev_with_a_project_dir_and_a_configured_password(installed: dict[str, Path]) -> None:
    # From elsewhere, with --project-dir; one more stack whose admin password is set.
    project = installed["project"]
    password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    stack = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())
    stack["config"]["redis-ha:adminPassword"] = password
    (project / "Pulumi.configured.yaml").write_text(yaml.safe_dump(stack))
    elsewhere = installed["base"] / "elsewhere"
    elsewhere.mkdir()
    redis_ha = installed["venv"] / "bin" / "redis-ha"
    for name in ("dev", "configured"):
        out = installed["base"] / f"review-{name}"
        result = ok(run([redis_ha, "render", "--stack", name, "--out", out, "--project-dir", project], elsewhere))
        files = tree(out)
        assert {"redis-ha-redis-1/redis.conf", "redis-ha-sentinel-1/sentinel.conf"} <= set(files), sorted(files)
        assert_redacted(files, {"admin": password})
        assert password not in result.stdout + result.stderr
    # Without --project-dir the current directory is the project: it has no stack files.
    result = run([redis_ha, "render", "--stack", "dev", "--out", installed["base"] / "none"], elsewhere)
    assert result.returncode == 2 and f"no Pulumi.dev.yaml in {elsewhere}" in result.stderr


def test_redis_ha_verify_starts_and_collects_the_installed_suite(installed: dict[str, Path]) -> None:
    venv_bin = installed["venv"] / "bin"
    result = ok(run([venv_bin / "redis-ha-verify", "--help"], installed["project"]))
    assert result.stdout.startswith("usage: redis-ha-verify") and "--outputs" in result.stdout
    # The suite collected from site-packages (as redis_ha_verify.*, its conftest included)
    # against the outputs of a mocked dev run: nothing is connected to, nothing runs.
    outputs = installed["base"] / "outputs.json"
    write_outputs = (
        "import json, sys; from redis_ha.mocked_program import run_program, stack_config;"
        "run = run_program(stack_config('dev'), stack='dev');"
        "open(sys.argv[1], 'w').write(json.dumps(run.outputs))"
    )
    ok(run([venv_bin / "python", "-c", write_outputs, outputs], installed["project"]))
    site_packages = installed["site_packages"]
    collect = ["--", "--collect-only", "-q", f"--rootdir={site_packages}"]
    result = ok(run([venv_bin / "redis-ha-verify", "--outputs", outputs, *collect], installed["base"]))
    collected = dict(re.findall(r"^(\S+\.py): (\d+)$", result.stdout, re.MULTILINE))
    assert collected, result.stdout[-3000:]
    assert all(path.startswith("redis_ha_verify/test_") for path in collected), collected
    assert "redis_ha_verify/test_replication.py" in collected
    assert sum(map(int, collected.values())) > 50, collected
    assert "redis-ha-verify: 0 properties hold, 0 do not" in result.stdout
