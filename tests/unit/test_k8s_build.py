"""scripts/k8s/build.sh decides part by part what to build: each part (kubernetes, etcd,
CoreDNS, kube-router, pause) has a stamp naming the version it was built at, so a new
pin rebuilds that part only, and a cache from before the per-part stamps is kept.

These tests run the real script with a stand-in `go` first on PATH, which records each
call and writes the binaries `go build -o` names, so nothing is downloaded or compiled.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "k8s" / "build.sh"
KUBERNETES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"]
ALL = [*KUBERNETES, "etcd", "coredns", "kube-router", "pause"]
PINS = {
    "K8S_VERSION": "v1.34.4",
    "ETCD_VERSION": "v3.6.16",
    "COREDNS_VERSION": "v1.15.0",
    "KUBE_ROUTER_VERSION": "v2.1.0",
}

# The stand-in: `go mod download -json` answers with a go.mod that has kubernetes'
# staging replaces; `go build -o OUT PKG...` writes OUT (a dir: one file per package);
# FAIL_MODULE makes any call naming it fail as the proxy would.
FAKE_GO = r"""#!/usr/bin/env python3
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["GO_CALLS"], "a") as log:
    log.write(" ".join(args) + "\n")
fail = os.environ.get("FAIL_MODULE")
if fail and any(fail in a for a in args):
    print(f"go: {fail}@v9.9.9: reading https://proxy.golang.org/...: 403 Forbidden", file=sys.stderr)
    sys.exit(1)
if args[:2] == ["env", "GOVERSION"]:
    print("go1.26.8")
elif args[:3] == ["mod", "download", "-json"]:
    gomod = Path(os.environ["GO_CALLS"]).with_name("kubernetes.mod")
    staging = "".join(f"\tk8s.io/m{i} => ./staging/src/k8s.io/m{i}\n" for i in range(12))
    gomod.write_text(f"module k8s.io/kubernetes\n\ngo 1.24.0\n\nreplace (\n{staging})\n")
    print(json.dumps({"GoMod": str(gomod)}))
elif args[0] == "get" and "k8s.io/kubernetes" in args[1]:
    Path(os.environ["GO_CALLS"]).with_name("wrapper.mod").write_text(Path("go.mod").read_text())
elif args[0] == "build":
    out = args[args.index("-o") + 1]
    packages = [a for a in args[args.index("-o") + 2:] if not a.startswith("-")]
    targets = [Path(out) / p.rsplit("/", 1)[-1] for p in packages] if out.endswith("/") else [Path(out)]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text("#!/bin/sh\n")
        t.chmod(0o755)
"""


def run_build(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "go").write_text(FAKE_GO)
    (fake / "go").chmod(0o755)
    calls = tmp_path / "go-calls"
    calls.write_text("")
    full_env = {
        **os.environ,
        **PINS,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "K8S_CACHE": str(tmp_path / "cache"),
        "GO_CALLS": str(calls),
        **env,
    }
    result = subprocess.run(["bash", str(BUILD)], env=full_env, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines()


def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "bin"


def built_modules(calls: list[str]) -> set[str]:
    """The modules the script asked `go get` or `go mod download` for."""
    names = {
        "k8s.io/kubernetes": "kubernetes",
        "go.etcd.io/etcd": "etcd",
        "github.com/coredns/coredns": "coredns",
        "github.com/cloudnativelabs/kube-router": "kube-router",
    }
    seen = set()
    for call in calls:
        if call.startswith(("get ", "mod download")):
            seen |= {part for module, part in names.items() if module in call}
    if any(call.startswith("build") and "/pause" in call for call in calls):
        seen.add("pause")
    return seen


def test_an_empty_cache_builds_every_part_and_stamps_each(tmp_path: Path) -> None:
    result, calls = run_build(tmp_path)
    assert result.returncode == 0, result.stderr
    assert built_modules(calls) == {"kubernetes", "etcd", "coredns", "kube-router", "pause"}
    assert sorted(p.name for p in bin_dir(tmp_path).iterdir() if not p.name.startswith(".")) == sorted(ALL)
    stamps = {p.name: p.read_text().strip() for p in bin_dir(tmp_path).glob(".built-*")}
    assert stamps == {
        ".built-kubernetes": "v1.34.4",
        ".built-etcd": "v3.6.16",
        ".built-coredns": "v1.15.0",
        ".built-kube-router": "v2.1.0",
        ".built-pause": "stdlib",
    }
    # The wrapper module points each of kubernetes' staging modules at its published version.
    wrapper = (tmp_path / "wrapper.mod").read_text()
    assert "require k8s.io/kubernetes v1.34.4" in wrapper, wrapper
    assert all(f"k8s.io/m{i} => k8s.io/m{i} v0.34.4" in wrapper for i in range(12)), wrapper


def test_a_complete_cache_is_used_without_calling_go(tmp_path: Path) -> None:
    run_build(tmp_path)
    result, calls = run_build(tmp_path)
    assert result.returncode == 0 and calls == [], (result.stderr, calls)
    assert "already in" in result.stdout


@pytest.mark.parametrize(("pin", "part"), [("ETCD_VERSION", "etcd"), ("KUBE_ROUTER_VERSION", "kube-router")])
def test_a_new_pin_rebuilds_that_part_only(tmp_path: Path, pin: str, part: str) -> None:
    run_build(tmp_path)
    result, calls = run_build(tmp_path, **{pin: "v9.0.0"})
    assert result.returncode == 0, result.stderr
    assert built_modules(calls) == {part}, calls
    assert (bin_dir(tmp_path) / f".built-{part}").read_text().strip() == "v9.0.0"


def test_a_cache_with_the_old_single_stamp_builds_only_what_it_lacks(tmp_path: Path) -> None:
    bins = bin_dir(tmp_path)
    bins.mkdir(parents=True)
    for name in [b for b in ALL if b != "kube-router"]:
        (bins / name).write_text("#!/bin/sh\n")
        (bins / name).chmod(0o755)
    (bins / ".versions").write_text("kubernetes=v1.34.4 etcd=v3.6.16 coredns=v1.15.0\n")
    result, calls = run_build(tmp_path)
    assert result.returncode == 0, result.stderr
    assert built_modules(calls) == {"kube-router"}, calls
    assert not (bins / ".versions").exists()
    assert (bins / "kube-router").exists()


def test_a_failing_part_names_module_and_version_in_one_line_and_keeps_the_old_binary(tmp_path: Path) -> None:
    run_build(tmp_path)
    old = (bin_dir(tmp_path) / "kube-router").stat().st_mtime_ns
    result, _ = run_build(tmp_path, KUBE_ROUTER_VERSION="v9.9.9", FAIL_MODULE="kube-router")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("k8s build: FAILED github.com/cloudnativelabs/kube-router/v2@v9.9.9: "), line
    assert "403 Forbidden" in line, line
    assert (bin_dir(tmp_path) / "kube-router").stat().st_mtime_ns == old
    assert (bin_dir(tmp_path) / ".built-kube-router").read_text().strip() == "v2.1.0"
    assert result.stderr.count("FAILED") == 1, result.stderr
