#!/bin/sh
# Build the S3-compatible test server pinned in versions.env, once, outside the clone:
#   ${REDIS_HA_CACHE:-$HOME/.cache/redis-ha}/s3-<version>/bin/<binary>
# Prints the binary's path on success; one line on stderr and exit 1 on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${REDIS_HA_CACHE:-$HOME/.cache/redis-ha}
bin_dir="$cache/s3-$S3_VERSION/bin"
binary="$bin_dir/$S3_BINARY"
if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$bin_dir"
log="$cache/s3-$S3_VERSION/build.log"
if ! GOBIN="$bin_dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false nice -n 19 \
    go install "$S3_PACKAGE@$S3_VERSION" >"$log" 2>&1; then
    echo "scripts/s3/build.sh: building $S3_PACKAGE@$S3_VERSION failed: $(tail -n 1 "$log") (full log: $log)" >&2
    exit 1
fi
echo "$binary"
