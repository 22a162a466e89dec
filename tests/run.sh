#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (Debian
# packages when run as root on Debian, a venv with the pip packages), starts dockerd
# when it is not running (and stops it afterwards), then lint + unit + program + e2e.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k quorum  # extra arguments go to pytest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/setup.sh"
cd "$ROOT"
trap stop_dockerd EXIT

# Any installed Docker engine will do (GitHub's runners ship docker-ce, which conflicts with docker.io).
docker_package=docker.io
command -v dockerd >/dev/null 2>&1 && docker_package=""
install_debian_packages redis-server redis-sentinel redis-tools prometheus-redis-exporter prometheus busybox-static python3.11 $docker_package
install_python_packages test
start_dockerd

log "lint"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy" components redis_ha __main__.py

log "tests"
"$VENV/bin/python" -m pytest tests/unit tests/program tests/e2e "$@"
