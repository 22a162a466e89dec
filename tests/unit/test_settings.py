"""load_settings: every bad configuration is refused with the key that is wrong.

What loads: tests/unit/test_settings_accepted.py; the roles and their grants:
tests/unit/test_settings_roles.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_load import load_settings

from tests.support.settings_cases import CACHE_ROLE, DOCKER, K8S, REFUSED, role

# (id, raw config, key the error must name)
BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    # keys and backend
    ("unknown-key", {**DOCKER, "replicaCount": 2}, "replicaCount"),
    ("unknown-secret-like-key", {**DOCKER, "masterPassword": "x"}, "masterPassword"),
    ("missing-backend", {}, "backend"),
    ("missing-backend-other-keys-set", {"replicas": 2}, "backend"),
    ("backend-unknown", {"backend": "swarm"}, "backend"),
    ("backend-wrong-case", {"backend": "Docker"}, "backend"),
    ("backend-not-a-string", {"backend": True}, "backend"),
    # topology and versions
    ("topology-unknown", {**DOCKER, "topology": "mesh"}, "topology"),
    ("topology-wrong-case", {**DOCKER, "topology": "Cluster"}, "topology"),
    ("redis-version-6.2", {**DOCKER, "redisVersion": "6.2"}, "redisVersion"),
    ("redis-version-7", {**DOCKER, "redisVersion": "7"}, "redisVersion"),
    ("redis-version-float", {**DOCKER, "redisVersion": 7.0}, "redisVersion"),
    ("redis-image-uppercase", {**DOCKER, "redisImage": "Redis:7.2"}, "redisImage"),
    ("redis-image-space", {**DOCKER, "redisImage": "redis 7.2"}, "redisImage"),
    ("exporter-image-empty", {**DOCKER, "exporterImage": ""}, "exporterImage"),
    ("exporter-not-bool", {**DOCKER, "exporter": "yes"}, "exporter"),
    ("monitoring-not-bool", {**K8S, "monitoring": "yes"}, "monitoring"),
    ("monitoring-on-docker", {**DOCKER, "monitoring": True}, "monitoring"),
    ("monitoring-without-exporter", {**K8S, "monitoring": "true", "exporter": "false"}, "monitoring"),
    # sizes of the deployment
    ("replicas-0", {**DOCKER, "replicas": 0}, "replicas"),
    ("replicas-9", {**DOCKER, "replicas": 9}, "replicas"),
    ("replicas-word", {**DOCKER, "replicas": "two"}, "replicas"),
    ("replicas-bool", {**DOCKER, "replicas": True}, "replicas"),
    ("replicas-float", {**DOCKER, "replicas": 2.0}, "replicas"),
    ("sentinels-2", {**DOCKER, "sentinels": 2}, "sentinels"),
    ("sentinels-10", {**DOCKER, "sentinels": 10}, "sentinels"),
    # Sentinel tuning (docs/redis-notes.md#quorum-and-timeouts)
    ("quorum-1-of-3-not-majority", {**DOCKER, "quorum": 1}, "quorum"),
    ("quorum-4-of-3", {**DOCKER, "quorum": 4}, "quorum"),
    ("quorum-2-of-5-not-majority", {**DOCKER, "sentinels": 5, "quorum": 2}, "quorum"),
    ("quorum-0", {**DOCKER, "quorum": 0}, "quorum"),
    (
        "down-after-equals-failover-timeout",
        {**DOCKER, "downAfterMilliseconds": 10000, "failoverTimeout": 10000},
        "downAfterMilliseconds",
    ),
    (
        "down-after-above-failover-timeout",
        {**DOCKER, "downAfterMilliseconds": "30000", "failoverTimeout": "20000"},
        "downAfterMilliseconds",
    ),
    ("down-after-500", {**DOCKER, "downAfterMilliseconds": 500}, "downAfterMilliseconds"),
    ("failover-timeout-1000", {**DOCKER, "failoverTimeout": 1000}, "failoverTimeout"),
    # the self-fence (docs/partitions.md): fenceAfter + one 250 ms round < downAfter
    ("fence-after-0", {**DOCKER, "fenceAfterMilliseconds": 0}, "fenceAfterMilliseconds"),
    ("fence-after-negative", {**DOCKER, "fenceAfterMilliseconds": "-5"}, "fenceAfterMilliseconds"),
    ("fence-after-not-a-number", {**DOCKER, "fenceAfterMilliseconds": "1s"}, "fenceAfterMilliseconds"),
    ("fence-after-bool", {**DOCKER, "fenceAfterMilliseconds": True}, "fenceAfterMilliseconds"),
    (
        "fence-after-equals-down-after",
        {**DOCKER, "fence": "true", "fenceAfterMilliseconds": 5000},
        "fenceAfterMilliseconds",
    ),
    (
        "fence-after-no-room-for-a-round",
        {**DOCKER, "fence": "true", "fenceAfterMilliseconds": 4750},
        "fenceAfterMilliseconds",
    ),
    (
        "fence-after-above-a-short-down-after",
        {**DOCKER, "fence": "true", "downAfterMilliseconds": 1000, "fenceAfterMilliseconds": 800},
        "fenceAfterMilliseconds",
    ),
    ("fence-not-bool", {**DOCKER, "fence": "off"}, "fence"),
    ("parallel-syncs-above-replicas", {**DOCKER, "parallelSyncs": 3}, "parallelSyncs"),
    ("parallel-syncs-0", {**DOCKER, "parallelSyncs": 0}, "parallelSyncs"),
    ("master-name-space", {**DOCKER, "masterName": "my master"}, "masterName"),
    # memory (docs/redis-notes.md#noeviction-with-a-broker-role)
    ("maxmemory-words", {**DOCKER, "maxmemory": "2 gigs"}, "maxmemory"),
    ("maxmemory-negative", {**DOCKER, "maxmemory": "-1"}, "maxmemory"),
    ("maxmemory-terabytes", {**DOCKER, "maxmemory": "2tb"}, "maxmemory"),
    ("maxmemory-bool", {**DOCKER, "maxmemory": True}, "maxmemory"),
    ("maxmemory-float", {**DOCKER, "maxmemory": 1.5}, "maxmemory"),
    ("maxmemory-k8s-unit", {**DOCKER, "maxmemory": "2Gi"}, "maxmemory"),
    ("eviction-policy-bogus", {**DOCKER, "maxmemoryPolicy": "lru"}, "maxmemoryPolicy"),
    ("allkeys-lru-with-broker-role", {**DOCKER, "maxmemoryPolicy": "allkeys-lru"}, "maxmemoryPolicy"),
    (
        "volatile-ttl-with-custom-broker-role",
        {**DOCKER, "maxmemoryPolicy": "volatile-ttl", "roles": [role(name="queue", broker=True)]},
        "maxmemoryPolicy",
    ),
    # persistence (docs/redis-notes.md#bounded-write-loss, docs/redis-notes.md#a-master-must-persist)
    ("appendfsync-bogus", {**DOCKER, "appendfsync": "sometimes"}, "appendfsync"),
    ("appendonly-yes-not-bool", {**DOCKER, "appendonly": "yes"}, "appendonly"),
    ("no-persistence-at-all", {**DOCKER, "appendonly": False, "save": []}, "appendonly"),
    ("no-persistence-strings", {**DOCKER, "appendonly": "false", "save": ""}, "appendonly"),
    ("save-one-number", {**DOCKER, "save": ["900"]}, "save"),
    ("save-plain-string-one-number", {**DOCKER, "save": "900"}, "save"),
    ("save-letters", {**DOCKER, "save": ["a b"]}, "save"),
    ("save-zero-seconds", {**DOCKER, "save": ["0 1"]}, "save"),
    ("save-not-a-list", {**DOCKER, "save": 900}, "save"),
    ("min-replicas-to-write-above-replicas", {**DOCKER, "minReplicasToWrite": 3}, "minReplicasToWrite"),
    ("min-replicas-max-lag-0", {**DOCKER, "minReplicasMaxLag": 0}, "minReplicasMaxLag"),
    # ports
    ("port-equals-sentinel-port", {**DOCKER, "port": 26379}, "sentinelPort"),
    ("exporter-port-equals-port", {**DOCKER, "exporterPort": 6379}, "exporterPort"),
    ("port-70000", {**DOCKER, "port": 70000}, "port"),
    ("port-0", {**DOCKER, "port": 0}, "port"),
    ("sentinel-port-string-word", {**DOCKER, "sentinelPort": "sentinel"}, "sentinelPort"),
    (
        "host-port-ranges-overlap",
        {**DOCKER, "redisHostPort": 26379, "sentinelHostPort": 26380},
        "sentinelHostPort",
    ),
    ("host-port-range-past-65535", {**DOCKER, "redisHostPort": 65534}, "redisHostPort"),
    ("host-port-privileged", {**DOCKER, "exporterHostPort": 80}, "exporterHostPort"),
    ("host-bind-address-hostname", {**DOCKER, "hostBindAddress": "localhost"}, "hostBindAddress"),
    ("host-bind-address-octet-300", {**DOCKER, "hostBindAddress": "300.1.1.1"}, "hostBindAddress"),
    ("docker-subnet-host-bits", {**DOCKER, "dockerSubnet": "172.16.8.1/24"}, "dockerSubnet"),
    ("docker-subnet-too-small", {**DOCKER, "dockerSubnet": "172.16.8.0/29"}, "dockerSubnet"),
    ("docker-subnet-not-cidr", {**DOCKER, "dockerSubnet": "my-network"}, "dockerSubnet"),
    ("docker-subnet-ipv6", {**DOCKER, "dockerSubnet": "fd00::/64"}, "dockerSubnet"),
    ("docker-subnet-number", {**DOCKER, "dockerSubnet": 24}, "dockerSubnet"),
    ("docker-subnet-loopback", {**DOCKER, "dockerSubnet": "127.1.0.0/24"}, "dockerSubnet"),
    ("docker-subnet-everything", {**DOCKER, "dockerSubnet": "0.0.0.0/0"}, "dockerSubnet"),
    ("docker-subnet-multicast", {**DOCKER, "dockerSubnet": "239.1.1.0/24"}, "dockerSubnet"),
    ("docker-subnet-on-kubernetes", {**K8S, "dockerSubnet": "172.16.8.0/24"}, "dockerSubnet"),
    # backend-specific
    ("tls-on-docker", {**DOCKER, "tls": True}, "tls"),
    ("publish-ports-on-kubernetes", {**K8S, "publishPorts": True}, "publishPorts"),
    ("publish-ports-string-on-kubernetes", {**K8S, "publishPorts": "true"}, "publishPorts"),
    # roles (docs/redis-notes.md#roles-match-what-clients-use)
    ("roles-not-a-list", {**DOCKER, "roles": "cache"}, "roles"),
    ("roles-object-not-list", {**DOCKER, "roles": CACHE_ROLE}, "roles"),
    ("roles-empty", {**DOCKER, "roles": []}, "roles"),
    ("role-not-an-object", {**DOCKER, "roles": ["cache"]}, "roles[0]"),
    ("role-missing-name", {**DOCKER, "roles": [{"keys": ["a:*"], "commands": ["+@read"]}]}, "roles[0].name"),
    ("role-reserved-admin", {**DOCKER, "roles": [role(name="admin")]}, "roles[0].name"),
    ("role-reserved-default", {**DOCKER, "roles": [role(name="default")]}, "roles[0].name"),
    ("role-reserved-sentinel-client", {**DOCKER, "roles": [role(name="sentinel-client")]}, "roles[0].name"),
    ("role-duplicate-name", {**DOCKER, "roles": [role(), role(keys=["other:*"])]}, "roles[1].name"),
    ("role-name-uppercase", {**DOCKER, "roles": [role(name="Cache")]}, "roles[0].name"),
    ("role-name-space", {**DOCKER, "roles": [role(name="my cache")]}, "roles[0].name"),
    ("role-key-with-space", {**DOCKER, "roles": [role(keys=["cache *"])]}, "roles[0].keys"),
    ("role-key-starts-with-acl-rule", {**DOCKER, "roles": [role(keys=["~cache:*"])]}, "roles[0].keys"),
    ("role-keys-not-a-list", {**DOCKER, "roles": [role(keys="cache:*")]}, "roles[0].keys"),
    ("role-channel-with-space", {**DOCKER, "roles": [role(channels=["a b"])]}, "roles[0].channels"),
    ("role-command-without-sign", {**DOCKER, "roles": [role(commands=["@read"])]}, "roles[0].commands"),
    ("role-command-two-rules-in-one", {**DOCKER, "roles": [role(commands=["+@read +@write"])]}, "roles[0].commands"),
    ("role-commands-only-removals", {**DOCKER, "roles": [role(commands=["-@all", "-flushall"])]}, "roles[0].commands"),
    ("role-commands-missing", {**DOCKER, "roles": [{"name": "cache", "keys": ["cache:*"]}]}, "roles[0].commands"),
    (
        "role-no-keys-no-channels",
        {**DOCKER, "roles": [{"name": "cache", "commands": ["+@read"]}]},
        "roles[0].keys",
    ),
    ("role-unknown-field", {**DOCKER, "roles": [role(acl="+@all")]}, "roles[0].acl"),
    ("role-broker-maybe", {**DOCKER, "roles": [role(broker="maybe")]}, "roles[0].broker"),
    ("role-description-not-string", {**DOCKER, "roles": [role(description=5)]}, "roles[0].description"),
    ("role-scan-maybe", {**DOCKER, "roles": [role(scan="maybe")]}, "roles[0].scan"),
    # A role's Kubernetes Secret (<name>-<role>) may not take the name of another Secret.
    ("role-named-like-the-redis-config-secret", {**K8S, "roles": [role(name="redis")]}, "roles[0].name"),
    ("role-named-like-the-ca-secret", {**DOCKER, "roles": [role(name="ca")]}, "roles[0].name"),
    # SCAN lists every key: a role asks for it with `scan: true`, not with a command rule
    # (docs/redis-notes.md#key-listing-commands); RANDOMKEY and CLIENT TRACKING never.
    ("role-scan-as-a-command", {**DOCKER, "roles": [role(commands=["+@read", "+scan"])]}, "roles[0].commands"),
    ("role-randomkey", {**DOCKER, "roles": [role(commands=["+@read", "+randomkey"])]}, "roles[0].commands"),
    ("role-client-tracking", {**DOCKER, "roles": [role(commands=["+client|tracking"])]}, "roles[0].commands"),
    ("role-script-debug", {**DOCKER, "roles": [role(commands=["+script|debug"])]}, "roles[0].commands"),
    ("second-role-bad", {**DOCKER, "roles": [role(), role(name="jobs", keys=["a b"])]}, "roles[1].keys"),
    ("role-name-not-a-string", {**DOCKER, "roles": [role(name=5)]}, "roles[0].name"),
    ("role-key-not-a-string", {**DOCKER, "roles": [role(keys=["cache:*", 5])]}, "roles[0].keys"),
    ("role-channels-not-a-list", {**DOCKER, "roles": [role(channels="filing:*")]}, "roles[0].channels"),
    ("role-channel-starts-with-acl-rule", {**DOCKER, "roles": [role(channels=["&filing:*"])]}, "roles[0].channels"),
    ("role-commands-comma-separated", {**DOCKER, "roles": [role(commands=["+@read,+@write"])]}, "roles[0].commands"),
    # names
    ("name-uppercase", {**DOCKER, "name": "RedisHA"}, "name"),
    ("name-one-char", {**DOCKER, "name": "r"}, "name"),
    ("name-too-long", {**DOCKER, "name": "r" * 41}, "name"),
    ("name-trailing-dash", {**DOCKER, "name": "redis-"}, "name"),
    # kubernetes
    ("namespace-underscore-uppercase", {**K8S, "namespace": "Redis_NS"}, "namespace"),
    ("storage-size-gb", {**K8S, "storageSize": "10GB"}, "storageSize"),
    ("storage-class-uppercase", {**K8S, "storageClass": "Fast_SSD"}, "storageClass"),
    ("cluster-shards-2", {**K8S, "clusterShards": 2}, "clusterShards"),
    ("cluster-replicas-per-shard-5", {**K8S, "clusterReplicasPerShard": 5}, "clusterReplicasPerShard"),
    ("client-timeout-negative", {**DOCKER, "clientTimeout": -1}, "clientTimeout"),
    # Redis Cluster (docs/redis-notes.md#redis-cluster)
    ("cluster-shards-2-on-docker", {**DOCKER, "topology": "cluster", "clusterShards": 2}, "clusterShards"),
    ("cluster-shards-word", {**DOCKER, "topology": "cluster", "clusterShards": "three"}, "clusterShards"),
    ("cluster-replicas-per-shard-negative", {**DOCKER, "clusterReplicasPerShard": -1}, "clusterReplicasPerShard"),
    ("cluster-node-timeout-500", {**DOCKER, "topology": "cluster", "clusterNodeTimeout": 500}, "clusterNodeTimeout"),
    (
        "cluster-min-replicas-above-replicas-per-shard",
        {**DOCKER, "topology": "cluster", "clusterReplicasPerShard": 1, "minReplicasToWrite": 2},
        "minReplicasToWrite",
    ),
    (
        "cluster-no-replicas-keeps-min-replicas-1",
        {**DOCKER, "topology": "both", "clusterReplicasPerShard": 0},
        "minReplicasToWrite",
    ),
    (
        "cluster-no-replicas-no-persistence",
        {
            **DOCKER,
            "topology": "cluster",
            "clusterReplicasPerShard": 0,
            "minReplicasToWrite": 0,
            "appendonly": False,
            "save": [],
        },
        "appendonly",
    ),
    ("cluster-bus-port-clashes-sentinel-port", {**DOCKER, "topology": "both", "port": 16379}, "port"),
    (
        "cluster-bus-port-equals-port",
        {**DOCKER, "topology": "cluster", "clusterBusPort": 6379},
        "clusterBusPort",
    ),
    (
        "cluster-bus-port-equals-exporter-port",
        {**K8S, "topology": "cluster", "clusterBusPort": 9121},
        "clusterBusPort",
    ),
    ("cluster-bus-port-privileged", {**DOCKER, "topology": "cluster", "clusterBusPort": 80}, "clusterBusPort"),
    ("cluster-bus-port-70000", {**DOCKER, "topology": "cluster", "clusterBusPort": 70000}, "clusterBusPort"),
    (
        "cluster-host-ports-overlap-redis-host-ports",
        {**DOCKER, "topology": "both", "clusterHostPort": 16380},
        "clusterHostPort",
    ),
    (
        "cluster-host-ports-overlap-exporter-pair",
        # topology both: the two exporters take exporterHostPort and the port after it
        {**DOCKER, "topology": "both", "exporterHostPort": 17378},
        "clusterHostPort",
    ),
    (
        "cluster-host-port-range-past-65535",
        {**DOCKER, "topology": "cluster", "clusterHostPort": 65531},
        "clusterHostPort",
    ),
    ("cluster-host-port-privileged", {**DOCKER, "topology": "cluster", "clusterHostPort": 80}, "clusterHostPort"),
    ("cluster-tls-on-kubernetes", {**K8S, "topology": "cluster", "tls": True}, "tls"),
]


def test_bad_config_table_is_large_and_unique() -> None:
    ids = [case[0] for case in BAD_CONFIGS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 45


@pytest.mark.parametrize(("raw", "key"), [(raw, key) for _, raw, key in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_naming_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(raw)
    message = str(caught.value)
    assert caught.value.key == f"redis-ha:{key}"
    assert message.startswith(f"redis-ha:{key}: invalid value ")
    assert "allowed" in message


def test_error_message_shows_the_bad_value_and_what_is_allowed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**DOCKER, "replicas": 9})
    assert str(caught.value) == "redis-ha:replicas: invalid value 9; allowed: an integer from 1 to 8"
    assert caught.value.value == 9
    assert caught.value.allowed == "an integer from 1 to 8"
    assert isinstance(caught.value, ValueError)


def test_refused_table_is_unique() -> None:
    ids = [case[0] for case in REFUSED]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {case[0] for case in BAD_CONFIGS}


@pytest.mark.parametrize(("raw", "key", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_naming_the_key_and_why(raw: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(raw)
    message = str(caught.value)
    assert caught.value.key == f"redis-ha:{key}"
    assert message.startswith(f"redis-ha:{key}: invalid value ")
    assert fragment in message, message
    if key.endswith("Password"):
        secret = raw[key]
        assert message.startswith(f"redis-ha:{key}: invalid value <secret>; allowed: ")
        assert caught.value.value is not secret and repr(caught.value.value) == "<secret>"
        if isinstance(secret, str) and len(secret) >= 5:
            assert secret not in message and secret not in repr(caught.value.args)
