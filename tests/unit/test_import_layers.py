"""The package's import layers and names: `lint-imports` (the contracts of
pyproject.toml) keeps the layers and fails on a back-arrow, and nothing imports the
components under their folder's name `components` (only as redis_ha.components)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import package_tree

ROOT = package_tree.ROOT
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_tree.build(tmp_path_factory.mktemp("tree") / "site")


def test_the_layers_hold(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "back_arrow"),
    [
        # The cycle of old: the dataclass module reading the roles module.
        ("redis_ha/components/settings.py", "from redis_ha.components import settings_roles"),
        # The model reaching up into a backend.
        ("redis_ha/components/plan.py", "from redis_ha.components.docker import layout"),
        # The backup worker importing the components.
        ("redis_ha/backup/config.py", "from redis_ha.components import settings"),
    ],
)
def test_a_back_arrow_breaks_a_contract(tree: Path, tmp_path: Path, module: str, back_arrow: str) -> None:
    copy = package_tree.build(tmp_path / "site")
    target = copy / module
    source = target.resolve().read_text()
    target.unlink()
    target.write_text(source + f"\n{back_arrow}  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout


# A module path under a top-level `components` package, as importlib would be given it
# (written in two pieces, so that this file does not hold one).
_DOTTED = "components" + "."


def _top_level_components_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(_DOTTED):
            names = [node.value]
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "components"]
    return found


def test_nothing_imports_a_top_level_components() -> None:
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / f for f in files.stdout.split() if (ROOT / f).is_file()]
    assert len(paths) > 100
    assert [hit for path in paths for hit in _top_level_components_imports(path)] == []


def test_the_check_sees_a_top_level_components_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import components.plan\nfrom components import settings\nX = 'components.docker'\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        assert len(_top_level_components_imports(module)) == 3


def test_the_components_load_under_one_name_only() -> None:
    probe = (
        "import sys, redis_ha.cli, redis_ha.stack, redis_ha.components.program;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'components'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
