# Shared set-up for tests/run.sh and scripts/deploy.sh (sourced, not run).
# Installs what is missing and starts dockerd when needed; stop_dockerd undoes that.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REDIS_HA_VENV:-$ROOT/.venv}"
DOCKERD_PID=""

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

install_debian_packages() {
    local missing=() p
    for p in "$@"; do
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

# install_python_packages EXTRA: a venv with the project and its [EXTRA] dependencies,
# re-installed only when pyproject.toml changed.
install_python_packages() {
    local extra="$1" stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    stamp="$VENV/.redis-ha-installed-$extra"
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing Python packages ($extra) into $VENV"
        "$VENV/bin/pip" install -q -e "$ROOT[$extra]"
        echo "$want" > "$stamp"
    fi
}

start_dockerd() {
    docker info >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "the Docker daemon is not running and only root can start it"
        return 1
    fi
    log "starting dockerd"
    dockerd >/tmp/redis-ha-dockerd.log 2>&1 &
    DOCKERD_PID=$!
    local _
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
        DOCKERD_PID=""
    fi
}
