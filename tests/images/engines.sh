#!/usr/bin/env bash
# Build the engine test images pinned in engines.txt (next to this script) from Debian's
# archive: for each line, apt-get (with a private config: no change to the host's apt)
# downloads the pinned engine packages and their libraries from the line's suite, and
# their files, with the suite's own libc, make the rootfs (busybox from the host, the
# same base as build.sh's images) fed to `docker import`.
#
#   bash tests/images/engines.sh                    every image of engines.txt
#   bash tests/images/engines.sh redis-ha-test/valkey:9.1 ...   only these
#
# A build is skipped, with no network, when the tag's `redis-ha.build` label equals the
# hash of this script, lib.sh, the image's line and busybox; FORCE=1 rebuilds. The
# downloaded .debs stay in $REDIS_HA_IMAGE_CACHE (default ~/.cache/redis-ha-images).
# Valkey images get the redis-* names as symlinks, as Valkey's own `make install` (and
# the valkey/valkey images) make them.
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
HERE="$(dirname "$SCRIPT")"
VERSIONS="$HERE/engines.txt"
LABEL_KEY="redis-ha.build"
export IMAGE_PATH="/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
BUSYBOX=/bin/busybox
CACHE="${REDIS_HA_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-ha-images}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# die, log, rootfs_path, put, base_rootfs and build: shared with build.sh.
# shellcheck source=lib.sh
source "$HERE/lib.sh"

for tool in docker apt-get dpkg-deb tar sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "required host command '$tool' not found"
done
[[ -e "$BUSYBOX" && -e "$KEYRING" ]] || die "install busybox-static and debian-archive-keyring"
docker info >/dev/null 2>&1 || die "cannot talk to the docker daemon"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/redis-ha-engines.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# apt-get with a private state under $CACHE/apt/<suite>: lists, an empty dpkg status (so
# the whole library closure is downloaded) and no host sources.
suite_apt() {
    local suite="$1" dir="$CACHE/apt/$1"
    shift
    apt-get -qq -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$dir/lists" -o Dir::State::Status="$dir/status" \
        -o Dir::Cache="$dir/cache" -o Debug::NoLocking=1 -o APT::Install-Recommends=0 \
        -o APT::Sandbox::User="$(id -un)" "$@"
}

prepare_suite() {
    local suite="$1" dir="$CACHE/apt/$1"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    : >"$dir/status"
    {
        echo "deb [signed-by=$KEYRING] $MIRROR $suite main"
        # A backports suite takes its libraries from its release.
        [[ "$suite" == *-backports ]] && echo "deb [signed-by=$KEYRING] $MIRROR ${suite%-backports} main"
    } >"$dir/sources.list"
    suite_apt "$suite" update || die "apt-get update of $suite failed"
}

# Which downloaded packages go into the image: the engine's and the shared libraries;
# not perl, systemd, adduser and the other tools the maintainer scripts would run.
wanted_deb() {
    case "${1##*/}" in
        *-perl_* | libperl* | perl* | libc-gconv-modules-extra_*) return 1 ;;
        redis-* | valkey-* | lib* | zlib1g_* | gcc-*-base_* | openssl-provider-*) return 0 ;;
        *) return 1 ;;
    esac
}

# build_engine_rootfs <root>: uses ENGINE_DEBS (the .deb files) and ENGINE_NAME.
build_engine_rootfs() {
    local root="$1" deb tool
    base_rootfs "$root"
    for deb in "${ENGINE_DEBS[@]}"; do
        wanted_deb "$deb" || continue
        # Keep the rootfs' /lib -> usr/lib symlinks (bookworm's libc6 ships /lib paths).
        dpkg-deb --fsys-tarfile "$deb" | tar -C "$root" --keep-directory-symlink -xf - ||
            die "cannot unpack $deb"
    done
    rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian" "$root/etc/systemd" "$root/lib/systemd"
    if [[ "$ENGINE_NAME" == valkey ]]; then
        for tool in server sentinel cli benchmark check-aof check-rdb; do
            ln -s "valkey-$tool" "$root/usr/bin/redis-$tool"
        done
    fi
    mkdir -p "$root/data" "$root/usr/local/bin" "$root/usr/local/sbin"
    chmod 0777 "$root/data"
}

smoke_build_engine_rootfs() {
    docker run --rm --network none "$1" sh -c 'redis-server --version && redis-cli --version && redis-sentinel --version' >&2
}

build_line() {
    local tag="$1" suite="$2" line="$3"
    shift 3
    local hash current debs name
    hash="$({ sha256sum "$SCRIPT" "$HERE/lib.sh"; echo "$line"; sha256sum "$BUSYBOX"; } | sha256sum | cut -c1-32)"
    current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$tag" 2>/dev/null || true)"
    if [[ "${FORCE:-0}" != 1 && "$current" == "$hash" ]]; then
        log "$tag is up to date ($LABEL_KEY=$hash), skipping"
        return 0
    fi
    name="${tag##*/}"
    ENGINE_NAME="${name%%:*}"
    debs="$CACHE/debs/${tag//[\/:]/_}"
    mkdir -p "$debs/partial"
    if [[ ! -e "$debs/complete" || "$(cat "$debs/complete")" != "$line" ]]; then
        prepare_suite "$suite"
        rm -f "$debs"/*.deb
        suite_apt "$suite" -o Dir::Cache::archives="$debs" --download-only -y install "$@" ||
            die "$tag: apt-get could not download $* from $suite (is the pin in $VERSIONS still in the archive?)"
        echo "$line" >"$debs/complete"
    fi
    rm -rf "$WORK/build_engine_rootfs" # build() assembles each image in $WORK/<builder>
    mapfile -t ENGINE_DEBS < <(find "$debs" -maxdepth 1 -name '*.deb' | LC_ALL=C sort)
    OS_RELEASE="Debian $suite packages: $*" build "$tag" build_engine_rootfs "$hash" \
        --change "WORKDIR /data" --change "EXPOSE 6379" --change 'CMD ["redis-server"]'
}

wanted=("$@")
found=0
while read -r tag suite packages <&3; do
    [[ -z "$tag" || "$tag" == \#* ]] && continue
    if ((${#wanted[@]})) && [[ " ${wanted[*]} " != *" $tag "* ]]; then continue; fi
    found=$((found + 1))
    read -ra pkgs <<<"$packages"
    build_line "$tag" "$suite" "$tag $suite $packages" "${pkgs[@]}"
    echo "$tag"
done 3<"$VERSIONS"
((found >= ${#wanted[@]})) || die "not every tag asked for is in $VERSIONS: ${wanted[*]}"
