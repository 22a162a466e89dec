"""The components a Pulumi program of its own creates: `RedisHA` (a master, its replicas
and the Sentinels) and `RedisCluster` (Redis Cluster shards), exported as
`from redis_ha import RedisHA, RedisHAArgs, RedisCluster, RedisClusterArgs`.

Each validates its settings (the `redis-ha:*` config keys of docs/settings.md, without
the prefix) before it registers anything, then deploys through the same code as the
stack program (components/program.py): its resources are its children, so the
provider the program gives it (`opts=ResourceOptions(provider=...)` or `providers=`)
reaches every one of them. docs/library.md shows a program using it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from redis_ha.components import outputs, security
from redis_ha.components.backend import Placement
from redis_ha.components.program import deploy_settings, warn_unless_secrets_mutable
from redis_ha.components.settings import Settings
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import CLUSTER, REDIS, SENTINEL


@dataclass(frozen=True)
class RedisHAArgs:
    """`settings`: config keys without the `redis-ha:` prefix (`backend` is required;
    `name` defaults to the resource name). `namespace`: an existing Kubernetes
    namespace to deploy into (None: the component creates `settings["namespace"]`).
    `network`: a Docker network of the program's own, which the Redis nodes and the
    Sentinels join besides their private one, reachable there by their hostnames.
    Passwords are generated (pulumi-random) and rotate with passwordGeneration."""

    settings: Mapping[str, Any]
    namespace: str | None = None
    network: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class RedisClusterArgs(RedisHAArgs):
    """As RedisHAArgs; the settings describe a Redis Cluster (clusterShards, ...)."""


def _addresses(deployment: pulumi.Output[dict[str, Any]], kind: str) -> pulumi.Output[list[str]]:
    return deployment.apply(lambda d: [f"{n['host']}:{n['port']}" for n in d["nodes"] if n["kind"] == kind])


class _Deployment(pulumi.ComponentResource):
    TOPOLOGY = ""
    TYPE = ""

    settings: Settings
    """the validated settings"""
    deployment: pulumi.Output[dict[str, Any]]
    """what was deployed (no secrets): the stack output `redisHa` of the stack program"""
    role_passwords: dict[str, pulumi.Output[str]]
    """application role (settings `roles`) -> its password, a secret"""
    system_passwords: pulumi.Output[dict[str, str]]
    """the toolkit's own users (admin, sentinel-client, ...) -> password, a secret"""

    def __init__(self, name: str, args: RedisHAArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        raw = {"name": name, **args.settings}
        topology = raw.setdefault("topology", self.TOPOLOGY)
        if topology != self.TOPOLOGY:
            raise SettingsError("topology", topology, f"{self.TOPOLOGY} (or unset) for a {type(self).__name__}")
        # Validated before the component registers: a bad value leaves nothing behind.
        self.settings = load_settings(raw)
        super().__init__(self.TYPE, name, None, opts)
        if opts is None or (opts.provider is None and not opts.providers):
            # The default provider: its config is the stack's. A provider of the program's
            # own needs enable_secret_mutable=True (docs/pulumi-engine.md), unseen from here.
            warn_unless_secrets_mutable(self.settings.backend)
        placement = Placement(pulumi.ResourceOptions(parent=self), args.namespace, args.network)
        stack_outputs = deploy_settings(self.settings, {}, placement=placement)
        self.deployment = stack_outputs["redisHa"]
        self.role_passwords = {
            role.name: stack_outputs[outputs.role_password_output(role.name)] for role in self.settings.roles
        }
        self.system_passwords = stack_outputs[outputs.SYSTEM_PASSWORDS]
        self.register_outputs({"deployment": self.deployment})


class RedisHA(_Deployment):
    """A Redis master, its replicas, the Sentinels (and redis_exporter, backups, as the
    settings say) in the program's Kubernetes cluster or Docker host."""

    TOPOLOGY = "sentinel"
    TYPE = "redis-ha:index:RedisHA"

    def __init__(self, name: str, args: RedisHAArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, args, opts)
        self.master_name: str = self.settings.master_name
        """the name the Sentinels monitor the master by (SENTINEL GET-MASTER-ADDR-BY-NAME)"""
        self.sentinel_addresses = _addresses(self.deployment, SENTINEL)
        """host:port of every Sentinel, as the program's containers or pods reach them"""
        self.redis_addresses = _addresses(self.deployment, REDIS)
        """host:port of every Redis node; ask the Sentinels which one is the master"""
        self.sentinel_client_password = self.system_passwords.apply(lambda p: p[security.SENTINEL_CLIENT.name])
        """the password of the `sentinel-client` user clients log in to the Sentinels with (a secret)"""


class RedisCluster(_Deployment):
    """Redis Cluster shards (a master and its replicas each) in the program's
    Kubernetes cluster or Docker host."""

    TOPOLOGY = "cluster"
    TYPE = "redis-ha:index:RedisCluster"

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, args, opts)
        self.seed_addresses = _addresses(self.deployment, CLUSTER)
        """host:port of every cluster node: a cluster client's seeds"""
