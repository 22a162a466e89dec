"""Deploy the dev stack on the real Docker engine for the e2e tests and the benches
(tests/e2e/conftest.py's fixtures remove it afterwards).

The real program runs under Pulumi's mocks with the dev stack's config (locally built
test images substituted, a unique name, free host ports); the Docker resources it
registers are created by tests/support/applier.py. `verify` runs the post-deploy suite
on a deployment as users do.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.support.applier import Applied, DockerApplier
from tests.support.program import ProgramRun, run_program, stack_config

ROOT = Path(__file__).resolve().parents[2]
# The default engine (components/engines.py: Valkey 8.1), from tests/images/engines.txt.
REDIS_IMAGE = "redis-ha-test/valkey:8.1"
EXPORTER_IMAGE = "redis-ha-test/redis-exporter:1.45"


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port_range(count: int, avoid: set[int]) -> int:
    """The first port of `count` consecutive ports free on 127.0.0.1, between the
    toolkit's default host ports (16379-19121) and the kernel's ephemeral range: a
    published port freed while a drill has its container stopped must not become the
    source port of a client connection or another stack's port meanwhile, or the
    container cannot start again ("bind: address already in use")."""
    top = _ephemeral_low() - count
    top = top if top > 21000 else 65535 - count  # an unusual ephemeral range: no safe band
    for _ in range(200):
        start = 20000 + secrets.randbelow(top - 20000)
        ports = range(start, start + count)
        if start + count > 65535 or avoid.intersection(ports):
            continue
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        avoid.update(ports)
        return start
    raise RuntimeError("no free port range on 127.0.0.1")


# Subnets this process gave a stack: the stack's network may not exist yet.
_GIVEN_SUBNETS: set[ipaddress.IPv4Network] = set()


def free_subnet(prefix: int = 24) -> str:
    """A block of 172.16.0.0/16 that no network on the engine and no earlier stack of
    this run uses (`dockerSubnet`): the default, picked by the stack's name, may meet
    another run's leftover network on CI's engine."""
    client = docker.from_env()
    try:
        taken = set(_GIVEN_SUBNETS)
        for network in client.api.networks():
            for pool in (network.get("IPAM") or {}).get("Config") or []:
                if pool.get("Subnet", "").count(".") == 3:
                    taken.add(ipaddress.IPv4Network(pool["Subnet"], strict=False))
    finally:
        client.close()
    candidates = list(ipaddress.IPv4Network("172.16.0.0/16").subnets(new_prefix=prefix))
    for _ in range(len(candidates)):
        subnet = candidates[secrets.randbelow(len(candidates))]
        if not any(subnet.overlaps(t) for t in taken):
            _GIVEN_SUBNETS.add(subnet)
            return str(subnet)
    raise RuntimeError(f"no free /{prefix} in 172.16.0.0/16 on the Docker engine")


@dataclass
class Deployment:
    run: ProgramRun
    applied: Applied
    applier: DockerApplier
    outputs_path: Path
    name: str

    @property
    def outputs(self) -> dict:
        return json.loads(self.outputs_path.read_text())


def e2e_config(name: str, **overrides: object) -> dict:
    config = stack_config("dev")
    used: set[int] = set()
    config.update(
        name=name,
        masterName=f"{name}-master",
        redisImage=REDIS_IMAGE,
        exporterImage=EXPORTER_IMAGE,
        engine="valkey",
        engineVersion="8.1",  # the Debian valkey in the test image
        redisHostPort=_free_port_range(3, used),
        sentinelHostPort=_free_port_range(3, used),
        # The Sentinel group's exporters: its Redis nodes' and its Sentinels'.
        exporterHostPort=_free_port_range(2, used),
        # docs/settings.md: the smallest block of each topology, a /24 for sentinel.
        dockerSubnet=free_subnet({"cluster": 23, "both": 22}.get(str(overrides.get("topology")), 24)),
    )
    if overrides.get("topology") in ("cluster", "both"):
        # Room for a scale-out by one shard; the cluster's exporter next to the Sentinel
        # group's two with both.
        shards = int(str(overrides.get("clusterShards", 3))) + 1
        per_shard = 1 + int(str(overrides.get("clusterReplicasPerShard", 1)))
        config["clusterHostPort"] = _free_port_range(shards * per_shard, used)
        config["exporterHostPort"] = _free_port_range(3 if overrides["topology"] == "both" else 1, used)
    if overrides.get("backupTarget", "none") != "none":
        # Each backup worker's metrics follow the exporters in their range.
        exporters = {"cluster": 1, "both": 3}.get(str(overrides.get("topology")), 2)
        workers = 2 if overrides.get("topology") == "both" else 1
        config["exporterHostPort"] = _free_port_range(exporters + workers, used)
    config.update(overrides)
    return config


def deploy(name: str, tmp: Path, docker_client: docker.DockerClient, **overrides: object) -> Deployment:
    run = run_program(e2e_config(name, **overrides), stack="dev")
    applier = DockerApplier(docker_client)
    deployment = Deployment(run, Applied(), applier, tmp / f"{name}-outputs.json", name)
    try:
        applier.apply(run, deployment.applied)
    except BaseException:
        applier.destroy(deployment.applied)
        raise
    deployment.outputs_path.write_text(json.dumps(run.outputs))
    os.chmod(deployment.outputs_path, 0o600)
    return deployment


# A verify run that hangs is stopped here; each of its tests dumps every thread's stack
# after VERIFY_TEST_STACKS_S (pytest's faulthandler_timeout), so the hang names its line.
VERIFY_TIMEOUT_S = 900
VERIFY_TEST_STACKS_S = 240


def verify(outputs_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the suite exactly as users do: the redis-ha-verify entry point.

    The output goes to a file beside the outputs, so a run stopped at the timeout still
    shows what it printed (subprocess.run's capture is lost with the killed child)."""
    args = list(extra)
    pytest_args = ["-o", f"faulthandler_timeout={VERIFY_TEST_STACKS_S}"]
    args = [*args, *pytest_args] if "--" in args else [*args, "--", *pytest_args]
    command = [sys.executable, "-m", "tests.verify.cli", "--outputs", str(outputs_path), *args]
    log = outputs_path.with_name(f"{outputs_path.stem}-verify-{os.getpid()}-{secrets.token_hex(3)}.log")
    with log.open("w+") as out:
        try:
            finished = subprocess.run(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=VERIFY_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            out.seek(0)
            tail = out.read()[-20000:]
            raise AssertionError(
                f"redis-ha-verify still running after {VERIFY_TIMEOUT_S} s; its output:\n{tail}"
            ) from None
        out.seek(0)
        printed = out.read()
    log.unlink()
    return subprocess.CompletedProcess(command, finished.returncode, printed, "")
