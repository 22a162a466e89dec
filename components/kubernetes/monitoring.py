"""Monitoring on Kubernetes (`redis-ha:monitoring true`): the files of monitoring/ as the
resources a Prometheus Operator and Grafana's dashboard sidecar pick up.

- a ServiceMonitor: the operator scrapes the exporter sidecar of every Redis pod
  through the exporter Service (port `metrics`), one job per deployment;
- a PrometheusRule holding monitoring/prometheus-rules.yml as it is;
- a ConfigMap labelled `grafana_dashboard: "1"` holding monitoring/grafana-dashboard.json.

The ServiceMonitor and the PrometheusRule are custom resources: the cluster needs the
Prometheus Operator's CRDs (kube-prometheus-stack installs them), and its Prometheus must
select them (ruleSelector, serviceMonitorSelector; kube-prometheus-stack selects only its
own Helm release's objects unless `*SelectorNilUsesHelmValues` is false). Grafana's
sidecar must watch this namespace (or all of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import package_data
from components.kubernetes import pods
from components.settings import Settings

MONITORING_DIR: Path = package_data.monitoring_dir()
RULES_FILE = MONITORING_DIR / "prometheus-rules.yml"
DASHBOARD_FILE = MONITORING_DIR / "grafana-dashboard.json"
DASHBOARD_KEY = "redis-ha.json"
# The label kube-prometheus-stack's Grafana sidecar looks for, with its default value.
GRAFANA_DASHBOARD_LABEL = {"grafana_dashboard": "1"}


def load_rules() -> dict[str, Any]:
    """monitoring/prometheus-rules.yml: {"groups": [...]}."""
    rules = yaml.safe_load(RULES_FILE.read_text())
    if not isinstance(rules, dict) or set(rules) != {"groups"}:
        raise ValueError(f"{RULES_FILE}: expected a mapping with only `groups`")
    return rules


def deploy_monitoring(
    name: str,
    settings: Settings,
    namespace: pulumi.Input[str],
    parent: pulumi.Resource,
    component: str,
    with_files: bool = True,
) -> list[pulumi.Resource]:
    """A ServiceMonitor for the exporter of the `component` pods of part `name` and,
    `with_files`, the PrometheusRule and the dashboard ConfigMap; children of `parent`."""
    s = settings
    opts = pulumi.ResourceOptions(parent=parent)
    labels = pods.labels(s, "monitoring")

    def meta(resource_name: str, extra: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(name=resource_name, namespace=namespace, labels={**labels, **(extra or {})})

    service_monitor = k8s.apiextensions.CustomResource(
        f"{name}-service-monitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata=meta(f"{name}-exporter"),
        spec={
            # The exporter Service and the headless one carry the same labels; only the
            # exporter Service has a `metrics` port, so only it yields targets.
            "selector": {"matchLabels": pods.selector_labels(s, component)},
            "namespaceSelector": {"matchNames": [s.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
        },
        opts=opts,
    )
    if not with_files:
        return [service_monitor]
    rules = k8s.apiextensions.CustomResource(
        f"{name}-prometheus-rules",
        api_version="monitoring.coreos.com/v1",
        kind="PrometheusRule",
        metadata=meta(f"{s.name}-rules"),
        spec=load_rules(),
        opts=opts,
    )
    dashboard = k8s.core.v1.ConfigMap(
        f"{name}-grafana-dashboard",
        metadata=meta(f"{s.name}-grafana-dashboard", GRAFANA_DASHBOARD_LABEL),
        data={DASHBOARD_KEY: DASHBOARD_FILE.read_text()},
        opts=opts,
    )
    return [service_monitor, rules, dashboard]
