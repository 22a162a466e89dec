#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# The Docker secrets writer (docs/node-scripts.md, docs/redis-notes.md#rotating-passwords):
# a one-shot container that delivers the node's secret files from REDIS_HA_WRITER_SRC
# (its uploads) into the node's secrets volume at REDIS_HA_WRITER_DST: each file a copy
# then a rename, so the node never reads half a file, and secrets.version last. On an
# update (the node has recorded a version in `applied` before) it waits up to
# REDIS_HA_APPLY_WAIT seconds until the node has applied this one. With
# REDIS_HA_WRITER_OWNER (a numeric uid; the writer then runs as root with CHOWN,
# DAC_OVERRIDE and FOWNER only), the volume (0700) and every file (0600) become that
# user's: uploads arrive as root's (docs/pulumi-engine.md#uploads-and-the-containers-users).
set -eu

# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
init write-secrets
need REDIS_HA_WRITER_SRC REDIS_HA_WRITER_DST REDIS_HA_WRITER_FILES REDIS_HA_APPLY_WAIT

src=$REDIS_HA_WRITER_SRC
dst=$REDIS_HA_WRITER_DST
wait_seconds=$REDIS_HA_APPLY_WAIT
owner=${REDIS_HA_WRITER_OWNER:-}
case $owner in
    *[!0-9]*) die "REDIS_HA_WRITER_OWNER must be a numeric uid, not $owner" ;;
esac
# own <path>: hands <path> to the reader (nothing without an owner).
own() {
    [ -z "$owner" ] || chown "$owner:$owner" "$1"
}
own "$dst"
chmod 700 "$dst"
for name in $REDIS_HA_WRITER_FILES secrets.version; do
    [ -f "$src/$name" ] || die "$src/$name is missing"
    cp "$src/$name" "$dst/.$name.new" && own "$dst/.$name.new" && mv -f "$dst/.$name.new" "$dst/$name"
done
[ -f "$dst/applied" ] || {
    echo "$log_tag: delivered (the node has not started yet)"
    exit 0
}
wanted=$(cat "$dst/secrets.version")
tries=0
until [ "$(cat "$dst/applied" 2> /dev/null)" = "$wanted" ]; do
    tries=$((tries + 1))
    [ "$tries" -le $((wait_seconds * 2)) ] || die "the node did not apply the new secrets within ${wait_seconds}s (see its log)"
    sleep 0.5
done
echo "$log_tag: delivered and applied"
