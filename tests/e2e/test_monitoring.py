"""Monitoring that is proven: a real Prometheus scrapes a dev deployment on the real
Docker engine and evaluates the shipped rules (monitoring/prometheus-rules.yml).

Debian's `prometheus` (tests/run.sh installs it) runs on 127.0.0.1 with a temporary
configuration made of the scrape targets the program renders for the deployment (the
stack output prometheusScrapeConfigs, components/scrape.py: every node through its
exporter's /scrape endpoint, at the exporter's host port on 127.0.0.1), the shipped
rules file and a short scrape and evaluation interval. Everything is read from its HTTP
API; it is stopped and its directory removed whatever the test did. Prometheus reaches
nothing but 127.0.0.1: no Alertmanager, no remote write, every scrape target checked.

- On a healthy deployment of every topology (sentinel, cluster, both), once every
  target has been scraped and every rule group evaluated a few times, `ALERTS` is
  empty (not even a pending alert), and every dashboard panel's query that applies to
  the topology returns data.
- During a master kill (tests/verify/faults.py) the no-master and failover alerts go
  pending or firing, and resolve after the failover.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from redis_ha.components.outputs import SCRAPE_CONFIG

from tests.e2e import day2
from tests.e2e.day2 import Stack
from tests.support.e2e_stack import ROOT
from tests.support.redis_servers import terminate
from tests.verify import faults
from tests.verify.cluster_access import wait_healthy_cluster
from tests.verify.topology_state import wait_new_master

PROMETHEUS = "/usr/bin/prometheus"
RULES_FILE = ROOT / "monitoring" / "prometheus-rules.yml"
DASHBOARD_FILE = ROOT / "monitoring" / "grafana-dashboard.json"
LOCALHOST = "127.0.0.1"
INTERVAL_SECONDS = 2
SETTLE_SECONDS = 30
# A panel whose series only a backup job publishes (none exists yet: the rules' header).
NEEDS_A_BACKUP_JOB = {"redis_ha:backup_age_seconds"}
# Panels of replicas: no data where there is none by design (clusterReplicasPerShard 0).
NEEDS_REPLICAS = {"redis_master_link_up", "redis_connected_slave_lag_seconds", "redis_connected_slave_offset_bytes"}
# The alerts a master kill must raise (pending or firing) and that must end afterwards.
NO_MASTER_ALERTS = ("RedisNoMaster",)
FAILOVER_ALERTS = ("RedisSentinelFailover",)
# RedisSentinelFailover looks back 10 minutes (last_over_time(...[10m])): it resolves
# once the old master address is out of that window.
FAILOVER_WINDOW_SECONDS = 600

TOPOLOGIES = {
    "sentinel": {},
    "cluster": {"topology": "cluster", "clusterShards": 3, "clusterReplicasPerShard": 0, "minReplicasToWrite": 0},
    "both": {"topology": "both", "clusterShards": 3, "clusterReplicasPerShard": 1},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


@dataclass
class Prometheus:
    """A Prometheus process on 127.0.0.1 and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.loads(response.read().decode())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        return data["result"] if isinstance(data["result"], list) else [data["result"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert, pending or firing (the ALERTS series, with its state)."""
        return list(self.get("/api/v1/alerts")["alerts"])

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def prometheus_config(stack: Stack) -> dict[str, Any]:
    """The test's prometheus.yml: the rendered scrape targets, the shipped rules."""
    rendered = yaml.safe_load(stack.run.outputs[SCRAPE_CONFIG])
    jobs = rendered["scrape_configs"]
    for job in jobs:
        for static in job["static_configs"]:
            for target in static["targets"]:
                # Nothing but the exporters' ports published on 127.0.0.1.
                assert target.startswith(f"{LOCALHOST}:"), target
    return {
        "global": {
            "scrape_interval": f"{INTERVAL_SECONDS}s",
            "scrape_timeout": f"{INTERVAL_SECONDS}s",
            "evaluation_interval": f"{INTERVAL_SECONDS}s",
        },
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": jobs,
    }


@contextmanager
def running_prometheus(config: dict[str, Any]) -> Iterator[Prometheus]:
    """Prometheus with `config` in a temporary directory; stopped, and the directory
    removed, on the way out."""
    assert Path(PROMETHEUS).exists(), f"{PROMETHEUS} is missing: apt-get install prometheus (tests/run.sh does)"
    directory = Path(tempfile.mkdtemp(prefix="redis-ha-prometheus-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        check = subprocess.run(
            ["/usr/bin/promtool", "check", "config", str(config_file)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
        port = _free_port()
        log = directory / "prometheus.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={LOCALHOST}:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                cwd=directory,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        prometheus = Prometheus(f"http://{LOCALHOST}:{port}", process, log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, f"prometheus exited with {process.returncode}:\n{prometheus.log_tail()}"
            assert time.monotonic() < deadline, f"prometheus not ready within 30 s:\n{prometheus.log_tail()}"
            time.sleep(0.2)
        yield prometheus
    finally:
        if process is not None:
            terminate(process, grace=30)
        shutil.rmtree(directory, ignore_errors=True)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def expected_targets(config: dict[str, Any]) -> int:
    return sum(len(job["static_configs"]) for job in config["scrape_configs"])


def wait_full_evaluation(prometheus: Prometheus, config: dict[str, Any], timeout: float = 120) -> None:
    """Until every target is up and has been scraped a few times, and every rule group
    was evaluated after that: rate()/increase() have two samples, every rule has seen
    every series."""

    def scraped() -> bool:
        targets = prometheus.get("/api/v1/targets", state="active")["activeTargets"]
        if len(targets) != expected_targets(config):
            return False
        return all(t["health"] == "up" for t in targets)

    wait_for(scraped, timeout, "every scrape target up")
    # Samples of at least three scrapes for every target.
    time.sleep(3 * INTERVAL_SECONDS + 1)
    since = time.time()

    def evaluated() -> bool:
        groups = prometheus.get("/api/v1/rules")["groups"]
        assert groups, "prometheus loaded no rule group"
        return all(_timestamp(g["lastEvaluation"]) > since for g in groups)

    wait_for(evaluated, 4 * INTERVAL_SECONDS + 10, "an evaluation of every rule group")
    unhealthy = [
        (g["name"], r["name"], r.get("lastError"))
        for g in prometheus.get("/api/v1/rules")["groups"]
        for r in g["rules"]
        if r.get("health") not in ("ok", "unknown")
    ]
    assert not unhealthy, unhealthy


def _timestamp(rfc3339: str) -> float:
    """Prometheus' RFC 3339 times (nanoseconds, `Z`) as Unix time."""
    text = rfc3339.replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:
        fraction, sign, zone = tail.partition("+") if "+" in tail else tail.partition("-")
        text = f"{head}.{fraction[:6]}{sign}{zone}"
    return datetime.fromisoformat(text).timestamp()


def panel_queries(deployment: str) -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD_FILE.read_text())
    return [
        (f"panel {panel['id']} {panel['title']} {target['refId']}", target["expr"].replace("$deployment", deployment))
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def applies_to(expr: str, kinds: set[str], replicas: bool = True) -> bool:
    """Whether a panel query can have data on a deployment with these node kinds (and
    replicas or not): one that names only Sentinel-group kinds needs the Sentinel group,
    one that names only `cluster` needs a Redis Cluster; no backup job exists yet."""
    if any(name in expr for name in NEEDS_A_BACKUP_JOB):
        return False
    if not replicas and any(name in expr for name in NEEDS_REPLICAS):
        return False
    named = {k for k in ("redis", "sentinel", "cluster") if f'"{k}"' in expr or f"{k}|" in expr or f"|{k}" in expr}
    return not named or bool(named & kinds)


@contextmanager
def deployed(docker_client: docker.DockerClient, directory: Path, topology: str) -> Iterator[Stack]:
    with day2.deployed(docker_client, directory, prefix="rhmon", **TOPOLOGIES[topology]) as stack:
        if topology != "cluster":
            stack.healthy()
        if topology != "sentinel":
            wait_healthy_cluster(stack.outputs, stack.nodes("cluster"), timeout=120)
        yield stack


def deployed_kinds(topology: str) -> set[str]:
    return {"sentinel": {"redis", "sentinel"}, "cluster": {"cluster"}, "both": {"redis", "sentinel", "cluster"}}[
        topology
    ]


def has_replicas(topology: str) -> bool:
    return topology != "cluster" or int(str(TOPOLOGIES[topology]["clusterReplicasPerShard"])) > 0


@pytest.mark.e2e
@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_a_healthy_deployment_fires_nothing_and_every_panel_has_data(
    topology: str, test_images: None, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    with deployed(docker_client, tmp_path, topology) as stack:
        config = prometheus_config(stack)
        with running_prometheus(config) as prometheus:
            wait_full_evaluation(prometheus, config)
            # Every node is a target with the labels the rules read.
            series = prometheus.query(f'redis_up{{redis_ha_deployment="{stack.name}"}}')
            kinds = {s["metric"]["redis_ha_kind"] for s in series}
            assert kinds == deployed_kinds(topology), series
            assert all(s["value"][1] == "1" for s in series), series
            assert len(series) == expected_targets(config)
            # Nothing pending, nothing firing. The Sentinels may still be discovering each
            # other through the hello channel for a few seconds after `pulumi up`: a
            # bounded settle, then a further full evaluation with nothing at all.
            wait_for(lambda: prometheus.alerts() == [], SETTLE_SECONDS, "no alert on the healthy deployment")
            wait_full_evaluation(prometheus, config)
            assert prometheus.alerts() == [], json.dumps(prometheus.alerts(), indent=1)
            assert prometheus.query("ALERTS") == []
            empty = [
                where
                for where, expr in panel_queries(stack.name)
                if applies_to(expr, deployed_kinds(topology), replicas=has_replicas(topology))
                and not prometheus.query(expr)
            ]
            assert not empty, f"panels without data on a healthy {topology} deployment: {empty}"


def _alert_states(prometheus: Prometheus, names: tuple[str, ...]) -> dict[str, str]:
    return {a["labels"]["alertname"]: a["state"] for a in prometheus.alerts() if a["labels"]["alertname"] in names}


@pytest.mark.e2e
def test_a_master_kill_raises_the_no_master_and_failover_alerts_and_they_resolve(
    test_images: None, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    with deployed(docker_client, tmp_path, "sentinel") as stack:
        config = prometheus_config(stack)
        with running_prometheus(config) as prometheus:
            wait_full_evaluation(prometheus, config)
            assert prometheus.alerts() == [], prometheus.alerts()
            master = stack.healthy().master
            seen: dict[str, set[str]] = {name: set() for name in NO_MASTER_ALERTS + FAILOVER_ALERTS}

            def record() -> dict[str, str]:
                states = _alert_states(prometheus, NO_MASTER_ALERTS + FAILOVER_ALERTS)
                for name, state in states.items():
                    seen[name].add(state)
                return states

            faults.kill(master)
            try:
                # The Sentinels fail over; Prometheus sees the replicas without a master
                # (pending: RedisNoMaster waits 1 minute), then the moved master.
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    record()
                    if all(seen[name] for name in NO_MASTER_ALERTS + FAILOVER_ALERTS):
                        break
                    time.sleep(0.25)
                # The old master stays down: a master other than it, named by every Sentinel.
                new_host, _ = wait_new_master(stack.outputs, stack.nodes("sentinel"), master, 120)
                assert new_host != master.hostname
                for name in NO_MASTER_ALERTS + FAILOVER_ALERTS:
                    assert seen[name] & {"pending", "firing"}, f"{name} never went pending or firing: {seen}"
                # A master again: the no-master alert ends at the next evaluations.
                wait_for(
                    lambda: not (set(record()) & set(NO_MASTER_ALERTS)),
                    60,
                    f"{NO_MASTER_ALERTS} to resolve after the failover",
                )
                assert "firing" in seen[FAILOVER_ALERTS[0]] or record().get(FAILOVER_ALERTS[0]) == "firing"
            finally:
                faults.start(master)
            # The old master is back as a replica; nothing but the failover notice remains.
            stack.healthy(timeout=120)
            wait_for(
                lambda: {a["labels"]["alertname"] for a in prometheus.alerts()} <= set(FAILOVER_ALERTS),
                180,
                "every alert but the failover notice to resolve once the old master is back",
            )
            # The failover notice itself stays for its 10-minute window (FAILOVER_WINDOW_SECONDS) by
            # design; the promtool cases (monitoring/tests/alerts-test.yml) prove it resolves after.
            assert {a["labels"]["alertname"] for a in prometheus.alerts()} <= set(FAILOVER_ALERTS)
