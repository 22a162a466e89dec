"""The packaging layout, checked without building anything (tests/program/test_wheel.py
builds and installs the wheel).

- pyproject.toml lists the packages one by one: the toolkit, and of tests/ only the
  verification suite, under the name redis_ha_verify;
- the suite refers to itself only relatively, so that it works as tests.verify (in the
  repository) and as redis_ha_verify (installed);
- the data files are found in the repository, and in the installed layout first.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from redis_ha.components import package_data

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_the_wheel_packages_are_listed_and_hold_no_tests_package() -> None:
    packages = SETUPTOOLS["packages"]
    assert not [p for p in packages if p == "tests" or p.startswith("tests.")], packages
    assert {"redis_ha", "redis_ha.backup", "redis_ha_verify", "redis_ha_verify.celery_app"} <= set(packages)
    components = {"", ".templates", ".monitoring", ".node", ".docker", ".kubernetes"}
    assert {f"redis_ha.components{sub}" for sub in components} <= set(packages)
    # Nothing installs as a top-level `components` (a name many Pulumi projects use).
    assert {p.split(".")[0] for p in packages} == {"redis_ha", "redis_ha_verify"}, packages
    assert SETUPTOOLS["package-dir"] == {
        "redis_ha.components": "components",
        "redis_ha.components.templates": "templates",
        "redis_ha.components.monitoring": "monitoring",
        "redis_ha_verify": "tests/verify",
    }
    # Every listed package exists where setuptools will look for it: the longest
    # mapped prefix wins, as in setuptools.
    for package in packages:
        prefixes = [n for n in SETUPTOOLS["package-dir"] if package == n or package.startswith(n + ".")]
        name = max(prefixes, key=len, default="")
        rest = package.split(".")[len(name.split(".")) :] if name else package.split(".")
        mapped = Path(SETUPTOOLS["package-dir"].get(name, ""), *rest)
        assert (ROOT / mapped).is_dir(), (package, mapped)
    assert SETUPTOOLS["package-data"] == {
        "redis_ha.components.templates": ["*.j2"],
        "redis_ha.components.monitoring": ["*.yml", "*.json"],
        "redis_ha.components.node": ["*.sh"],
    }


def test_the_console_scripts_point_at_the_installed_names() -> None:
    assert PYPROJECT["project"]["scripts"] == {
        "redis-ha": "redis_ha.cli:main",
        "redis-ha-verify": "redis_ha_verify.cli:main",
    }


def _absolute_self_references(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tests":
            found.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}:{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "tests"
            ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "tests.verify" in node.value:
            found.append(f"{path.name}:{node.lineno}: the string {node.value!r}")
    return found


def test_the_verification_suite_imports_itself_relatively() -> None:
    files = sorted((ROOT / "tests" / "verify").rglob("*.py"))
    assert len(files) > 10
    assert [ref for path in files for ref in _absolute_self_references(path)] == []


def test_the_check_catches_an_absolute_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from tests.verify.access import Node\nimport tests.verify\nNAME = 'tests.verify.celery_app'\n")
    assert len(_absolute_self_references(module)) == 3


def test_the_data_files_come_from_the_repository_here() -> None:
    assert package_data.templates_dir() == ROOT / "templates"
    assert package_data.monitoring_dir() == ROOT / "monitoring"
    assert (package_data.templates_dir() / "redis.conf.j2").is_file()
    assert (package_data.monitoring_dir() / "prometheus-rules.yml").is_file()
    assert package_data.node_dir() == ROOT / "components" / "node"
    assert (package_data.node_dir() / "fence.sh").is_file()


def test_the_installed_data_files_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site-packages" / "redis_ha" / "components"
    (package / "templates").mkdir(parents=True)
    (package / "monitoring").mkdir()
    monkeypatch.setattr(package_data, "PACKAGE_DIR", package)
    monkeypatch.setattr(package_data, "REPOSITORY_DIR", tmp_path / "site-packages" / "redis_ha")
    assert package_data.templates_dir() == package / "templates"
    assert package_data.monitoring_dir() == package / "monitoring"


def test_main_is_a_shim_around_redis_ha_stack() -> None:
    tree = ast.parse((ROOT / "__main__.py").read_text())
    statements = [
        node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    assert [ast.unparse(node) for node in statements] == ["from redis_ha.stack import run", "run()"]
