"""The stack outputs: the contract between a deploy and the verification suite.

`pulumi stack output --json --show-secrets > outputs.json` gives
`{"redisHa": <describe_deployment(...)>, "passwords": {user: password}}`; the
verification suite reads nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from redis_ha.components import security
from redis_ha.components.settings import Settings
from redis_ha.components.settings_roles import password_key
from redis_ha.components.topology import ClusterTopology, Node, SentinelTopology

CONTRACT_VERSION = 1
# The secret output with the system users' passwords (admin, replica, sentinel,
# exporter, sentinel-client, sentinel-exporter); application roles have one output each.
SYSTEM_PASSWORDS = "passwords"
# Docker: the Prometheus scrape configuration (components/scrape.py), YAML text.
SCRAPE_CONFIG = "prometheusScrapeConfigs"


def role_password_output(role: str) -> str:
    """The stack output holding an application role's password: its config key."""
    return password_key(role)


def stack_passwords(stack_outputs: Mapping[str, Any]) -> dict[str, str]:
    """user -> password from a `pulumi stack output --json --show-secrets` document:
    the system users' `passwords` and every role's own output."""
    passwords = dict(stack_outputs.get(SYSTEM_PASSWORDS) or {})
    for role in (stack_outputs.get("redisHa") or {}).get("roles", []):
        output = role.get("passwordOutput")
        if output in stack_outputs:
            passwords[role["name"]] = stack_outputs[output]
    return passwords


# Settings the verification suite compares with CONFIG GET on every Redis node.
def protected_settings(settings: Settings) -> dict[str, str]:
    save = " ".join(f"{s} {c}" for s, c in settings.save)
    return {
        "maxmemory": str(settings.maxmemory),
        "maxmemory-policy": settings.maxmemory_policy,
        "appendonly": "yes" if settings.appendonly else "no",
        "appendfsync": settings.appendfsync,
        "save": save,
        "min-replicas-to-write": str(settings.min_replicas_to_write),
        "min-replicas-max-lag": str(settings.min_replicas_max_lag),
        "enable-debug-command": "no",
        "enable-module-command": "no",
        "enable-protected-configs": "no",
    }


def describe_deployment(
    settings: Settings,
    topology: SentinelTopology,
    testinfra_host: Callable[[Node], str],
    conf_dir: str,
    start_script: str,
) -> dict[str, Any]:
    """A JSON-serialisable description of what was deployed (no secrets)."""

    return {
        **_common(settings, conf_dir),
        # Inside every Redis node: `sh <startScript> master|switchover` (redis-ha switchover).
        "startScript": start_script,
        "masterName": settings.master_name,
        "quorum": settings.quorum,
        "downAfterMilliseconds": settings.down_after_milliseconds,
        "failoverTimeout": settings.failover_timeout,
        "nodes": [_node(settings, n, testinfra_host) for n in topology.nodes],
        **_users_and_roles(settings),
    }


def _node(settings: Settings, n: Node, testinfra_host: Callable[[Node], str]) -> dict[str, Any]:
    return {
        "name": n.name,
        "kind": n.kind,
        "role": n.role,
        "testinfraHost": testinfra_host(n),
        "host": n.hostname,
        "port": n.port,
        "hostEndpoint": f"{settings.host_bind_address}:{n.host_port}" if n.host_port else None,
    }


def _common(settings: Settings, conf_dir: str) -> dict[str, Any]:
    return {
        "contractVersion": CONTRACT_VERSION,
        "name": settings.name,
        "backend": settings.backend,
        "topology": settings.topology,
        "redisVersion": settings.redis_version,
        "tls": settings.tls,
        "confDir": conf_dir,
        "protectedSettings": protected_settings(settings),
    }


def _users_and_roles(settings: Settings) -> dict[str, Any]:
    return {
        "users": {
            "admin": "admin",
            "replication": security.REPLICA.name,
            "sentinel": security.SENTINEL.name,
            "exporter": security.EXPORTER.name,
            "sentinelClient": security.SENTINEL_CLIENT.name,
            "sentinelExporter": security.SENTINEL_EXPORTER.name,
        },
        "roles": [
            {
                "name": r.name,
                "keys": list(r.keys),
                "channels": list(r.channels),
                "commands": list(r.commands),
                "broker": r.broker,
                "scan": r.scan,
                # the secret stack output with its password
                "passwordOutput": role_password_output(r.name),
            }
            for r in settings.roles
        ],
        # What every user may run, per server kind (tests/verify/test_least_privilege.py).
        "acl": security.allowlists(settings),
    }


# --- Redis Cluster ---------------------------------------------------------------------


def cluster_settings(settings: Settings, data_dir: str) -> dict[str, str]:
    """What the verification suite compares with CONFIG GET on every cluster node."""
    return {
        "cluster-enabled": "yes",
        "cluster-config-file": f"{data_dir}/nodes.conf",
        "cluster-node-timeout": str(settings.cluster_node_timeout),
        "cluster-port": str(settings.bus_port),
        "cluster-preferred-endpoint-type": "hostname" if settings.announce_hostnames else "ip",
        "cluster-require-full-coverage": "yes",
    }


def describe_cluster(
    settings: Settings,
    cluster: ClusterTopology,
    testinfra_host: Callable[[Node], str],
    conf_dir: str,
    data_dir: str,
    create_step: str,
) -> dict[str, Any]:
    """A cluster-only deployment: the common fields, the cluster nodes (kind
    `cluster`, role at deploy time, shard) and their exporter, and a `cluster` section."""
    nodes = [{**_node(settings, m.node, testinfra_host), "shard": m.shard} for m in cluster.members]
    if cluster.exporter is not None:
        nodes.append(_node(settings, cluster.exporter, testinfra_host))
    return {
        **_common(settings, conf_dir),
        "nodes": nodes,
        "cluster": {
            "shards": cluster.shards,
            "replicasPerShard": cluster.replicas_per_shard,
            "nodeTimeout": settings.cluster_node_timeout,
            "busPort": settings.bus_port,
            "dataDir": data_dir,
            # the one-shot container or Job that creates and scales the cluster
            "createStep": create_step,
            "settings": cluster_settings(settings, data_dir),
        },
        **_users_and_roles(settings),
    }


def combine_deployments(sentinel: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Topology `both`: the Sentinel group's description plus the cluster's nodes and section."""
    section = dict(cluster["cluster"])
    if "backup" in cluster:
        section["backup"] = cluster["backup"]
    return {**sentinel, "nodes": [*sentinel["nodes"], *cluster["nodes"]], "cluster": section}
