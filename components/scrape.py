"""The Prometheus scrape configuration of a Docker deployment: the documented scrape
targets (README, Monitoring). Pure; nothing here creates a resource.

On Docker every exporter is one container in front of all the nodes of its group (the
Redis nodes, the Sentinels, the cluster nodes), and each node is one scrape target
through the exporter's multi-target endpoint `/scrape?target=redis://<node>:<port>`.
Every target carries the labels monitoring/prometheus-rules.yml reads:

- `redis_ha_deployment`: the stack's `name`;
- `redis_ha_kind`: redis | sentinel | cluster, the kind of the node;
- `instance`: the node's container name, stable across restarts and failovers.

Prometheus reaches an exporter at its published host port (`hostBindAddress`, by
default 127.0.0.1) when ports are published; otherwise by its container name, which
resolves for a Prometheus attached to the part's network.

On Kubernetes the ServiceMonitors give the same labels
(components/kubernetes/monitoring.py); there is no static configuration to render.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from redis_ha.components.backup_plan import METRICS_PORT
from redis_ha.components.plan import Exporter, Part
from redis_ha.components.settings import Settings

DEPLOYMENT_LABEL = "redis_ha_deployment"
KIND_LABEL = "redis_ha_kind"
# The file `redis-ha render` writes (redis_ha/deployed_files.py).
RENDERED_FILE = "prometheus/scrape-configs.yml"


def exporter_address(settings: Settings, exporter: Exporter) -> str:
    node = exporter.node
    if node.host_port is not None:
        return f"{settings.host_bind_address}:{node.host_port}"
    return f"{node.hostname}:{node.port}"


def target_url(host: str, port: int) -> str:
    """The `target` parameter; the exporter's password file has one entry per such URL."""
    return f"redis://{host}:{port}"


def job_name(settings: Settings, exporter: Exporter) -> str:
    return f"{settings.name}-{exporter.watches}"


def scrape_configs(settings: Settings, parts: Iterable[Part]) -> list[dict[str, Any]]:
    """One scrape job per exporter, one static target per node it scrapes."""
    jobs = []
    for part in parts:
        for exporter in part.exporters:
            address = exporter_address(settings, exporter)
            jobs.append(
                {
                    "job_name": job_name(settings, exporter),
                    "metrics_path": "/scrape",
                    "static_configs": [
                        {
                            "targets": [address],
                            "labels": {
                                # becomes the `target` URL parameter
                                "__param_target": target_url(node.hostname, node.port),
                                "instance": node.name,
                                DEPLOYMENT_LABEL: settings.name,
                                KIND_LABEL: exporter.watches,
                            },
                        }
                        for node in exporter.targets
                    ],
                }
            )
    return jobs


def backup_scrape_configs(settings: Settings, parts: Iterable[Part]) -> list[dict[str, Any]]:
    """One job per backup worker: its own /metrics (redis_ha_backup_*), the target
    labelled like the exporters' (kind `backup`)."""
    jobs = []
    for part in parts:
        backup = part.backup
        if backup is None:
            continue
        address = (
            f"{settings.host_bind_address}:{backup.host_port}"
            if backup.host_port is not None
            else f"{backup.name}:{METRICS_PORT}"
        )
        labels = {"instance": backup.name, DEPLOYMENT_LABEL: settings.name, KIND_LABEL: "backup"}
        jobs.append({"job_name": backup.name, "static_configs": [{"targets": [address], "labels": labels}]})
    return jobs


def render_scrape_configs(settings: Settings, parts: Iterable[Part]) -> str:
    """The `scrape_configs:` section of a prometheus.yml, as YAML text."""
    header = (
        f"# Prometheus scrape targets of redis-ha deployment {settings.name} (Docker): every node\n"
        "# through its exporter's /scrape endpoint. Paste under scrape_configs: or load the\n"
        "# jobs into a prometheus.yml as they are; the rules need the labels as they are here.\n"
    )
    parts = tuple(parts)
    jobs = scrape_configs(settings, parts) + backup_scrape_configs(settings, parts)
    return header + yaml.safe_dump({"scrape_configs": jobs}, sort_keys=False)
