#!/usr/bin/env bash
# The main job: deploy a stack with `pulumi up`, then prove it works.
#
#   PULUMI_CONFIG_PASSPHRASE=... bash scripts/deploy.sh dev     # Docker (starts dockerd if needed)
#   PULUMI_CONFIG_PASSPHRASE=... bash scripts/deploy.sh prod    # Kubernetes (current kubeconfig)
#
# State stays local (`pulumi login --local`) unless you are already logged in to a
# backend. The stack outputs land in outputs-<stack>.json (mode 0600, holds passwords)
# and the verification suite runs against them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
STACK="${1:-dev}"
case "$STACK" in dev|prod) ;; *) log "unknown stack '$STACK' (allowed: dev, prod)"; exit 2 ;; esac

if ! command -v pulumi >/dev/null 2>&1; then
    log "the Pulumi CLI is not installed: see https://www.pulumi.com/docs/install/ (then re-run)"
    exit 2
fi
if [ "$STACK" = dev ]; then
    install_debian_packages docker.io
    start_dockerd  # left running: the deployment lives in it
fi
install_python_packages verify
export PATH="$VENV/bin:$PATH"

pulumi whoami >/dev/null 2>&1 || pulumi login --local
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] && ! pulumi whoami --verbose 2>/dev/null | grep -q "Backend URL: https"; then
    log "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE): it encrypts the stack's secrets"
    exit 2
fi
pulumi stack select --create "$STACK"
pulumi up --yes --stack "$STACK"

OUT="outputs-$STACK.json"
(umask 077 && pulumi stack output --json --show-secrets --stack "$STACK" > "$OUT")
redis-ha-verify --outputs "$OUT"
