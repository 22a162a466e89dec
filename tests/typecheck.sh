#!/usr/bin/env bash
# mypy (the package, the verify suite, __main__.py) and lint-imports (the import layers
# of pyproject.toml), run by the lint step of tests/run.sh and by the pull-request
# workflow. Both tools walk directories and neither follows the editable install's
# mapping of components/ to redis_ha.components, so both run on the installed layout,
# made of symlinks to the repository's files (tests/support/package_tree.py).
#
#   bash tests/typecheck.sh        # with the venv of VENV (default: .venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TREE_DIR="$(mktemp -d)"
trap 'rm -rf "$TREE_DIR"' EXIT
cd "$ROOT"
"$VENV/bin/python" -m tests.support.package_tree "$TREE_DIR/site" >/dev/null
cd "$TREE_DIR/site"
"$VENV/bin/mypy" --config-file "$ROOT/pyproject.toml" --cache-dir "$ROOT/.mypy_cache" redis_ha redis_ha_verify __main__.py
PYTHONPATH="$TREE_DIR/site" "$VENV/bin/lint-imports" --no-cache "$ROOT/pyproject.toml"
