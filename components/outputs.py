"""The stack outputs: the contract between a deploy and the verification suite.

`pulumi stack output --json --show-secrets > outputs.json` gives
`{"redisHa": <describe_deployment(...)>, "passwords": {user: password}}`; the
verification suite reads nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components import security
from components.settings import Settings
from components.topology import Node, SentinelTopology

CONTRACT_VERSION = 1


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
) -> dict[str, Any]:
    """A JSON-serialisable description of what was deployed (no secrets)."""

    def node(n: Node) -> dict[str, Any]:
        return {
            "name": n.name,
            "kind": n.kind,
            "role": n.role,
            "testinfraHost": testinfra_host(n),
            "host": n.hostname,
            "port": n.port,
            "hostEndpoint": f"{settings.host_bind_address}:{n.host_port}" if n.host_port else None,
        }

    return {
        "contractVersion": CONTRACT_VERSION,
        "name": settings.name,
        "backend": settings.backend,
        "topology": settings.topology,
        "redisVersion": settings.redis_version,
        "masterName": settings.master_name,
        "quorum": settings.quorum,
        "downAfterMilliseconds": settings.down_after_milliseconds,
        "failoverTimeout": settings.failover_timeout,
        "tls": settings.tls,
        "confDir": conf_dir,
        "protectedSettings": protected_settings(settings),
        "nodes": [node(n) for n in topology.nodes],
        "users": {
            "admin": "admin",
            "replication": security.REPLICA.name,
            "sentinel": security.SENTINEL.name,
            "exporter": security.EXPORTER.name,
            "sentinelClient": security.SENTINEL_CLIENT.name,
        },
        "roles": [
            {
                "name": r.name,
                "keys": list(r.keys),
                "channels": list(r.channels),
                "commands": list(r.commands),
                "broker": r.broker,
            }
            for r in settings.roles
        ],
    }
