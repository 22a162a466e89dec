# shellcheck shell=bash
# Shared by build.sh and engines.sh (sourced): logging, rootfs helpers, the cached build.
# The caller sets BUSYBOX, LABEL_KEY, IMAGE_PATH, WORK and, optionally, OS_RELEASE.

die() { echo "${0##*/}: error: $*" >&2; exit 1; }
log() { echo "${0##*/}: $*" >&2; }

# Host path -> path inside the merged-/usr rootfs (/bin, /sbin, /lib, /lib64 are symlinks
# into /usr there, as on the host).
rootfs_path() {
    case "$1" in
        /bin/* | /sbin/* | /lib/* | /lib64/*) echo "/usr$1" ;;
        *) echo "$1" ;;
    esac
}

# Copy a file into the rootfs, dereferencing symlinks (libs land at their soname path).
put() {
    local root="$1" src="$2" dst="${3:-}"
    [[ -n "$dst" ]] || dst="$(rootfs_path "$src")"
    mkdir -p "$root$(dirname "$dst")"
    cp -L --preserve=mode "$src" "$root$dst"
}

base_rootfs() {
    local root="$1" applet
    mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,tmp,root,proc,sys,dev,run}
    ln -s usr/bin "$root/bin"
    ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"

    put "$root" "$BUSYBOX"
    for applet in $("$BUSYBOX" --list); do
        [[ "$applet" == busybox ]] && continue
        [[ -e "$root/usr/bin/$applet" || -L "$root/usr/bin/$applet" ]] && continue
        ln -s busybox "$root/usr/bin/$applet"
    done
    ln -s ../bin/busybox "$root/usr/sbin/nologin"

    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
redis:x:999:999:redis:/data:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
redis:x:999:
nogroup:x:65534:
EOF
    cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
services: files
protocols: files
EOF
    # Docker bind-mounts its own /etc/hosts, /etc/resolv.conf and /etc/hostname.
    : >"$root/etc/hosts"
    : >"$root/etc/resolv.conf"
    : >"$root/etc/hostname"
    printf 'PRETTY_NAME="redis-ha test image (%s)"\n' "${OS_RELEASE:-host-assembled, Debian bookworm binaries}" >"$root/etc/os-release"
}


# build <tag> <rootfs-builder> <hash> <docker import --change args...>
build() {
    local tag="$1" builder="$2" hash="$3"
    shift 3
    local current old_id new_id root="$WORK/${builder}"
    current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$tag" 2>/dev/null || true)"
    if [[ "${FORCE:-0}" != 1 && "$current" == "$hash" ]]; then
        log "$tag is up to date ($LABEL_KEY=$hash), skipping"
        return 0
    fi
    old_id="$(docker image inspect --format '{{ .Id }}' "$tag" 2>/dev/null || true)"
    log "building $tag ($LABEL_KEY=$hash)"
    "$builder" "$root"
    new_id="$(tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
        docker import \
            --change "LABEL $LABEL_KEY=$hash" \
            --change "ENV PATH=$IMAGE_PATH" \
            "$@" \
            --message "built by tests/images/build.sh" \
            - "$tag")"
    [[ -n "$new_id" ]] || die "docker import of $tag returned no image id"
    if declare -F "smoke_$builder" >/dev/null && ! "smoke_$builder" "$tag"; then
        docker image rm "$tag" >/dev/null 2>&1 || true
        die "$tag does not work (smoke_$builder failed)"
    fi
    # The replaced image is now untagged; drop it if nothing uses it (best effort).
    if [[ -n "$old_id" && "$old_id" != "$new_id" ]] &&
        [[ -z "$(docker image inspect --format '{{ join .RepoTags " " }}' "$old_id" 2>/dev/null)" ]]; then
        docker image rm "$old_id" >/dev/null 2>&1 || log "note: old image $old_id still in use, left in place"
    fi
}
