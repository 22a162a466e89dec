#!/usr/bin/env bash
# Import images into the node's containerd (namespace k8s.io, where the kubelet's CRI
# looks), from a Docker engine's local image store: `docker save IMAGE | ctr import -`.
# There is no registry here, so this is how the test images (tests/images/build.sh)
# reach the node. The engine is only read (docker image inspect, docker save).
#
#   bash scripts/k8s/images.sh redis-ha-test/redis:7.0 redis-ha-test/redis-exporter:1.45
#
# An image containerd already has under the same ID is skipped, so calling it again
# after start.sh costs one `ctr images ls`. One line per image; exit 1 on the first
# failure (its reason on the last line).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"
# shellcheck source=common.sh
. "$HERE/common.sh"

SOCK="$S/containerd/containerd.sock"
CTR=(ctr --address "$SOCK" -n k8s.io)
fail() { echo "k8s images: FAILED: $1" >&2; exit 1; }

[ $# -gt 0 ] || fail "usage: images.sh IMAGE..."
[ -S "$SOCK" ] || fail "no containerd socket at $SOCK (did start.sh run its node stage?)"
command -v docker >/dev/null || fail "docker CLI not found (needed to read the images)"

# docker.io/library/ is what the CRI adds to a short name; docker.io/ to a name with a path.
full_name() {
    case "$1" in
        */*/*) echo "$1" ;;
        *.*/* | *:*/* | localhost/*) echo "$1" ;;
        */*) echo "docker.io/$1" ;;
        *) echo "docker.io/library/$1" ;;
    esac
}

for image in "$@"; do
    id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null)" ||
        fail "$image is not in the Docker engine's image store (tests/images/build.sh builds the test images)"
    name="$(full_name "$image")"
    # The Docker image ID it was imported from is a label of containerd's image.
    if "${CTR[@]}" images ls 2>/dev/null | awk -v n="$name" '$1 == n' | grep -qF "redis-ha.docker-id=$id"; then
        echo "k8s images: $image already imported ($id)"
        continue
    fi
    start=$(date +%s)
    docker save "$image" | "${CTR[@]}" images import - >>"$S/logs/ctr.log" 2>&1 ||
        fail "ctr import of $image: $(tail -n1 "$S/logs/ctr.log")"
    "${CTR[@]}" images label "$name" "redis-ha.docker-id=$id" >>"$S/logs/ctr.log" 2>&1 ||
        fail "$image was imported, but not as $name: $("${CTR[@]}" images ls -q | tr '\n' ' ')"
    echo "k8s images: imported $image as $name in $(($(date +%s) - start))s"
done
