"""The open-loop load generator (bench/loadgen) against real redis-server processes on
127.0.0.1: its JSON, its rate, and that a stalled server shows in its latencies for
every request due during the stall (open loop), not only those in flight."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.live import LiveDeployment
from tests.support.redis_servers import BareRedis

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us")


@pytest.fixture(scope="module")
def loadgen() -> Path:
    if shutil.which("go") is None:
        pytest.skip("go is not on PATH: bench/loadgen cannot be built, its tests did not run")
    built = subprocess.run(["bash", str(ROOT / "bench/loadgen/build.sh")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture
def server(tmp_path: Path):
    bare = BareRedis(tmp_path / "redis")
    try:
        yield bare
    finally:
        os.kill(bare.process.pid, signal.SIGCONT)  # never leave it stopped
        bare.stop()


def run(loadgen: Path, *args: str, stdin: str = "") -> dict:
    done = subprocess.run([str(loadgen), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_fixed_rate_report(loadgen: Path, server: BareRedis) -> None:
    target = ("--addr", f"127.0.0.1:{server.port}", "--keys", "1000", "--preload")
    out = run(loadgen, *target, "--rate", "2000", "--duration", "2s", "--warmup", "300ms")
    assert out["preload"]["keys"] == 1000
    assert server.client().dbsize() == 1000
    assert out["rate_asked"] == 2000 and out["n"] == 4000
    assert out["errors"] == 0 and out["ok"] == 4000
    assert 1800 <= out["rate_achieved"] <= 2200, out
    values = [out[k] for k in FIGURES]
    assert values[0] > 0 and values == sorted(values), out
    assert {"late", "late_fraction", "saturated", "max_issue_lag_us", "percentile_method"} <= set(out)


def test_a_stall_counts_from_each_due_time(loadgen: Path, server: BareRedis) -> None:
    """8 connections, 2,000 requests/s, the server stopped for 300 ms: about 600 requests
    fall due during the stop. A closed loop would record only the 8 in flight (0.2 % of
    the sample, under p99); an open loop records each from its due time, so about 400
    of them wait 100 ms or more (10 %): p99 is far above 100 ms and max above 300 ms."""
    args = ["--addr", f"127.0.0.1:{server.port}", "--keys", "1000", "--rate", "2000", "--workers", "8"]
    proc = subprocess.Popen(
        [str(loadgen), *args, "--duration", "2s", "--warmup", "200ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        os.kill(server.process.pid, signal.SIGSTOP)
        time.sleep(0.3)
        os.kill(server.process.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["errors"] == 0, out
    assert out["max_us"] >= 300_000, out
    assert out["p99_us"] >= 100_000, out
    assert out["late"] >= 300 and out["saturated"], out


def test_discovers_the_master_through_sentinel(loadgen: Path, deployment: LiveDeployment) -> None:
    """As applications do: `sentinel-client` on the Sentinel, an ACL user on the master,
    both passwords on stdin."""
    secrets = {"password": deployment.passwords["admin"], "sentinel_password": deployment.passwords["sentinel-client"]}
    out = run(
        loadgen,
        *("--sentinels", f"127.0.0.1:{deployment.sentinel.port}", "--master-name", deployment.settings.master_name),
        *("--user", "admin", "--auth-stdin", "--keys", "100", "--preload", "--rate", "1000"),
        *("--duration", "1s", "--warmup", "100ms"),
        stdin=json.dumps(secrets),
    )
    assert out["via_sentinel"] and out["target"] == f"127.0.0.1:{deployment.master.port}", out
    assert out["errors"] == 0 and out["n"] == 1000, out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "10"], "exactly one of --addr and --sentinels"),
        (["--sentinels", "127.0.0.1:1"], "--sentinels needs --master-name"),
        (["--addr", "127.0.0.1:1", "--get-ratio", "2"], "--get-ratio must be within 0..1"),
        (["--addr", "127.0.0.1:1", "--map", "x"], "--map wants FROM=TO"),
    ],
)
def test_bad_flags_are_named(loadgen: Path, args: list[str], message: str) -> None:
    done = subprocess.run([str(loadgen), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and message in done.stderr, done.stderr
