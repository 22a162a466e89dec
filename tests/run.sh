#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (Debian
# packages when run as root on Debian, a venv with the pip packages), starts dockerd
# when it is not running (and stops it afterwards), then lint, unit and program tests,
# the Docker e2e, the Kubernetes suite, and the real Pulumi engine's tests.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k quorum  # extra arguments go to pytest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/setup.sh"
cd "$ROOT"

# ok_if_none_selected RC: pytest's exit status; 5 (no test collected) passes only when
# arguments (`-k`, a path) narrowed the run, as they may leave a suite empty.
ok_if_none_selected() {
    [ "$1" -eq 0 ] && return 0
    [ "$1" -eq 5 ] && [ "$NARROWED" = 1 ] && { log "no test selected in this suite"; return 0; }
    exit "$1"
}
NARROWED=0
for arg in "$@"; do [ "$arg" = "-p" ] || [ "$arg" = "no:cacheprovider" ] || NARROWED=1; done

# The local Kubernetes' binaries (scripts/k8s/build.sh, niced): 8 to 11 minutes of
# compiling the first time on a machine, nothing after. Built in the background from
# here on, while the set-up, lint, unit and program tests (and, cold, the e2e) run.
K8S_BUILD_LOG="$(mktemp)"
K8S_LOG="$(mktemp)"
setsid bash scripts/k8s/build.sh >"$K8S_BUILD_LOG" 2>&1 &
K8S_BUILD_PID=$!
K8S_PID=""
# On an early exit: the build is killed (its process group), the Kubernetes suite is
# ended and its cluster stopped (conftest.py names the state dir after the pytest pid).
cleanup() {
    kill -- -"$K8S_BUILD_PID" 2>/dev/null || true
    if [ -n "$K8S_PID" ] && kill -0 "$K8S_PID" 2>/dev/null; then
        kill -TERM "$K8S_PID" 2>/dev/null || true
        wait "$K8S_PID" 2>/dev/null || true
        K8S_STATE="${TMPDIR:-/tmp}/redis-ha-k8s-test-$K8S_PID" bash scripts/k8s/stop.sh || true
    fi
    rm -f "$K8S_BUILD_LOG" "$K8S_LOG"
    stop_dockerd
}
trap cleanup EXIT

# Any installed Docker engine will do (GitHub's runners ship docker-ce, which conflicts with docker.io).
docker_package=docker.io
command -v dockerd >/dev/null 2>&1 && docker_package=""
install_debian_packages redis-server redis-sentinel redis-tools prometheus-redis-exporter prometheus busybox-static python3.11 $docker_package
# The local Kubernetes (scripts/k8s): its node stage runs pods with Debian's containerd, runc and CNI plugins.
install_debian_packages containerd runc containernetworking-plugins iptables ipset openssl
install_python_packages test
start_dockerd

log "lint"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
VENV="$VENV" bash tests/typecheck.sh  # mypy and lint-imports, on the installed layout
# The node scripts: POSIX sh as dash and busybox ash run them (docs/node-scripts.md).
shellcheck -s sh -x components/node/*.sh

# The Kubernetes suite: a single-node Kubernetes started with its node stage, every prod
# variant applied by server-side apply, the Sentinel and Cluster variants run on the
# node with their drills and their NetworkPolicies enforced by kube-router, then stopped
# (docs/kubernetes-local.md). It never runs beside the Docker e2e: kube-router writes
# the whole iptables filter table back on every sync (iptables-save, then
# iptables-restore), which would undo a rule the Docker engine added in between. When
# the binaries are already built, it runs beside the unit and program tests, which
# touch no firewall; otherwise after the e2e, once the build is done.
k8s_suite() { REDIS_HA_K8S_NODE=1 "$VENV/bin/python" -m pytest tests/k8s --durations=15 "$@"; }
k8s_beside_unit=0
if ! kill -0 "$K8S_BUILD_PID" 2>/dev/null; then
    k8s_beside_unit=1
    wait "$K8S_BUILD_PID" || true  # if it failed, the suite's own build.sh says why
    bash tests/images/build.sh     # the node runs the e2e's test images
    log "tests: the Kubernetes suite, beside the unit and program tests (its output follows theirs)"
    k8s_suite "$@" >"$K8S_LOG" 2>&1 &
    K8S_PID=$!
fi

log "tests: unit and program"
"$VENV/bin/python" -m pytest tests/unit tests/program "$@" || ok_if_none_selected $?

if [ "$k8s_beside_unit" = 1 ]; then
    k8s_rc=0
    wait "$K8S_PID" || k8s_rc=$?
    K8S_PID=""
    log "tests: the Kubernetes suite (ran beside the unit and program tests): exit $k8s_rc"
    cat "$K8S_LOG"
    ok_if_none_selected "$k8s_rc"
fi

log "tests: e2e on Docker"
# The engine matrix (tests/e2e/test_engines.py) runs its default engine's row here; every
# row (REDIS_HA_ENGINES=all) is the scheduled job's (docs/engines.md#ci).
REDIS_HA_ENGINES="${REDIS_HA_ENGINES:-valkey-8.1}" "$VENV/bin/python" -m pytest tests/e2e --durations=15 "$@" || ok_if_none_selected $?

if [ "$k8s_beside_unit" = 0 ]; then
    log "tests: the Kubernetes suite (waiting for its build first)"
    wait "$K8S_BUILD_PID" || true
    cat "$K8S_BUILD_LOG"
    k8s_suite "$@" || ok_if_none_selected $?
fi

# The real Pulumi engine (CLI and pulumi-kubernetes provider from Go modules; the program
# runs inline through the Automation API, no language host) against a control plane of
# its own: preview, up, stack export and destroy of the prod stack, and `redis-ha preview`
# from the wheel in a fresh venv (docs/pulumi-engine.md). Only when
# `bash scripts/pulumi/build.sh` has built it into the cache: the first build takes about
# 40 minutes on 2 cores, more than this suite may spend; without it these tests are
# reported as skipped, naming what is missing.
log "pulumi engine"
REDIS_HA_PULUMI_BUILD=0 "$VENV/bin/python" -m pytest tests/pulumi_engine \
    --ignore=tests/pulumi_engine/test_node_engine.py "$@" || ok_if_none_selected $?
# The same engine on a cluster of its own with a node, no skipAwait: up, verify, preview,
# refresh, a rolling maxmemory change under the two drill writers, export and destroy of
# the Sentinel topology (the Redis Cluster's rows: `-k cluster`, docs/pulumi-engine.md).
# After the Docker e2e, never beside it (kube-router, above).
log "pulumi engine on the node"
REDIS_HA_PULUMI_BUILD=0 REDIS_HA_K8S_NODE=1 "$VENV/bin/python" -m pytest tests/pulumi_engine/test_node_engine.py \
    -k sentinel --durations=5 "$@" || ok_if_none_selected $?
