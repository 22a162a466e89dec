#!/usr/bin/env bash
# Build the real Pulumi engine from Go modules into the cache named by versions.env:
#   pulumi                       github.com/pulumi/pulumi/pkg/v3 (cmd/pulumi)
#   pulumi-resource-kubernetes   github.com/pulumi/pulumi-kubernetes/provider/v4
#
# Each binary comes from its own small wrapper module generated in a temp dir: a go.mod
# requiring the module at its pin, plus the module's own `replace` lines that point at
# other published modules (its replaces onto paths inside the pulumi repo, such as
# `sdk/v3 => ../sdk`, are left out: the required published version is used instead).
# Separate wrappers keep each binary on the dependency versions its own go.mod asks for.
#
# Only the Go module proxy is used. No Python language host is built: the proxy does not
# serve its module, and `redis-ha up|preview|destroy|refresh` run the stack program
# inline through the Automation API, where the CLI talks to the calling Python process.
#
# Idempotent: with every binary present for the pinned versions it prints one line and
# exits 0. Any failure prints one line (module, version, error) and exits 1; the full
# log stays in $PULUMI_CACHE/build.log.
#
# Env: PULUMI_BUILD_JOBS (default 2: `go build -p`), PULUMI_FORCE_BUILD=1 to rebuild.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"

STAMP="$PULUMI_BIN/.versions"
WANT_STAMP="pulumi=$PULUMI_VERSION kubernetes=$PULUMI_K8S_PROVIDER_MODULE_VERSION/$PULUMI_K8S_PLUGIN_VERSION"

have_all() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] || return 1
    local b
    for b in $PULUMI_BINARIES; do [ -x "$PULUMI_BIN/$b" ] || return 1; done
}

if [ "${PULUMI_FORCE_BUILD:-0}" != 1 ] && have_all; then
    echo "pulumi: engine $PULUMI_VERSION, kubernetes provider $PULUMI_K8S_PLUGIN_VERSION already in $PULUMI_BIN"
    exit 0
fi

command -v go >/dev/null || { echo "pulumi build: FAILED: go is not on PATH" >&2; exit 1; }
mkdir -p "$PULUMI_BIN"
rm -f "$STAMP"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=../gobuild.sh
. "$HERE/../gobuild.sh"
gobuild_init "pulumi build" "$PULUMI_CACHE/build.log" "$PULUMI_GOTOOLCHAIN" "${PULUMI_BUILD_JOBS:-2}"

# wrapper NAME MODULE VERSION: a wrapper module in $WORK/NAME requiring MODULE@VERSION,
# with MODULE's go directive, godebug lines and replaces onto published modules.
wrapper() {
    local name="$1" mod="$2" ver="$3" dir="$WORK/$1"
    mkdir -p "$dir"
    (cd "$dir" && "${GO[@]}" mod download -json "$mod@$ver" >"$WORK/$name.json" 2>>"$LOG") ||
        { cat "$WORK/$name.json" >>"$LOG" 2>/dev/null; fail "$mod" "$ver"; }
    python3 - "$WORK/$name.json" "$mod" "$ver" "$dir/go.mod" <<'PY' >>"$LOG" 2>&1 || fail "$mod" "$ver"
import json, re, sys
info, mod, ver, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
if info.get("Error"):
    sys.exit("error: " + info["Error"])
text = open(info["GoMod"]).read()
go = re.search(r"^go ([0-9.]+)", text, re.M).group(1)
lines = [f"module redis-ha.local/pulumibuild", "", f"go {go}", ""]
lines += re.findall(r"^godebug .*$", text, re.M)
lines += ["", f"require {mod} {ver}", ""]
# replace lines, single or in a block; keep those whose target is a published module.
body = re.sub(r"^replace \(\n(.*?)^\)", lambda m: "\n".join("replace " + l.strip() for l in m.group(1).splitlines() if l.strip()), text, flags=re.M | re.S)
for l in re.findall(r"^replace (.+)$", body, re.M):
    target = l.split("=>", 1)[1].strip()
    if not target.startswith((".", "/")):
        lines.append("replace " + l.strip())
open(out, "w").write("\n".join(lines) + "\n")
print(f"wrapper for {mod}@{ver}:\n" + "\n".join(lines))
PY
}

# build NAME MODULE VERSION PACKAGE OUTPUT [LDFLAGS]
build() {
    local name="$1" mod="$2" ver="$3" pkg="$4" out="$5" ldflags="${6:-}" t0=$SECONDS
    mark
    wrapper "$name" "$mod" "$ver"
    (cd "$WORK/$name" && "${GO[@]}" build -trimpath -ldflags "-s -w $ldflags" -o "$PULUMI_BIN/$out.tmp" "$pkg") >>"$LOG" 2>&1 ||
        fail "$mod" "$ver"
    mv "$PULUMI_BIN/$out.tmp" "$PULUMI_BIN/$out"
    echo "pulumi build: $out ($mod@$ver) in $((SECONDS - t0))s" | tee -a "$LOG"
}

start=$SECONDS
SDK_VERSION_PKG=github.com/pulumi/pulumi/sdk/v3/go/common/version

build cli github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi pulumi \
    "-X $SDK_VERSION_PKG.Version=$PULUMI_VERSION"

# The provider's main package embeds schema-embed.json and terraform-mapping-embed.json,
# which its Makefile generates (generate.go) and the module does not ship: `go build` of
# the module's package fails with "pattern schema-embed.json: no matching files found".
# So its main.go is built as the wrapper's own main package, next to the two files made
# the same way: schema.json with "version" set to the plugin version, both compacted.
K8S_MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
mark
t0=$SECONDS
wrapper kubernetes "$K8S_MOD" "$PULUMI_K8S_PROVIDER_MODULE_VERSION"
K8S_DIR="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$WORK/kubernetes.json")/cmd/pulumi-resource-kubernetes"
mkdir -p "$WORK/kubernetes/main"
cp "$K8S_DIR/main.go" "$WORK/kubernetes/main/main.go"
chmod u+w "$WORK/kubernetes/main/main.go"
python3 - "$K8S_DIR" "$WORK/kubernetes/main" "$PULUMI_K8S_PLUGIN_VERSION" <<'PY' >>"$LOG" 2>&1 || fail "$K8S_MOD" "$PULUMI_K8S_PROVIDER_MODULE_VERSION"
import json, sys
src, out, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{out}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{src}/terraform-mapping.json")), open(f"{out}/terraform-mapping-embed.json", "w"), separators=(",", ":"))
PY
(cd "$WORK/kubernetes" && "${GO[@]}" build -trimpath \
    -ldflags "-s -w -X $K8S_MOD/pkg/version.Version=$PULUMI_K8S_PLUGIN_VERSION" \
    -o "$PULUMI_BIN/pulumi-resource-kubernetes.tmp" ./main) >>"$LOG" 2>&1 ||
    fail "$K8S_MOD" "$PULUMI_K8S_PROVIDER_MODULE_VERSION"
mv "$PULUMI_BIN/pulumi-resource-kubernetes.tmp" "$PULUMI_BIN/pulumi-resource-kubernetes"
echo "pulumi build: pulumi-resource-kubernetes ($K8S_MOD@$PULUMI_K8S_PROVIDER_MODULE_VERSION, reports $PULUMI_K8S_PLUGIN_VERSION) in $((SECONDS - t0))s" | tee -a "$LOG"

echo "$WANT_STAMP" >"$STAMP"
echo "pulumi: built $PULUMI_BINARIES in $((SECONDS - start))s into $PULUMI_BIN" | tee -a "$LOG"
