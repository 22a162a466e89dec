#!/usr/bin/env bash
# The main job: deploy a stack, then prove it works.
#
#   PULUMI_CONFIG_PASSPHRASE=... bash scripts/deploy.sh dev     # Docker (starts dockerd if needed)
#   PULUMI_CONFIG_PASSPHRASE=... bash scripts/deploy.sh prod    # Kubernetes (current kubeconfig)
#
# `redis-ha up --verify` runs the stack program inline through the Pulumi Automation API
# (only the `pulumi` CLI is needed, no Python language host: docs/pulumi-engine.md), then
# the verification suite against the stack outputs (held in a private temp file only).
# State: PULUMI_BACKEND_URL, else the backend the CLI is logged in to, else the local
# one `pulumi login --local` uses (~/.pulumi).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
STACK="${1:-dev}"
case "$STACK" in dev|prod) ;; *) log "unknown stack '$STACK' (allowed: dev, prod)"; exit 2 ;; esac

if ! command -v pulumi >/dev/null 2>&1; then
    log "the Pulumi CLI is not installed: see https://www.pulumi.com/docs/install/ or docs/pulumi-engine.md (then re-run)"
    exit 2
fi
if [ "$STACK" = dev ]; then
    install_debian_packages docker.io
    start_dockerd  # left running: the deployment lives in it
fi
install_python_packages verify
export PATH="$VENV/bin:$PATH"

BACKEND="${PULUMI_BACKEND_URL:-$(pulumi whoami --verbose 2>/dev/null | sed -n 's/^Backend URL: //p')}"
BACKEND="${BACKEND:-file://$HOME/.pulumi}"
# redis-ha refuses a self-managed backend without PULUMI_CONFIG_PASSPHRASE(_FILE), in one line.
redis-ha up --stack "$STACK" --backend "$BACKEND" --verify
