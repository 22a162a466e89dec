#!/usr/bin/env bash
# Build the two local test images from files already installed on this host (Debian
# bookworm packages redis-server, redis-sentinel, redis-tools, prometheus-redis-exporter,
# busybox-static). No registry is needed: each rootfs is assembled in a temp dir and fed
# to `docker import`.
#
#   redis-ha-test/redis:7.0            redis-server/-sentinel/-cli/-benchmark/-check-*, busybox
#   redis-ha-test/redis-exporter:1.45  /redis_exporter (ENTRYPOINT), busybox
#   redis-ha-test/python-client:3.11   Debian's python3.11 + stdlib, celery/kombu/redis-py
#                                      (pinned wheels, pip install --target), busybox
#
# A build is skipped when the tag exists and its `redis-ha.build` label equals the hash of
# this script plus every file that would go into the image. FORCE=1 rebuilds anyway.
# Only these three tags (and the untagged image a rebuild replaces) are ever touched.
# Building the python client needs pip (PIP, default: the project's .venv) and the wheels
# (pip's cache or its index); a skipped build needs neither.
set -euo pipefail

REDIS_TAG="redis-ha-test/redis:7.0"
EXPORTER_TAG="redis-ha-test/redis-exporter:1.45"
PYTHON_CLIENT_TAG="redis-ha-test/python-client:3.11"
LABEL_KEY="redis-ha.build"
IMAGE_PATH="/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
BUSYBOX=/bin/busybox
EXPORTER_BIN=/usr/bin/prometheus-redis-exporter
# Debian layout: redis-server and redis-sentinel are symlinks to redis-check-rdb (argv[0]
# selects the mode); they are copied as symlinks.
REDIS_FILES=(
    /usr/bin/redis-check-rdb
    /usr/bin/redis-check-aof
    /usr/bin/redis-cli
    /usr/bin/redis-benchmark
    /usr/bin/redis-server
    /usr/bin/redis-sentinel
)
# glibc >= 2.34 has the files/dns NSS backends built into libc.so.6; Debian still ships
# the (stub) libnss_files/libnss_dns/libresolv .so files, copied too in case anything
# dlopens them by name.
NSS_LIBS=(
    /usr/lib/x86_64-linux-gnu/libnss_files.so.2
    /usr/lib/x86_64-linux-gnu/libnss_dns.so.2
    /usr/lib/x86_64-linux-gnu/libresolv.so.2
)
# The application-role tests run a Celery worker and producer in the deployment's
# network, where the hostnames Sentinel announces resolve: Debian's interpreter (3.11.2)
# and stdlib, without __pycache__ (compiled in the image) and what a client never loads.
PYTHON_BIN=/usr/bin/python3.11
PYTHON_STDLIB=/usr/lib/python3.11
PYTHON_STDLIB_SKIP=(config-3.11-x86_64-linux-gnu test idlelib tkinter turtledemo lib2to3 pydoc_data ensurepip)
# glibc dlopens libgcc_s for thread cancellation/unwinding; ldd does not list it.
PYTHON_EXTRA_LIBS=(/usr/lib/x86_64-linux-gnu/libgcc_s.so.1)
# Every package pinned (installed with --no-deps): the image changes only with this list.
# async-timeout: redis-py needs it below Python 3.11.3; tzdata: kombu needs ZoneInfo("UTC")
# and the image has no /usr/share/zoneinfo.
PYTHON_CLIENT_PACKAGES=(
    celery==5.7.0
    kombu==5.7.0
    redis==8.1.0
    amqp==5.4.2
    async-timeout==5.0.1
    billiard==4.3.2
    click==8.5.1
    click-didyoumean==0.3.1
    click-plugins==1.1.1.2
    click-repl==0.4.1
    packaging==26.3
    prompt-toolkit==3.0.53
    python-dateutil==2.9.0.post0
    six==1.17.0
    typing-extensions==4.16.0
    tzdata==2026.6
    tzlocal==5.4.5
    vine==5.1.0
    wcwidth==0.9.4
)
PIP="${PIP:-${REDIS_HA_VENV:-$(dirname "$SCRIPT")/../../.venv}/bin/pip}"

# die, log, rootfs_path, put, base_rootfs and build: shared with engines.sh.
source "$(dirname "$SCRIPT")/lib.sh"

for tool in docker ldd tar sha256sum readlink; do
    command -v "$tool" >/dev/null 2>&1 || die "required host command '$tool' not found"
done
for f in "$BUSYBOX" "$EXPORTER_BIN" "${REDIS_FILES[@]}" "${NSS_LIBS[@]}"; do
    [[ -e "$f" ]] || die "required host file $f is missing (install redis-server, redis-sentinel, redis-tools, prometheus-redis-exporter, busybox-static)"
done
for f in "$PYTHON_BIN" "$PYTHON_STDLIB/os.py" "$PYTHON_STDLIB/lib-dynload" "${PYTHON_EXTRA_LIBS[@]}"; do
    [[ -e "$f" ]] || die "required host file $f is missing (install python3.11)"
done
docker info >/dev/null 2>&1 || die "cannot talk to the docker daemon (is dockerd running and is \$DOCKER_HOST / the socket accessible?)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/redis-ha-images.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Shared libraries (including the dynamic loader) that ELF files need, one path a line.
libs_of() {
    local f out
    for f in "$@"; do
        if ! out="$(ldd "$f" 2>&1)"; then
            # "not a dynamic executable" (static binary) is fine; anything else is not.
            grep -q "not a dynamic executable" <<<"$out" && continue
            die "ldd $f failed: $out"
        fi
        if grep -q "not found" <<<"$out"; then
            die "ldd $f: missing libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
        fi
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
    done | sort -u
}


build_redis_rootfs() {
    local root="$1" f lib
    base_rootfs "$root"
    for f in "${REDIS_FILES[@]}"; do
        if [[ -L "$f" ]]; then
            ln -s "$(readlink "$f")" "$root$(rootfs_path "$f")"
        else
            put "$root" "$f"
        fi
    done
    for lib in "${REDIS_LIBS[@]}" "${NSS_LIBS[@]}"; do
        put "$root" "$lib"
    done
    mkdir -p "$root/data" "$root/usr/local/bin" "$root/usr/local/sbin"
    chmod 0777 "$root/data"
}

build_exporter_rootfs() {
    local root="$1" lib
    base_rootfs "$root"
    put "$root" "$EXPORTER_BIN" /redis_exporter
    for lib in "${EXPORTER_LIBS[@]}" "${NSS_LIBS[@]}"; do
        put "$root" "$lib"
    done
}

build_python_client_rootfs() {
    local root="$1" lib site="/usr/local/lib/python3.11/dist-packages"
    base_rootfs "$root"
    put "$root" "$PYTHON_BIN"
    ln -s python3.11 "$root/usr/bin/python3"
    for lib in "${PYTHON_LIBS[@]}" "${PYTHON_EXTRA_LIBS[@]}" "${NSS_LIBS[@]}"; do
        put "$root" "$lib"
    done
    # -h: symlinks (sitecustomize.py -> /etc/python3.11/...) are copied as files.
    printf '%s\n' "${PYTHON_STDLIB_FILES[@]#/}" | tar -C / -chf - -T - | tar -C "$root" -xf -
    [[ -x "$PIP" ]] || PIP="$(command -v pip3 || true)"
    [[ -n "$PIP" ]] || die "pip not found (set PIP=/path/to/pip) to build $PYTHON_CLIENT_TAG"
    # Wheels for the image's interpreter, not pip's own: --python-version and binary only.
    "$PIP" install --quiet --disable-pip-version-check --no-deps --no-compile --only-binary=:all: \
        --implementation cp --python-version 3.11.2 --target "$root$site" "${PYTHON_CLIENT_PACKAGES[@]}" ||
        die "pip could not install the python client packages"
    rm -rf "$root$site/bin" # console scripts with pip's own interpreter in the shebang
    "$PYTHON_BIN" -m compileall -q -j 0 -s "$root" -p / "$root$PYTHON_STDLIB" "$root$site" >/dev/null ||
        die "compileall failed in the python client rootfs"
    mkdir -p "$root/app"
    # The backup worker's mount point (backupTarget volume): a new Docker volume takes
    # the mode of the directory it is mounted on, so the worker (uid 999) can write it.
    mkdir -p "$root/backups"
    chmod 0777 "$root/backups"
}

smoke_build_python_client_rootfs() {
    docker run --rm --network none --user 65534:65534 "$1" \
        python3 -c 'import celery.bin.celery, kombu.transport.redis, redis.sentinel, billiard.pool'
}

# Hash of everything an image is made of: this script + content of every input file.
# One sha256sum for all files (the python stdlib is ~900 of them), symlink targets too.
input_hash() {
    local f
    {
        sha256sum "$SCRIPT" "$(dirname "$SCRIPT")/lib.sh"
        for f in "$@"; do
            if [[ -L "$f" ]]; then printf '%s -> %s\n' "$f" "$(readlink "$f")"; fi
        done
        sha256sum -- "$@"
        "$BUSYBOX" --list
    } | sha256sum | cut -c1-32
}

# Plain assignments so that a failing ldd aborts the script (set -e).
libs="$(libs_of "${REDIS_FILES[@]}")"
mapfile -t REDIS_LIBS <<<"$libs"
libs="$(libs_of "$EXPORTER_BIN")"
mapfile -t EXPORTER_LIBS <<<"$libs"
libs="$(libs_of "$PYTHON_BIN" "$PYTHON_STDLIB"/lib-dynload/*.so)"
mapfile -t PYTHON_LIBS <<<"$libs"
[[ -n "${REDIS_LIBS[0]}" && -n "${EXPORTER_LIBS[0]}" && -n "${PYTHON_LIBS[0]}" ]] || die "ldd found no libraries (expected dynamically linked binaries)"
skip=()
for d in "${PYTHON_STDLIB_SKIP[@]}"; do skip+=(-path "$PYTHON_STDLIB/$d" -o); done
files="$(find -L "$PYTHON_STDLIB" \( "${skip[@]}" -name __pycache__ \) -prune -o -type f -print | LC_ALL=C sort)"
mapfile -t PYTHON_STDLIB_FILES <<<"$files"
redis_hash="$(input_hash "${REDIS_FILES[@]}" "${REDIS_LIBS[@]}" "${NSS_LIBS[@]}" "$BUSYBOX")"
exporter_hash="$(input_hash "$EXPORTER_BIN" "${EXPORTER_LIBS[@]}" "${NSS_LIBS[@]}" "$BUSYBOX")"
python_client_hash="$(input_hash "$PYTHON_BIN" "${PYTHON_LIBS[@]}" "${PYTHON_EXTRA_LIBS[@]}" "${NSS_LIBS[@]}" \
    "${PYTHON_STDLIB_FILES[@]}" "$BUSYBOX")"

build "$REDIS_TAG" build_redis_rootfs "$redis_hash" \
    --change "WORKDIR /data" \
    --change "EXPOSE 6379" \
    --change 'CMD ["redis-server"]'

build "$EXPORTER_TAG" build_exporter_rootfs "$exporter_hash" \
    --change "EXPOSE 9121" \
    --change 'ENTRYPOINT ["/redis_exporter"]'

build "$PYTHON_CLIENT_TAG" build_python_client_rootfs "$python_client_hash" \
    --change "ENV TZ=UTC" \
    --change "WORKDIR /app" \
    --change 'CMD ["python3"]'

echo "$REDIS_TAG"
echo "$EXPORTER_TAG"
echo "$PYTHON_CLIENT_TAG"
