"""The installed layout of the packages, made of symlinks to the repository's files, for
the tools that find modules by walking directories (mypy, import-linter's grimp).

pyproject.toml maps the top-level components/ folder to `redis_ha.components` and
tests/verify to `redis_ha_verify`; the editable install resolves that with an import
hook, which neither tool follows (mypy would take every `redis_ha.components` import
as a missing module, of type Any). Hand-written: setuptools lays the tree out only by
copying files into a build, whose paths would then be what the tools report.

    python -m tests.support.package_tree DIR   # prints DIR, holding redis_ha/, redis_ha_verify/, __main__.py
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_dir(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools takes `package` from: the longest mapped prefix wins."""
    prefixes = [name for name in package_dir if package == name or package.startswith(name + ".")]
    if not prefixes:
        return ROOT.joinpath(*package.split("."))
    name = max(prefixes, key=len)
    return ROOT.joinpath(package_dir[name], *package.split(".")[len(name.split(".")) :])


def build(target: Path) -> Path:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in setuptools["packages"]:
        source = source_dir(package, setuptools["package-dir"])
        directory = target.joinpath(*package.split("."))
        directory.mkdir(parents=True, exist_ok=True)
        for module in sorted(source.glob("*.py")):
            (directory / module.name).symlink_to(module)
    (target / "__main__.py").symlink_to(ROOT / "__main__.py")
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.package_tree EMPTY_DIR")
    print(build(Path(sys.argv[1])))
