"""The real Pulumi engine for tests/pulumi_engine: scripts/pulumi/build.sh, and a cluster
of its own (scripts/k8s/start.sh on free ports), stopped at the end of the session.

The engine binaries are built into the cache named by scripts/pulumi/versions.env when
`go` is on PATH (build.sh returns at once when they are there); without go and without
the binaries the tests are skipped, naming the missing binary. REDIS_HA_PULUMI_BUILD=0
never builds. REDIS_HA_K8S_STATE names the state dir of a start.sh already running
(left running). The node stage runs only with REDIS_HA_K8S_NODE=1, as in tests/k8s:
test_node_engine.py needs it (and is skipped, saying why, without it);
test_real_engine.py's `up` with skipAwait needs none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.api import Api

# start.sh is the k8s suite's: its state dir is read, and its ports chosen, alike.
from tests.support.k8s_cluster import NODE_STAGE_FAILURE, env_file, free_ports, require_node

ROOT = Path(__file__).resolve().parents[2]
PULUMI_SCRIPTS = ROOT / "scripts" / "pulumi"
K8S_SCRIPTS = ROOT / "scripts" / "k8s"


def _sourced(script: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Values of `names` after sourcing a versions.env (its defaults and env overrides)."""
    printed = "; ".join(f'printf "%s\\n" "${n}"' for n in names)
    out = subprocess.run(
        ["bash", "-c", f". {script}; {printed}"], capture_output=True, text=True, check=True, env=dict(os.environ)
    ).stdout
    return dict(zip(names, out.splitlines(), strict=True))


def _run(script: Path, env: dict[str, str]) -> str:
    result = subprocess.run(["nice", "-n", "19", "bash", str(script)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        pytest.fail(f"{script.relative_to(ROOT)} failed: {lines[-1] if lines else result.returncode}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="session")
def pulumi_bin() -> Path:
    """The dir with the pulumi CLI and pulumi-resource-kubernetes (no language host: programs run inline)."""
    pins = _sourced(PULUMI_SCRIPTS / "versions.env", ("PULUMI_BIN", "PULUMI_BINARIES"))
    bin_dir = Path(pins["PULUMI_BIN"])
    missing = [b for b in pins["PULUMI_BINARIES"].split() if not os.access(bin_dir / b, os.X_OK)]
    if missing and os.environ.get("REDIS_HA_PULUMI_BUILD") != "0" and shutil.which("go"):
        _run(PULUMI_SCRIPTS / "build.sh", dict(os.environ))
        missing = [b for b in pins["PULUMI_BINARIES"].split() if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"the Pulumi engine is not built ({names} missing in {bin_dir}): run scripts/pulumi/build.sh")
    return bin_dir


@pytest.fixture(scope="session")
def cluster() -> Iterator[Api]:
    """The session's one cluster, on free ports of 127.0.0.1: its node stage only with
    REDIS_HA_K8S_NODE=1 (test_node_engine.py needs it; test_real_engine.py needs none)."""
    existing = os.environ.get("REDIS_HA_K8S_STATE")
    if existing:
        api = Api(env_file(Path(existing))["K8S_API"], Path(existing))
        if not api.ready():
            pytest.fail(f"REDIS_HA_K8S_STATE={existing}: the apiserver there is not ready", pytrace=False)
        yield api
        return
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"redis-ha-k8s-pulumi-{os.getpid()}"
    env = {**os.environ, "K8S_STATE": str(state), "K8S_NODE": os.environ.get("REDIS_HA_K8S_NODE", "0")}
    names = ("K8S_API_PORT", "K8S_ETCD_PORT", "K8S_ETCD_PEER_PORT", "K8S_CM_PORT", "K8S_SCHED_PORT")
    env.update(zip(names, map(str, free_ports(len(names))), strict=True))
    _run(K8S_SCRIPTS / "build.sh", env)
    try:
        out = _run(K8S_SCRIPTS / "start.sh", env)
        NODE_STAGE_FAILURE[:] = [line for line in out.splitlines() if "node stage FAILED" in line]
        yield Api(env_file(state)["K8S_API"], state)
    finally:
        _run(K8S_SCRIPTS / "stop.sh", env)


@pytest.fixture(scope="session")
def control_plane(cluster: Api) -> Api:
    """The control plane (a node, when the session started one, is not used)."""
    return cluster


@pytest.fixture(scope="session")
def node_cluster(request: pytest.FixtureRequest) -> Api:
    """The cluster with a Ready node; skipped, saying why, without one (and without
    starting anything when the node stage was not asked for)."""
    if not os.environ.get("REDIS_HA_K8S_STATE") and os.environ.get("REDIS_HA_K8S_NODE") != "1":
        pytest.skip("no Ready node: the node stage was not asked for (REDIS_HA_K8S_NODE=1 runs it)")
    cluster: Api = request.getfixturevalue("cluster")
    require_node(cluster)
    return cluster
