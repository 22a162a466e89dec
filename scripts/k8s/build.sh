#!/usr/bin/env bash
# Build the local Kubernetes binaries (control plane, kubelet, kube-proxy, kubectl)
# etcd, CoreDNS, kube-router and a pause (sandbox) binary from Go modules, into the
# cache named by versions.env.
#
# Idempotent, part by part: each part (kubernetes, etcd, coredns, kube-router, pause)
# has a stamp in the cache naming the version it was built at, so changing one pin in
# versions.env rebuilds that part only; when every part is there it prints one line
# and exits 0. Each part is built in a small wrapper module generated in a temp dir:
#   - one requiring k8s.io/kubernetes at K8S_VERSION, with a `replace` line for each
#     k8s.io/* staging module, read from kubernetes' own go.mod (its `=> ./staging/...`
#     lines) and pointed at the published v0.<minor>.<patch> of that module;
#   - one requiring go.etcd.io/etcd/server/v3 at ETCD_VERSION, whose main calls
#     etcdmain.Main (what etcd's own main.go does);
#   - CoreDNS' coremain with the plugins the node's Corefile uses;
#   - kube-router's own command (github.com/cloudnativelabs/kube-router/v2/cmd/kube-router).
# The go build cache (GOCACHE) and module cache are the usual ones, so a rebuild after
# a cache wipe is fast. Any failure prints one line (module, version, error) and exits
# non-zero; the full log stays in $K8S_CACHE/build.log.
#
# Env: K8S_BUILD_JOBS (default 2: `go build -p`), K8S_FORCE_BUILD=1 to rebuild.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"

# part NAME VERSION BINARIES: the parts, what each is built at and what it leaves in K8S_BIN.
PARTS=(
    "kubernetes $K8S_VERSION kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kube-proxy,kubectl"
    "etcd $ETCD_VERSION etcd"
    "coredns $COREDNS_VERSION coredns"
    "kube-router $KUBE_ROUTER_VERSION kube-router"
    "pause stdlib pause"
)
stamp() { echo "$K8S_BIN/.built-$1"; }
# built NAME VERSION BINARIES: that part's stamp names VERSION and its binaries are there.
built() {
    local b
    [ "${K8S_FORCE_BUILD:-0}" != 1 ] && [ "$(cat "$(stamp "$1")" 2>/dev/null)" = "$2" ] || return 1
    for b in ${3//,/ }; do [ -x "$K8S_BIN/$b" ] || return 1; done
}
# A cache from before the per-part stamps has one stamp for three parts.
if [ -f "$K8S_BIN/.versions" ]; then
    for kv in $(cat "$K8S_BIN/.versions"); do echo "${kv#*=}" >"$(stamp "${kv%%=*}")"; done
    [ ! -x "$K8S_BIN/pause" ] || echo stdlib >"$(stamp pause)"
    rm -f "$K8S_BIN/.versions"
fi
TODO=()
for part in "${PARTS[@]}"; do
    read -r name version binaries <<<"$part"
    built "$name" "$version" "$binaries" || TODO+=("$name")
done
if [ ${#TODO[@]} -eq 0 ]; then
    echo "k8s: binaries for kubernetes $K8S_VERSION, etcd $ETCD_VERSION, coredns $COREDNS_VERSION, kube-router $KUBE_ROUTER_VERSION already in $K8S_BIN"
    exit 0
fi
todo() { [[ " ${TODO[*]} " == *" $1 "* ]]; }

command -v go >/dev/null || { echo "k8s build: FAILED: go is not on PATH" >&2; exit 1; }
mkdir -p "$K8S_BIN"
WORK="$(mktemp -d)"
mkdir -p "$WORK/out"
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=../gobuild.sh
. "$HERE/../gobuild.sh"
gobuild_init "k8s build" "$K8S_CACHE/build.log" "$K8S_GOTOOLCHAIN" "${K8S_BUILD_JOBS:-2}"

start=$(date +%s)
echo "k8s: building ${TODO[*]} into $K8S_BIN" >&2

build_kubernetes() {
KVER="$K8S_VERSION"
STAGING_VER="v0.${KVER#v1.}"                          # v1.34.4 -> v0.34.4
mkdir -p "$WORK/kube"
cd "$WORK/kube"
mark
"${GO[@]}" mod download -json "k8s.io/kubernetes@$KVER" >"$WORK/kube.json" 2>>"$LOG" ||
    { cat "$WORK/kube.json" >>"$LOG"; fail k8s.io/kubernetes "$KVER"; }
KGOMOD="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$WORK/kube.json")"
KGODIR="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$KGOMOD" | head -n1)"
{
    echo "module redis-ha.local/k8sbuild"
    echo
    echo "go $KGODIR"
    echo
    grep -E '^godebug ' "$KGOMOD" || true
    echo
    echo "require k8s.io/kubernetes $KVER"
    echo
    echo "replace ("
    # kubernetes' own staging list: `k8s.io/api => ./staging/src/k8s.io/api`
    sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$KGOMOD" | sort -u |
        while read -r m; do echo "	$m => $m $STAGING_VER"; done
    echo ")"
} >go.mod
nstaging="$(grep -c ' => k8s.io/' go.mod || true)"
[ "$nstaging" -gt 10 ] || { echo "k8s build: FAILED k8s.io/kubernetes@$KVER: found only $nstaging staging modules in its go.mod" >&2; exit 1; }
echo "k8s: building kubernetes $KVER ($nstaging staging modules at $STAGING_VER) into $K8S_BIN" >&2

PKGS=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    PKGS+=("k8s.io/kubernetes/cmd/$b")
done
mark
"${GO[@]}" get "${PKGS[@]/%/@$KVER}" >>"$LOG" 2>&1 || fail k8s.io/kubernetes "$KVER"

minor="${KVER#v1.}"; minor="${minor%%.*}"
LDFLAGS="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $p.gitVersion=$KVER -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    LDFLAGS+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
mark
"${GO[@]}" build -trimpath -ldflags "$LDFLAGS" -o "$WORK/out/" "${PKGS[@]}" >>"$LOG" 2>&1 ||
    fail k8s.io/kubernetes "$KVER"
}

# --- etcd -------------------------------------------------------------------------
build_etcd() {
mkdir -p "$WORK/etcd"
cd "$WORK/etcd"
cat >go.mod <<EOF
module redis-ha.local/etcdbuild

go 1.24
EOF
cat >main.go <<'EOF'
// etcd, as etcd's own main.go builds it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
mark
"${GO[@]}" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >>"$LOG" 2>&1 || fail go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
"${GO[@]}" mod tidy >>"$LOG" 2>&1 || fail go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
"${GO[@]}" build -trimpath -ldflags "-s -w" -o "$WORK/out/etcd" . >>"$LOG" 2>&1 ||
    fail go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
}

# --- CoreDNS: coremain and the four plugins the node's Corefile uses (not the whole
# plugin list of core/plugin, which pulls in every cloud provider's SDK).
build_coredns() {
mkdir -p "$WORK/coredns"
cd "$WORK/coredns"
printf 'module redis-ha.local/corednsbuild\n\ngo 1.24\n' >go.mod
cat >main.go <<'EOF'
// CoreDNS with the plugins the local node's Corefile uses; the directive order is
// CoreDNS' own (core/dnsserver), unregistered plugins are simply absent.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func main() { coremain.Run() }
EOF
mark
"${GO[@]}" get "github.com/coredns/coredns@$COREDNS_VERSION" >>"$LOG" 2>&1 || fail github.com/coredns/coredns "$COREDNS_VERSION"
"${GO[@]}" mod tidy >>"$LOG" 2>&1 || fail github.com/coredns/coredns "$COREDNS_VERSION"
"${GO[@]}" build -trimpath -ldflags "-s -w" -o "$WORK/out/coredns" . >>"$LOG" 2>&1 ||
    fail github.com/coredns/coredns "$COREDNS_VERSION"
}

# --- kube-router: its own main package, as its Makefile builds it (CGO off).
build_kube_router() {
mkdir -p "$WORK/kube-router"
cd "$WORK/kube-router"
printf 'module redis-ha.local/kuberouterbuild\n\ngo 1.24\n' >go.mod
local pkg=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
mark
"${GO[@]}" get "$pkg@$KUBE_ROUTER_VERSION" >>"$LOG" 2>&1 ||
    fail github.com/cloudnativelabs/kube-router/v2 "$KUBE_ROUTER_VERSION"
"${GO[@]}" build -trimpath -ldflags "-s -w" -o "$WORK/out/kube-router" "$pkg" >>"$LOG" 2>&1 ||
    fail github.com/cloudnativelabs/kube-router/v2 "$KUBE_ROUTER_VERSION"
}

# --- pause: the kubelet's sandbox image (a static binary; node.sh wraps it in an OCI
# image for ctr). The standard library only: it waits for a signal and reaps children.
build_pause() {
mkdir -p "$WORK/pause"
cd "$WORK/pause"
printf 'module redis-ha.local/pause\n\ngo 1.24\n' >go.mod
cat >main.go <<'EOF2'
// pause: the infra process of a pod sandbox. Exits on SIGINT/SIGTERM, reaps zombies.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF2
mark
"${GO[@]}" build -trimpath -ldflags "-s -w" -o "$WORK/out/pause" . >>"$LOG" 2>&1 || fail "pause (stdlib)" "$(go env GOVERSION)"
}

for part in "${PARTS[@]}"; do
    read -r name version binaries <<<"$part"
    todo "$name" || continue
    "build_${name//-/_}"
    for b in ${binaries//,/ }; do
        [ -x "$WORK/out/$b" ] || { echo "k8s build: FAILED: $b was not produced (see $LOG)" >&2; exit 1; }
        mv -f "$WORK/out/$b" "$K8S_BIN/$b"
    done
    echo "$version" >"$(stamp "$name")"
done
echo "k8s: built ${TODO[*]} in $(($(date +%s) - start))s into $K8S_BIN (kubernetes $K8S_VERSION, etcd $ETCD_VERSION, coredns $COREDNS_VERSION, kube-router $KUBE_ROUTER_VERSION)"
