"""`redis-ha:monitoring true` on the prod stack under Pulumi's mocks: the alert rules,
the dashboard and the scrape configuration are shipped exactly as monitoring/ holds
them; nothing of it exists by default, and the docker backend refuses the setting."""

from __future__ import annotations

import json

import pytest
import yaml
from redis_ha.components.kubernetes.monitoring import DASHBOARD_FILE, RULES_FILE

from tests.support.program import ProgramRun, run_program, stack_config

COMPONENT = "redis-ha:kubernetes:RedisHA"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"


@pytest.fixture(scope="module")
def monitored() -> ProgramRun:
    return run_program({**stack_config("prod"), "monitoring": "true"}, stack="prod")


def _dashboards(run: ProgramRun) -> list:
    return [c for c in run.of_type(CONFIGMAP) if c.inputs["metadata"]["labels"].get("grafana_dashboard") == "1"]


def test_nothing_is_shipped_by_default() -> None:
    run = run_program(stack_config("prod"), stack="prod")
    assert run.of_type(PROMETHEUS_RULE) == [] and run.of_type(SERVICE_MONITOR) == []
    assert _dashboards(run) == []


def test_prometheus_rule_holds_the_rules_file(monitored: ProgramRun) -> None:
    (rule,) = monitored.of_type(PROMETHEUS_RULE)
    assert rule.inputs["apiVersion"] == "monitoring.coreos.com/v1" and rule.inputs["kind"] == "PrometheusRule"
    assert rule.inputs["spec"] == yaml.safe_load(RULES_FILE.read_text())
    assert rule.inputs["metadata"]["namespace"] == "redis"


def test_dashboard_configmap_holds_the_dashboard_file(monitored: ProgramRun) -> None:
    (dashboard,) = _dashboards(monitored)
    assert dashboard.inputs["data"] == {"redis-ha.json": DASHBOARD_FILE.read_text()}
    json.loads(dashboard.inputs["data"]["redis-ha.json"])
    assert dashboard.inputs["metadata"]["namespace"] == "redis"


@pytest.mark.parametrize(
    ("monitor_name", "kind"), [("redis-ha-exporter", "redis"), ("redis-ha-sentinel-exporter", "sentinel")]
)
def test_service_monitor_scrapes_the_exporter_service(monitored: ProgramRun, monitor_name: str, kind: str) -> None:
    monitors = {m.inputs["metadata"]["name"]: m for m in monitored.of_type(SERVICE_MONITOR)}
    assert sorted(monitors) == ["redis-ha-exporter", "redis-ha-sentinel-exporter"]
    spec = monitors[monitor_name].inputs["spec"]
    wanted = spec["selector"]["matchLabels"]
    selected = [s for s in monitored.of_type(SERVICE) if wanted.items() <= s.inputs["metadata"]["labels"].items()]
    ports = {p["name"] for s in selected for p in s.inputs["spec"]["ports"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in ports
    # Only the exporter Service has that port: one target per pod, not two.
    (service,) = [s for s in selected if endpoint["port"] in {p["name"] for p in s.inputs["spec"]["ports"]}]
    assert service.inputs["metadata"]["name"] == monitor_name
    # A pod that is not ready (a replica out of sync) is still scraped.
    assert service.inputs["spec"]["publishNotReadyAddresses"] is True
    assert spec["namespaceSelector"] == {"matchNames": ["redis"]}
    # The labels the rules read (monitoring/prometheus-rules.yml's header).
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "redis_ha_deployment", "replacement": "redis/redis-ha"},
        {"action": "replace", "targetLabel": "redis_ha_kind", "replacement": kind},
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"},
    ]


def test_monitoring_resources_are_children_of_the_component(monitored: ProgramRun) -> None:
    component = monitored.by_name("redis-ha")
    assert component.type == COMPONENT
    shipped = monitored.of_type(PROMETHEUS_RULE) + monitored.of_type(SERVICE_MONITOR) + _dashboards(monitored)
    assert len(shipped) == 4 and all(r.parent == component.urn for r in shipped)


def test_docker_backend_refuses_monitoring() -> None:
    run = ProgramRun()
    with pytest.raises(Exception, match=r"redis-ha:monitoring: invalid value True"):
        run_program({**stack_config("dev"), "monitoring": "true"}, stack="dev", run=run)
    assert [r for r in run.resources if r.type.startswith("docker:")] == []


def test_monitoring_needs_the_exporter() -> None:
    with pytest.raises(Exception, match=r"redis-ha:monitoring: invalid value True.*exporter"):
        run_program({**stack_config("prod"), "monitoring": "true", "exporter": "false"}, stack="prod")


@pytest.mark.parametrize(
    ("topology", "exporters"),
    [
        ("cluster", ["redis-ha-cluster-exporter"]),
        ("both", ["redis-ha-cluster-exporter", "redis-ha-exporter", "redis-ha-sentinel-exporter"]),
    ],
)
def test_the_cluster_is_monitored_too(topology: str, exporters: list[str]) -> None:
    """With the cluster deployed, its exporter is scraped as well; rules and dashboard
    ship once per stack."""
    run = run_program({**stack_config("prod"), "monitoring": "true", "topology": topology}, stack="prod")
    assert len(run.of_type(PROMETHEUS_RULE)) == 1 and len(_dashboards(run)) == 1
    targets = []
    for monitor in run.of_type(SERVICE_MONITOR):
        spec = monitor.inputs["spec"]
        wanted = spec["selector"]["matchLabels"]
        (endpoint,) = spec["endpoints"]
        targets += [
            s.inputs["metadata"]["name"]
            for s in run.of_type(SERVICE)
            if wanted.items() <= s.inputs["metadata"]["labels"].items()
            and endpoint["port"] in {p["name"] for p in s.inputs["spec"]["ports"]}
        ]
    assert sorted(targets) == exporters
