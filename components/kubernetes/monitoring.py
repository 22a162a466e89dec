"""Monitoring on Kubernetes (`redis-ha:monitoring true`): the files of monitoring/ as the
resources a Prometheus Operator and Grafana's dashboard sidecar pick up.

- a ServiceMonitor per exporter: the operator scrapes the exporter sidecar of every
  Redis, Sentinel and Redis Cluster pod through the exporter's metrics Service (port
  `metrics`), and relabels every target with the labels the rules read
  (redis_ha_deployment, redis_ha_kind, instance = the pod's name);
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
from redis_ha.components import package_data
from redis_ha.components.kubernetes import pods
from redis_ha.components.plan import Exporter
from redis_ha.components.scrape import DEPLOYMENT_LABEL, KIND_LABEL
from redis_ha.components.settings import Settings

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


def relabelings(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """The target labels monitoring/prometheus-rules.yml reads, as the Docker scrape
    targets have them (components/scrape.py): the deployment (`<namespace>/<name>`:
    unique within a Prometheus that watches several namespaces), the kind of node the
    pod runs and `instance`, the pod's name (stable across restarts, unlike its IP)."""
    return [
        {"action": "replace", "targetLabel": DEPLOYMENT_LABEL, "replacement": f"{settings.namespace}/{settings.name}"},
        {"action": "replace", "targetLabel": KIND_LABEL, "replacement": kind},
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"},
    ]


def service_monitor_spec(settings: Settings, exporter: Exporter) -> dict[str, Any]:
    s = settings
    return {
        # The group's headless and client Services carry the same labels; only the
        # exporter's metrics Service has a `metrics` port, so only it yields targets
        # (one per pod, not-ready pods included: publishNotReadyAddresses).
        "selector": {"matchLabels": pods.selector_labels(s, exporter.watches)},
        "namespaceSelector": {"matchNames": [s.namespace]},
        "endpoints": [
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": "30s",
                "relabelings": relabelings(s, exporter.watches),
            }
        ],
    }


def deploy_monitoring(
    name: str,
    settings: Settings,
    namespace: pulumi.Input[str],
    parent: pulumi.Resource,
    exporters: tuple[Exporter, ...],
    with_files: bool = True,
) -> list[pulumi.Resource]:
    """A ServiceMonitor per exporter of part `name` (its sidecars in the pods of the
    group it watches) and, `with_files`, the PrometheusRule and the dashboard
    ConfigMap; children of `parent`."""
    s = settings
    opts = pulumi.ResourceOptions(parent=parent)
    labels = pods.labels(s, "monitoring")

    def meta(resource_name: str, extra: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(name=resource_name, namespace=namespace, labels={**labels, **(extra or {})})

    resources: list[pulumi.Resource] = []
    for exporter in exporters:
        # The Redis (or cluster) exporter's resource kept its name from before the
        # Sentinels had one.
        resource = f"{name}-service-monitor" if exporter.watches != "sentinel" else f"{name}-sentinel-service-monitor"
        resources.append(
            k8s.apiextensions.CustomResource(
                resource,
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=meta(exporter.node.name),
                spec=service_monitor_spec(s, exporter),
                opts=opts,
            )
        )
    if not with_files:
        return resources
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
    return [*resources, rules, dashboard]
