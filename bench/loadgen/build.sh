#!/usr/bin/env bash
# Build the open-loop load generator (bench/loadgen) into
# ~/.cache/redis-ha/loadgen-<hash of go.mod, go.sum and the sources>/loadgen and print
# that path on stdout; an existing binary for the same hash is reused. A static build
# (scripts/gobuild.sh), so the binary also runs inside the deployment's containers.
# Any failure prints one line (module, error) and exits non-zero; the log stays next to
# the binary.
#
# Env: LOADGEN_FORCE_BUILD=1 to rebuild.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
HASH="$(cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
OUT="${XDG_CACHE_HOME:-$HOME/.cache}/redis-ha/loadgen-$HASH"
if [ "${LOADGEN_FORCE_BUILD:-0}" != 1 ] && [ -x "$OUT/loadgen" ]; then
    echo "$OUT/loadgen"
    exit 0
fi
command -v go >/dev/null || { echo "loadgen build: FAILED: go is not on PATH" >&2; exit 1; }
mkdir -p "$OUT"
# shellcheck source=../../scripts/gobuild.sh
. "$HERE/../../scripts/gobuild.sh"
gobuild_init "loadgen build" "$OUT/build.log" "${LOADGEN_GOTOOLCHAIN:-local}" "${LOADGEN_BUILD_JOBS:-2}"
mark
"${GO[@]}" build -trimpath -o "$OUT/loadgen.tmp" . >>"$LOG" 2>&1 || fail redis-ha/bench/loadgen local
mv "$OUT/loadgen.tmp" "$OUT/loadgen"
echo "$OUT/loadgen"
