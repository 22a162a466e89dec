"""The tests' own layout: helpers live in tests/support/ (or in helper modules of a
suite), conftests hold fixtures, and no module imports a test module or a conftest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in `path`, relative ones resolved."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            # `from package import name` may name a module too.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def forbidden_imports(root: Path) -> list[str]:
    """Imports of a test module (test_*) or of a conftest, by any module under root's
    tests/ and bench/."""
    problems = []
    for path in sorted([*root.glob("tests/**/*.py"), *root.glob("bench/**/*.py")]):
        for line, module in _imported_modules(path, root):
            if any(part.startswith("test_") or part == "conftest" for part in module.split(".")[1:]):
                problems.append(f"{path.relative_to(root)}:{line}: imports {module}")
    return problems


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    assert len(list(ROOT.glob("tests/**/test_*.py"))) > 40
    assert forbidden_imports(ROOT) == []


def test_the_check_finds_each_kind_of_import(tmp_path: Path) -> None:
    suite = tmp_path / "tests" / "unit"
    suite.mkdir(parents=True)
    (suite / "test_a.py").write_text(
        "from tests.unit.conftest import helper\n"
        "from tests.unit.test_b import fixture\n"
        "from . import test_c\n"
        "from .conftest import _private\n"
        "import tests.k8s.test_node\n"
        "from tests.support import live\n"
    )
    assert [p.split(": ", 1)[1] for p in forbidden_imports(tmp_path)] == [
        "imports tests.unit.conftest.helper",
        "imports tests.unit.test_b.fixture",
        "imports tests.unit.test_c",
        "imports tests.unit.conftest._private",
        "imports tests.k8s.test_node",
    ]
