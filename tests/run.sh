#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (Debian
# packages when run as root on Debian, a venv with the pip packages), starts dockerd
# when it is not running (and stops it afterwards), then lint + unit + program + e2e.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k quorum  # extra arguments go to pytest
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${REDIS_HA_VENV:-$ROOT/.venv}"
DEBIAN_PACKAGES=(redis-server redis-sentinel redis-tools prometheus-redis-exporter busybox-static docker.io)

log() { printf 'tests/run.sh: %s\n' "$*" >&2; }

install_debian_packages() {
    local missing=()
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
        log "missing packages: ${missing[*]} (install them, or run as root on Debian)"
        return 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    # Re-install only when pyproject.toml changed since the last install.
    local stamp="$VENV/.redis-ha-installed" want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing Python packages into $VENV"
        "$VENV/bin/pip" install -q -e ".[test]"
        echo "$want" > "$stamp"
    fi
}

DOCKERD_PID=""
start_dockerd() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "the Docker daemon is not running and only root can start it"
        return 1
    fi
    log "starting dockerd"
    dockerd >/tmp/redis-ha-dockerd.log 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 1
    done
    log "dockerd did not come up; last lines of its log:"
    tail -20 /tmp/redis-ha-dockerd.log >&2
    return 1
}

stop_dockerd() {
    if [ -n "$DOCKERD_PID" ]; then
        log "stopping dockerd"
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
}
trap stop_dockerd EXIT

install_debian_packages
install_python_packages
start_dockerd

log "lint"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy" components __main__.py

log "tests"
"$VENV/bin/python" -m pytest tests/unit tests/program tests/e2e "$@"
