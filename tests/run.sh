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
# The local Kubernetes (scripts/k8s): its node stage runs pods with Debian's containerd, runc and CNI plugins.
install_debian_packages containerd runc containernetworking-plugins iptables openssl
install_python_packages test
start_dockerd

log "lint"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy" components redis_ha __main__.py

log "tests"
"$VENV/bin/python" -m pytest tests/unit tests/program tests/e2e "$@"

# Last: a single-node Kubernetes built from Go modules into ~/.cache/redis-ha (about 11
# minutes the first time on a machine, seconds after), started with its node stage,
# every prod variant applied by server-side apply, the Sentinel variant run on the node
# with its drills (the test images from the e2e above are imported), stopped
# (docs/kubernetes-local.md).
log "kubernetes"
REDIS_HA_K8S_NODE=1 "$VENV/bin/python" -m pytest tests/k8s "$@"

# The real Pulumi engine (CLI, Python language host, pulumi-kubernetes provider from Go
# modules) against a control plane of its own: preview, up, stack export and destroy of
# the prod stack (docs/kubernetes-local.md, "The real Pulumi engine"). Only when
# `bash scripts/pulumi/build.sh` has built it into the cache: the first build takes about
# 40 minutes on 2 cores, more than this suite may spend; without it these tests are
# reported as skipped, naming what is missing.
log "pulumi engine"
REDIS_HA_PULUMI_BUILD=0 "$VENV/bin/python" -m pytest tests/pulumi_engine "$@"
