"""load_settings: every bad configuration is refused with the key that is wrong."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest
import redis
from redis_ha.components import security
from redis_ha.components.settings import DEFAULT_ROLES, AppRole
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_checks import image_tag
from redis_ha.components.settings_load import SECRET_KEYS, load_settings, parse_memory
from redis_ha.components.settings_roles import (
    CATEGORY_COMMANDS,
    check_passwords,
    password_key,
    password_keys,
    refused_grant,
)

DOCKER = {"backend": "docker"}
K8S = {"backend": "kubernetes"}

CACHE_ROLE = {"name": "cache", "keys": ["cache:*"], "commands": ["+@read", "+@write"]}


def role(**fields: Any) -> dict[str, Any]:
    return {**CACHE_ROLE, **fields}


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
    ("fence-after-equals-down-after", {**DOCKER, "fenceAfterMilliseconds": 5000}, "fenceAfterMilliseconds"),
    ("fence-after-no-room-for-a-round", {**DOCKER, "fenceAfterMilliseconds": 4750}, "fenceAfterMilliseconds"),
    (
        "fence-after-above-a-short-down-after",
        {**DOCKER, "downAfterMilliseconds": 1000, "fenceAfterMilliseconds": 800},
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


# --- valid configurations -------------------------------------------------------


def test_defaults_with_only_the_backend() -> None:
    s = load_settings(DOCKER)
    assert s.backend == "docker"
    assert s.topology == "sentinel"
    assert (s.replicas, s.sentinels, s.quorum) == (2, 3, 2)
    assert s.data_nodes == 3
    assert s.maxmemory_policy == "noeviction"
    assert s.appendonly is True
    assert s.appendfsync == "everysec"
    assert s.min_replicas_to_write == 1
    assert s.min_replicas_max_lag == 10
    assert s.down_after_milliseconds < s.failover_timeout
    assert (s.fence, s.fence_after_milliseconds) == (True, 2000)
    assert s.publish_ports is True
    assert s.tls is False
    assert s.roles == DEFAULT_ROLES
    assert s.broker_roles == ("celery",)
    assert s.persistence_enabled


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1k", 1000),
        ("1kb", 1024),
        ("1KB", 1024),
        ("2gb", 2147483648),
        ("2g", 2_000_000_000),
        ("512mb", 512 * 1024**2),
        ("3m", 3_000_000),
        ("100b", 100),
        ("100000", 100000),
        (" 64mb ", 64 * 1024**2),
        (100000, 100000),
        (0, 0),
    ],
)
def test_memory_sizes_are_parsed_like_redis(value: Any, expected: int) -> None:
    # maxmemory itself must be at least 1mb (MEMORY_REFUSED below).
    assert parse_memory("maxmemory", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("1mb", 1024**2), ("1048576", 1024**2), ("64mb", 64 * 1024**2), ("2g", 2_000_000_000)]
)
def test_maxmemory_loads_from_1mb(value: str, expected: int) -> None:
    assert load_settings({**DOCKER, "maxmemory": value}).maxmemory == expected


def test_pulumi_string_values_are_converted() -> None:
    s = load_settings(
        {
            **DOCKER,
            "replicas": "5",
            "sentinels": "5",
            "quorum": "3",
            "parallelSyncs": "2",
            "port": "7000",
            "appendonly": "false",
            "exporter": "False",
            "save": "900 1",
        }
    )
    assert (s.replicas, s.sentinels, s.quorum, s.parallel_syncs, s.port) == (5, 5, 3, 2, 7000)
    assert s.appendonly is False
    assert s.exporter is False
    assert s.save == ((900, 1),)
    assert s.persistence_enabled


def test_quorum_three_of_five_sentinels_is_a_majority() -> None:
    s = load_settings({**DOCKER, "sentinels": 5, "quorum": 3})
    assert (s.sentinels, s.quorum) == (5, 3)


def test_rdb_only_and_aof_only_persistence_are_accepted() -> None:
    aof_only = load_settings({**DOCKER, "save": []})
    rdb_only = load_settings({**DOCKER, "appendonly": False, "save": ["60 1000"]})
    assert (aof_only.appendonly, aof_only.save) == (True, ())
    assert (rdb_only.appendonly, rdb_only.save) == (False, ((60, 1000),))


def test_evicting_policy_is_accepted_without_a_broker_role() -> None:
    s = load_settings({**DOCKER, "maxmemoryPolicy": "allkeys-lru", "roles": [CACHE_ROLE]})
    assert s.maxmemory_policy == "allkeys-lru"
    assert s.broker_roles == ()


def test_kubernetes_defaults_publish_no_ports() -> None:
    s = load_settings(K8S)
    assert s.publish_ports is False
    assert load_settings({**K8S, "publishPorts": "false"}).publish_ports is False


def test_kubernetes_ignores_overlapping_host_ports_and_allows_tls() -> None:
    s = load_settings({**K8S, "redisHostPort": 26379, "sentinelHostPort": 26380, "tls": True})
    assert s.tls is True


def test_docker_host_ports_may_overlap_when_not_published() -> None:
    s = load_settings({**DOCKER, "publishPorts": False, "redisHostPort": 26379, "sentinelHostPort": 26380})
    assert s.publish_ports is False


def test_secret_keys_are_known_but_not_kept() -> None:
    s = load_settings({**DOCKER, "adminPassword": "s3cret-s3cret-s3cret", "exporterPassword": "x" * 16})
    assert "s3cret" not in repr(s)


def test_custom_roles_are_parsed() -> None:
    s = load_settings(
        {
            **DOCKER,
            "roles": [
                {
                    "name": "jobs",
                    "keys": ["jobs:*", "queue"],
                    "channels": ["jobs.events"],
                    "commands": ["+@read", "+@write", "+@list", "-keys", "+client|setname"],
                    "broker": "true",
                    "description": "job queue",
                },
                {"name": "notify_1", "channels": ["notify:*"], "commands": ["+@pubsub"]},
                {"name": "indexer", "keys": ["idx:*"], "commands": ["+@read", "+@keyspace"], "scan": True},
            ],
        }
    )
    assert s.roles == (
        AppRole(
            name="jobs",
            keys=("jobs:*", "queue"),
            channels=("jobs.events",),
            commands=("+@read", "+@write", "+@list", "-keys", "+client|setname"),
            broker=True,
            description="job queue",
        ),
        AppRole(name="notify_1", keys=(), channels=("notify:*",), commands=("+@pubsub",)),
        AppRole(name="indexer", keys=("idx:*",), channels=(), commands=("+@read", "+@keyspace"), scan=True),
    )
    assert s.broker_roles == ("jobs",)
    # SCAN is denied unless the role says it needs it.
    assert [r.scan for r in s.roles] == [False, False, True]


def test_scan_as_a_command_rule_points_at_the_scan_field() -> None:
    with pytest.raises(SettingsError, match="scan: true"):
        load_settings({**DOCKER, "roles": [{"name": "lister", "keys": ["l:*"], "commands": ["+@read", "+scan"]}]})


def test_fence_after_defaults_below_a_short_down_after() -> None:
    assert load_settings({**DOCKER, "downAfterMilliseconds": 1000}).fence_after_milliseconds == 500
    assert load_settings({**DOCKER, "downAfterMilliseconds": 3000}).fence_after_milliseconds == 1500
    long = {**DOCKER, "downAfterMilliseconds": "30000", "failoverTimeout": "60000"}
    assert load_settings(long).fence_after_milliseconds == 2000


def test_fence_after_error_names_the_range() -> None:
    with pytest.raises(SettingsError, match="1 to 4749") as caught:
        load_settings({**DOCKER, "fenceAfterMilliseconds": 6000})
    assert caught.value.key.endswith(":fenceAfterMilliseconds")


def test_quorum_defaults_to_a_majority_of_the_sentinels() -> None:
    assert load_settings({"backend": "docker", "sentinels": 5}).quorum == 3
    assert load_settings({"backend": "docker", "sentinels": 4}).quorum == 3
    assert load_settings({"backend": "docker"}).quorum == 2


def test_redis_image_defaults_to_the_configured_version() -> None:
    assert load_settings({"backend": "docker", "redisVersion": "7.0"}).redis_image == "redis:7.0-alpine"
    assert load_settings({"backend": "docker"}).redis_image == "valkey/valkey:8.1-alpine"
    custom = load_settings({"backend": "docker", "redisVersion": "7.0", "redisImage": "example/redis:7.0.15"})
    assert custom.redis_image == "example/redis:7.0.15"


# --- Redis Cluster -----------------------------------------------------------------


def test_cluster_defaults() -> None:
    s = load_settings({**DOCKER, "topology": "cluster"})
    assert (s.cluster_shards, s.cluster_replicas_per_shard, s.cluster_node_timeout) == (3, 1, 5000)
    assert s.cluster_nodes == 6
    assert s.bus_port == 16379
    assert s.has_cluster and not s.has_sentinel
    assert s.cluster_host_port == 17379
    assert s.announce_hostnames is True


def test_both_topologies_side_by_side() -> None:
    s = load_settings({**DOCKER, "topology": "both", "clusterShards": "4", "clusterReplicasPerShard": "2"})
    assert s.has_cluster and s.has_sentinel
    assert s.cluster_nodes == 12
    # The Sentinel group's Redis and Sentinel exporters, the cluster's.
    assert s.exporters == 3


def test_cluster_without_replicas_needs_min_replicas_to_write_0() -> None:
    s = load_settings({**DOCKER, "topology": "cluster", "clusterReplicasPerShard": 0, "minReplicasToWrite": 0})
    assert (s.cluster_replicas_per_shard, s.min_replicas_to_write) == (0, 0)


def test_cluster_bus_port_can_be_set() -> None:
    s = load_settings({**DOCKER, "topology": "cluster", "clusterBusPort": "7000"})
    assert s.bus_port == 7000


def test_cluster_host_ports_ignore_the_sentinel_ranges_on_a_cluster_only_stack() -> None:
    # redisHostPort and sentinelHostPort publish nothing without a Sentinel group.
    s = load_settings({**DOCKER, "topology": "cluster", "redisHostPort": 17380, "sentinelHostPort": 17381})
    assert s.cluster_host_port == 17379


def test_cluster_keys_do_not_matter_to_a_sentinel_stack() -> None:
    # The Sentinel topology keeps validating as before: no bus port, no cluster range.
    s = load_settings({**DOCKER, "port": 16379, "clusterHostPort": 16380, "clusterReplicasPerShard": 0})
    assert s.topology == "sentinel" and s.port == 16379


# --- the default roles against the names their clients really use ------------------

# The seed's use cases (keys and channels of its examples), per default role.
SEED_NAMES = {
    "cache": {"keys": ["filing:analysis:123", "filing:10-K:123", "company:1:filings", "lock:filing:analysis:123"]},
    "sessions": {"keys": ["session:abc123"]},
    "ratelimit": {"keys": ["ratelimit:api_key"]},
    "pubsub": {"channels": ["filing:processed"]},
    "analytics": {
        "keys": [
            "user:123",
            "recent:filings",
            "processed:companies:2025-10-19",
            "rankings:signals",
            "unique:visitors:2025-10-19",
            "unique:visitors:week",
        ]
    },
    # What Celery 5.7 / kombu 5.7 used against a live deployment (tests/verify/
    # test_app_celery.py): queues are also BRPOPed with a priority suffix.
    "celery": {
        "keys": [
            "celery",
            "celery\x06\x163",
            "high_priority",
            "low_priority\x06\x169",
            "_kombu.binding.celery",
            "_kombu.binding_deadlines",
            "_kombu.binding_permanent.celery",
            "unacked",
            "unacked_index",
            "unacked_mutex",
            "celery-task-meta-9f1e",
            "w1@host.celery.pidbox",
            "w1@host.celery.pidbox\x06\x166",
            "9f1e.reply.celery.pidbox\x06\x163",
        ],
        "channels": ["/0.celery.pidbox", "/0.celeryev/worker.heartbeat", "celery-task-meta-9f1e"],
    },
}


@pytest.mark.parametrize("name", sorted(SEED_NAMES))
def test_default_role_covers_the_names_its_clients_use(name: str) -> None:
    default = next(r for r in DEFAULT_ROLES if r.name == name)
    for key in SEED_NAMES[name].get("keys", []):
        assert any(fnmatchcase(key, p) for p in default.keys), f"{name} cannot use key {key!r}"
    for channel in SEED_NAMES[name].get("channels", []):
        assert any(fnmatchcase(channel, p) for p in default.channels), f"{name} cannot use channel {channel!r}"


def test_default_celery_role_grants_what_kombu_needs_beyond_keys() -> None:
    celery = next(r for r in DEFAULT_ROLES if r.name == "celery")
    # The ACL compares PSUBSCRIBE patterns literally: kombu's must be listed as sent.
    for pattern in ("/0.celery.pidbox", "/0.celeryev/worker.*", "/0.celeryev/*"):
        assert pattern in celery.channels
    # kombu 5.7's binding scripts call TIME; MULTI/EXEC, EVALSHA and BRPOP run the queues.
    for rule in ("+time", "+@transaction", "+@scripting", "+@blocking", "+@pubsub"):
        assert rule in celery.commands
    assert not any(p in ("*", "~*") for p in celery.keys) and "+@all" not in celery.commands


# --- refused with the reason --------------------------------------------------------

GOOD_PASSWORD = "Correct-Horse-Battery-9"


def grant(rule: str) -> dict[str, Any]:
    """A docker stack whose one role asks for `rule` next to +@read."""
    return {**DOCKER, "roles": [role(commands=["+@read", rule])]}


def images(image: str, version: str = "7.2") -> dict[str, Any]:
    return {**DOCKER, "redisVersion": version, "redisImage": image}


def bad_password(key: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {**DOCKER, **extra, key: value}


DENIED = "is denied to every application role (server administration / data destruction)"
LOST = "denied to every application role (server administration / data destruction); grant only the subcommands"
PASSWORD_RULE = "16 to 512 characters: letters A-Z and a-z, digits and - _ . ~ + ="
NOT_A_USER = "the password key of a user: adminPassword,"
HEADROOM = "at least maxmemory + fork/buffer headroom = "
MY_APP = {"roles": [role(name="my_app")]}

# (id, raw config, key the error must name, fragment of its message)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # Sentinel monitors hostnames; resolve-hostnames no would stop it.
    ("announce-hostnames-false", {**DOCKER, "announceHostnames": False}, "announceHostnames", "addressed by hostname"),
    (
        "announce-hostnames-false-string",
        {**K8S, "announceHostnames": "false"},
        "announceHostnames",
        "announce hostnames",
    ),
    (
        "announce-hostnames-false-on-a-cluster",
        {**DOCKER, "topology": "cluster", "announceHostnames": "False"},
        "announceHostnames",
        "allowed: true (",
    ),
    ("announce-hostnames-yes", {**DOCKER, "announceHostnames": "yes"}, "announceHostnames", "allowed: true ("),
    # the image's tag against redisVersion
    ("image-7.0-with-version-7.2", images("redis:7.0-alpine"), "redisImage", "an image of engineVersion 7.2"),
    ("image-7.0.15-with-version-7.2", images("redis:7.0.15"), "redisImage", "a tag starting with 7.2"),
    ("image-7.2.4-with-version-7.0", images("redis:7.2.4-bookworm", "7.0"), "redisImage", "engineVersion 7.0"),
    ("image-7.2-with-version-7.0", images("redis:7.2", "7.0"), "redisImage", "e.g. redis:7.0-alpine"),
    ("image-7.20-is-not-7.2", images("redis:7.20-alpine"), "redisImage", "a tag starting with 7.2"),
    ("image-major-6", images("redis:6"), "redisImage", "the major-only tag 7"),
    ("image-6.2-alpine", images("redis:6.2-alpine"), "redisImage", "set engineVersion to the image's version"),
    ("image-major-8-alpine", images("redis:8-alpine"), "redisImage", "the major-only tag 7"),
    ("image-8.0", images("redis:8.0", "7.0"), "redisImage", "engineVersion 7.0"),
    ("image-registry-port-6.2", images("localhost:5000/redis:6.2"), "redisImage", "engineVersion 7.2"),
    ("image-tag-and-digest", images("redis:7.0@sha256:" + "a" * 64), "redisImage", "engineVersion 7.2"),
    # the e2e test image is Debian's 7.0 (tests/e2e/conftest.py sets redisVersion 7.0)
    ("image-e2e-test-image-with-7.2", images("redis-ha-test/redis:7.0"), "redisImage", "engineVersion 7.2"),
    # maxmemory and the memory limit
    ("maxmemory-0", {**DOCKER, "maxmemory": 0}, "maxmemory", "at least 1mb"),
    ("maxmemory-0-string", {**K8S, "maxmemory": "0"}, "maxmemory", "0 (no limit) lets Redis grow"),
    ("maxmemory-0mb", {**K8S, "maxmemory": "0mb"}, "maxmemory", "at least 1mb (1048576 bytes)"),
    ("maxmemory-1023kb", {**DOCKER, "maxmemory": "1023kb"}, "maxmemory", "at least 1mb"),
    ("maxmemory-1m-is-decimal", {**DOCKER, "maxmemory": "1m"}, "maxmemory", "at least 1mb"),
    (
        "memory-limit-below-the-headroom",
        {**K8S, "maxmemory": "2gb", "memoryLimit": "3Gi"},
        "memoryLimit",
        HEADROOM + "3355443200 bytes (3200mb)",
    ),
    (
        "memory-limit-equals-maxmemory",
        {**K8S, "maxmemory": "1gb", "memoryLimit": "1gb"},
        "memoryLimit",
        HEADROOM + "1744830464 bytes (1664mb) (maxmemory 1073741824 + headroom 671088640)",
    ),
    (
        "memory-limit-small-maxmemory-keeps-256mb-headroom",
        {**K8S, "maxmemory": "64mb", "memoryLimit": "256Mi"},
        "memoryLimit",
        HEADROOM + "335544320 bytes (320mb)",
    ),
    (
        "maxmemory-above-the-memory-limit",
        {**K8S, "maxmemory": "2gb", "memoryLimit": "1Gi"},
        "maxmemory",
        "at most 626349397 bytes (597mb), so that maxmemory + fork/buffer headroom fits memoryLimit",
    ),
    ("memory-limit-too-small-for-any-maxmemory", {**K8S, "memoryLimit": "100Mi"}, "memoryLimit", HEADROOM),
    ("memory-limit-words", {**K8S, "memoryLimit": "lots"}, "memoryLimit", "a Kubernetes quantity (512Mi, 3Gi)"),
    ("memory-limit-negative", {**K8S, "memoryLimit": "-1Gi"}, "memoryLimit", "0 (derived from maxmemory)"),
    ("memory-limit-lowercase-gi", {**K8S, "memoryLimit": "3gi"}, "memoryLimit", "a Redis size"),
    ("memory-limit-bool", {**K8S, "memoryLimit": True}, "memoryLimit", "a memory size"),
    ("memory-limit-on-docker", {**DOCKER, "memoryLimit": "4Gi"}, "memoryLimit", "0 on the docker backend"),
    # passwords: never shown, only named
    ("password-15-characters", bad_password("adminPassword", "Fifteen-chars-1"), "adminPassword", PASSWORD_RULE),
    ("password-513-characters", bad_password("replicaPassword", "Ab1" * 171), "replicaPassword", PASSWORD_RULE),
    ("password-empty", bad_password("sentinelPassword", ""), "sentinelPassword", PASSWORD_RULE),
    ("password-space", bad_password("adminPassword", "correct horse battery"), "adminPassword", "no spaces"),
    ("password-double-quote", bad_password("adminPassword", 'Correct"Horse"Battery'), "adminPassword", "quotes"),
    ("password-single-quote", bad_password("adminPassword", "Correct'Horse'Battery"), "adminPassword", "quotes"),
    ("password-backslash", bad_password("replicaPassword", "Correct\\Horse\\Battery"), "replicaPassword", "backslash"),
    ("password-hash", bad_password("exporterPassword", "Correct#Horse#Battery"), "exporterPassword", "'#'"),
    ("password-tab", bad_password("adminPassword", "Correct\tHorse\tBattery"), "adminPassword", PASSWORD_RULE),
    ("password-newline", bad_password("adminPassword", "CorrectHorseBattery9\n"), "adminPassword", PASSWORD_RULE),
    ("password-at-sign", bad_password("adminPassword", "Correct@Horse@Battery"), "adminPassword", PASSWORD_RULE),
    ("password-colon", bad_password("adminPassword", "Correct:Horse:Battery"), "adminPassword", PASSWORD_RULE),
    ("password-slash", bad_password("adminPassword", "Correct/Horse/Battery"), "adminPassword", PASSWORD_RULE),
    ("password-percent", bad_password("adminPassword", "Correct%20Horse%20Bat"), "adminPassword", PASSWORD_RULE),
    ("password-dollar", bad_password("adminPassword", "Correct$Horse$Battery"), "adminPassword", PASSWORD_RULE),
    ("password-non-ascii", bad_password("adminPassword", "Corr\u00e9ct-Horse-Battery"), "adminPassword", PASSWORD_RULE),
    ("password-not-a-string", bad_password("adminPassword", 12345678901234567890), "adminPassword", PASSWORD_RULE),
    (
        "sentinel-client-password-short",
        bad_password("sentinelClientPassword", "short-client"),
        "sentinelClientPassword",
        PASSWORD_RULE,
    ),
    ("role-password-space", bad_password("cachePassword", "cache role secret 1"), "cachePassword", "no spaces"),
    (
        "custom-role-password-quote",
        bad_password("myAppPassword", 'My"App"Secret"Value', **MY_APP),
        "myAppPassword",
        PASSWORD_RULE,
    ),
    ("password-of-no-user", bad_password("masterPassword", GOOD_PASSWORD), "masterPassword", NOT_A_USER),
    ("password-of-the-default-user", bad_password("defaultPassword", GOOD_PASSWORD), "defaultPassword", NOT_A_USER),
    (
        "password-of-a-role-not-deployed",
        bad_password("celeryPassword", GOOD_PASSWORD, roles=[CACHE_ROLE]),
        "celeryPassword",
        "the password key of a user: adminPassword, backupPassword, cachePassword, exporterPassword,",
    ),
    (
        "password-key-dashed",
        bad_password("sentinel-clientPassword", GOOD_PASSWORD),
        "sentinel-clientPassword",
        NOT_A_USER,
    ),
    (
        "password-key-lowercase",
        bad_password("sentinelclientPassword", GOOD_PASSWORD),
        "sentinelclientPassword",
        NOT_A_USER,
    ),
    ("password-key-snake-case", bad_password("my_appPassword", GOOD_PASSWORD, **MY_APP), "my_appPassword", NOT_A_USER),
    # two users, one password key
    (
        "role-takes-the-sentinel-client-password-key",
        {**DOCKER, "roles": [role(name="sentinel_client")]},
        "roles[0].name",
        "a name whose password key (sentinelClientPassword) is not already that of sentinel-client",
    ),
    ("role-takes-the-admin-password-key", {**DOCKER, "roles": [role(name="admin_")]}, "roles[0].name", "adminPassword"),
    (
        "roles-share-a-password-key",
        {**DOCKER, "roles": [role(name="my-app"), role(name="my_app", keys=["other:*"])]},
        "roles[1].name",
        "(myAppPassword) is not already that of my-app",
    ),
    # grants the appended denials would take away (components/security.py)
    ("grant-all", grant("+@all"), "roles[0].commands", "+@all includes commands denied to every application role"),
    ("grant-dangerous", grant("+@dangerous"), "roles[0].commands", f"+@dangerous {DENIED}"),
    ("grant-admin", grant("+@admin"), "roles[0].commands", f"+@admin {DENIED}; grant a narrower category"),
    ("grant-flushall", grant("+flushall"), "roles[0].commands", f"+flushall {DENIED}"),
    ("grant-flushdb", grant("+flushdb"), "roles[0].commands", f"+flushdb {DENIED}"),
    ("grant-config", grant("+config"), "roles[0].commands", "+config includes config|get, config|resetstat"),
    ("grant-config-get", grant("+config|get"), "roles[0].commands", f"+config|get {DENIED}"),
    ("grant-config-set", grant("+config|set"), "roles[0].commands", f"+config|set {DENIED}"),
    ("grant-debug", grant("+debug"), "roles[0].commands", f"+debug {DENIED}"),
    ("grant-debug-subcommand", grant("+debug|object"), "roles[0].commands", f"+debug|object {DENIED}"),
    ("grant-shutdown", grant("+shutdown"), "roles[0].commands", f"+shutdown {DENIED}"),
    ("grant-acl", grant("+acl"), "roles[0].commands", "+acl includes acl|deluser, acl|dryrun"),
    ("grant-acl-setuser", grant("+acl|setuser"), "roles[0].commands", f"+acl|setuser {DENIED}"),
    ("grant-module", grant("+module"), "roles[0].commands", "+module includes module|list, module|load"),
    ("grant-replicaof", grant("+replicaof"), "roles[0].commands", f"+replicaof {DENIED}"),
    ("grant-slaveof", grant("+slaveof"), "roles[0].commands", f"+slaveof {DENIED}"),
    ("grant-failover", grant("+failover"), "roles[0].commands", f"+failover {DENIED}"),
    ("grant-script-flush", grant("+script|flush"), "roles[0].commands", f"+script|flush {DENIED}"),
    ("grant-script", grant("+script"), "roles[0].commands", f"+script includes script|debug, script|flush, {LOST}"),
    ("grant-function-flush", grant("+function|flush"), "roles[0].commands", f"+function|flush {DENIED}"),
    ("grant-function-restore", grant("+function|restore"), "roles[0].commands", f"+function|restore {DENIED}"),
    ("grant-function", grant("+function"), "roles[0].commands", "+function includes function|delete, function|flush"),
    ("grant-keys", grant("+keys"), "roles[0].commands", f"+keys {DENIED}"),
    ("grant-info", grant("+info"), "roles[0].commands", f"+info {DENIED}"),
    ("grant-monitor", grant("+monitor"), "roles[0].commands", f"+monitor {DENIED}"),
    ("grant-swapdb", grant("+swapdb"), "roles[0].commands", f"+swapdb {DENIED}"),
    ("grant-migrate", grant("+migrate"), "roles[0].commands", f"+migrate {DENIED}"),
    ("grant-restore", grant("+restore"), "roles[0].commands", f"+restore {DENIED}"),
    ("grant-sort", grant("+sort"), "roles[0].commands", f"+sort {DENIED}"),
    ("grant-bgsave", grant("+bgsave"), "roles[0].commands", f"+bgsave {DENIED}"),
    ("grant-client", grant("+client"), "roles[0].commands", "+client includes client|kill, client|list"),
    ("grant-client-kill", grant("+client|kill"), "roles[0].commands", f"+client|kill {DENIED}"),
    ("grant-cluster-reset", grant("+cluster|reset"), "roles[0].commands", f"+cluster|reset {DENIED}"),
    ("grant-latency", grant("+latency"), "roles[0].commands", "+latency includes latency|doctor"),
    ("grant-slowlog-get", grant("+slowlog|get"), "roles[0].commands", "or use the admin user"),
    (
        "grant-in-the-second-role",
        {**DOCKER, "roles": [role(), role(name="ops", keys=["ops:*"], commands=["+@read", "+@admin"])]},
        "roles[1].commands",
        f"+@admin {DENIED}",
    ),
    (
        "grant-after-a-denial-of-its-own",
        {**DOCKER, "roles": [role(commands=["-@all", "+@read", "+flushall", "-flushall"])]},
        "roles[0].commands",
        f"+flushall {DENIED}",
    ),
]


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


# --- ... and their valid neighbours ---------------------------------------------------

# (id, raw config) that must load
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("announce-hostnames-true", {**DOCKER, "announceHostnames": True}),
    ("announce-hostnames-true-string", {**K8S, "announceHostnames": "True"}),
    ("image-7.2-alpine", images("redis:7.2-alpine")),
    ("image-7.2", images("redis:7.2")),
    ("image-7.2.4-bookworm", images("redis:7.2.4-bookworm")),
    ("image-7.0.15-with-7.0", images("redis:7.0.15", "7.0")),
    ("image-major-7", images("redis:7")),
    ("image-major-7-alpine-with-7.0", images("redis:7-alpine", "7.0")),
    ("image-latest", images("redis:latest")),
    ("image-alpine", images("redis:alpine", "7.0")),
    ("image-without-tag", images("redis")),
    ("image-local-tag", images("example/redis:local")),
    ("image-e2e-test-image", images("redis-ha-test/redis:7.0", "7.0")),
    ("image-registry-port-without-tag", images("localhost:5000/redis")),
    ("image-registry-port-7.2", images("localhost:5000/team/redis:7.2-alpine")),
    ("image-digest-only", images("redis@sha256:" + "b" * 64)),
    ("image-7.2-and-digest", images("redis:7.2@sha256:" + "c" * 64)),
    ("image-date-tag", images("registry.example.com/redis:20240101", "7.0")),
    ("image-v-prefixed-tag", images("example/redis:v6.2")),
    ("maxmemory-1mb", {**DOCKER, "maxmemory": "1mb"}),
    ("fence-after-just-below-down-after", {**DOCKER, "fenceAfterMilliseconds": "4749"}),
    ("fence-off-ignores-fence-after", {**DOCKER, "fence": "false", "fenceAfterMilliseconds": 9000}),
    ("fence-default-follows-a-short-down-after", {**DOCKER, "downAfterMilliseconds": 1000}),
    ("memory-limit-0-derives", {**K8S, "memoryLimit": 0}),
    ("memory-limit-exactly-the-minimum", {**K8S, "maxmemory": "2gb", "memoryLimit": "3200Mi"}),
    ("memory-limit-in-bytes", {**K8S, "maxmemory": "1gb", "memoryLimit": "1744830464"}),
    ("memory-limit-redis-units", {**K8S, "memoryLimit": "4gb"}),
    ("password-16-characters", bad_password("adminPassword", "Sixteen-chars-12")),
    ("password-512-characters", bad_password("adminPassword", "aB3" * 170 + "xy")),
    ("password-every-allowed-punctuation", bad_password("replicaPassword", "Aa0-_.~+=Zz9-_.~+=")),
    ("passwords-of-the-toolkit-users", {**DOCKER, **{k: GOOD_PASSWORD for k in SECRET_KEYS}}),
    ("password-of-a-default-role", bad_password("celeryPassword", GOOD_PASSWORD)),
    ("password-of-a-custom-role", bad_password("myAppPassword", GOOD_PASSWORD, **MY_APP)),
    ("role-name-sharing-a-prefix", {**DOCKER, "roles": [role(name="admins"), role(name="sentinel_clients")]}),
    ("grant-categories-of-the-model", grant("+@write")),
    ("grant-keyspace", grant("+@keyspace")),
    ("grant-scripting", grant("+@scripting")),
    ("grant-script-load", grant("+script|load")),
    ("grant-function-list-and-fcall", {**DOCKER, "roles": [role(commands=["+function|list", "+fcall"])]}),
    ("grant-client-setname", grant("+client|setname")),
    ("grant-cluster-info", grant("+cluster|info")),
    ("grant-time", grant("+time")),
    ("denials-of-the-role-itself", {**DOCKER, "roles": [role(commands=["+@read", "-@dangerous", "-flushall"])]}),
    ("denial-of-a-container", {**DOCKER, "roles": [role(commands=["+@read", "-config", "-client"])]}),
]


@pytest.mark.parametrize("raw", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_valid_neighbours_load(raw: dict[str, Any]) -> None:
    s = load_settings(raw)
    assert s.announce_hostnames is True
    assert s.maxmemory >= 1024**2
    assert s.redis_memory_limit >= s.minimum_memory_limit


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("redis:7.2-alpine", "7.2-alpine"),
        ("redis", ""),
        ("docker.io/library/redis:7.0.15", "7.0.15"),
        ("localhost:5000/redis", ""),
        ("localhost:5000/redis:7.2", "7.2"),
        ("redis@sha256:" + "d" * 64, ""),
        ("redis:7.0@sha256:" + "d" * 64, "7.0"),
        ("redis-ha-test/redis:7.0", "7.0"),
    ],
)
def test_image_tag(image: str, tag: str) -> None:
    assert image_tag(image) == tag


def test_redis_memory_limit_is_configured_or_derived() -> None:
    mib = 1024**2
    # maxmemory + max(maxmemory / 2, 128 MiB) + 128 MiB
    assert load_settings(DOCKER).redis_memory_limit == (2048 + 1024 + 128) * mib
    assert load_settings({**K8S, "maxmemory": "256mb"}).redis_memory_limit == 512 * mib
    assert load_settings({**K8S, "maxmemory": "64mb"}).redis_memory_limit == 320 * mib
    configured = load_settings({**K8S, "maxmemory": "1gb", "memoryLimit": "3Gi"})
    assert (configured.memory_limit, configured.redis_memory_limit) == (3 * 1024 * mib, 3 * 1024 * mib)
    assert configured.minimum_memory_limit == 1664 * mib
    assert load_settings({**K8S, "memoryLimit": "4g"}).memory_limit == 4_000_000_000


@pytest.mark.parametrize("maxmemory", ["1mb", "64mb", "255mb", "256mb", "257mb", "2gb"])
def test_the_derived_limit_is_what_the_pods_get(maxmemory: str) -> None:
    from redis_ha.components.kubernetes import pods

    s = load_settings({**K8S, "maxmemory": maxmemory})
    assert pods.redis_memory_limit(s) == s.redis_memory_limit


# --- password keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "key"),
    [
        ("admin", "adminPassword"),
        ("sentinel-client", "sentinelClientPassword"),
        ("my_app", "myAppPassword"),
        ("my-app", "myAppPassword"),
        ("billing_v2-worker", "billingV2WorkerPassword"),
        ("cache", "cachePassword"),
    ],
)
def test_password_key_is_camel_case(user: str, key: str) -> None:
    assert password_key(user) == key


@pytest.mark.parametrize("roles", [None, [role(name="my_app"), role(name="jobs-2", keys=["jobs:*"])]])
def test_every_user_has_a_password_key(roles: list[dict[str, Any]] | None) -> None:
    s = load_settings({**DOCKER, "roles": roles} if roles else DOCKER)
    keys = password_keys(s)
    assert sorted(keys.values()) == sorted(security.user_names(s))
    assert set(SECRET_KEYS) <= set(keys)
    assert "sentinelClientPassword" in keys


def test_check_passwords_maps_keys_to_users() -> None:
    s = load_settings({**DOCKER, "roles": [role(name="my_app")]})
    values = {"sentinelClientPassword": "Client-Secret-1234", "myAppPassword": "My-App-Secret-5678"}
    assert check_passwords(s, values) == {"sentinel-client": "Client-Secret-1234", "my_app": "My-App-Secret-5678"}
    assert check_passwords(s, {}) == {}


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"adminPassword": "Too-Short-pw"}, "adminPassword"),
        ({"adminPassword": GOOD_PASSWORD, "cachePassword": "cache secret with spaces"}, "cachePassword"),
        ({"adminPassword": GOOD_PASSWORD, "nobodyPassword": "Nobody-Secret-12345"}, "nobodyPassword"),
    ],
)
def test_check_passwords_names_the_key_never_the_value(values: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        check_passwords(load_settings(DOCKER), values)
    assert caught.value.key == f"redis-ha:{key}"
    text = f"{caught.value} {caught.value!r} {caught.value.args} {caught.value.value!r}"
    assert not [v for v in values.values() if v in text]
    assert "invalid value <secret>;" in str(caught.value)


# --- the refused grants follow components/security.py ------------------------------


def test_refused_grants_cover_every_denial_of_security_py() -> None:
    for rule in security.APP_ROLE_DENIALS:
        assert rule.startswith("-"), rule
        name = rule[1:]
        if name.startswith("@"):
            # a category's commands must be known for its command grants to be refused
            assert name[1:] in CATEGORY_COMMANDS, rule
        assert refused_grant(f"+{name}", security.APP_ROLE_DENIALS) is not None, rule


def test_a_new_denial_refuses_its_grant() -> None:
    assert refused_grant("+hello", security.APP_ROLE_DENIALS) is None
    assert refused_grant("+hello", (*security.APP_ROLE_DENIALS, "-hello")) is not None
    assert refused_grant("+object", ("-object|freq",)) is not None
    assert refused_grant("+object|encoding", ("-object|freq",)) is None
    assert refused_grant("-flushall", security.APP_ROLE_DENIALS) is None


def test_every_default_role_keeps_what_it_grants() -> None:
    for default in DEFAULT_ROLES:
        assert [r for r in default.commands if refused_grant(r, security.APP_ROLE_DENIALS)] == [], default.name


REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("acl")
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--unixsocket", str(socket_path), "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), decode_responses=True, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dangerous_table_is_the_servers(redis_server: redis.Redis) -> None:
    dangerous = set(redis_server.execute_command("ACL", "CAT", "dangerous"))
    assert CATEGORY_COMMANDS["dangerous"] == dangerous
    assert set(redis_server.execute_command("ACL", "CAT", "admin")) <= dangerous


def _commands_and_arities(client: redis.Redis) -> dict[str, int]:
    """name (`get`, `config|get`) -> arity, from the server's COMMAND reply."""
    # A connection of its own: redis-py's reply callback for COMMAND drops subcommands.
    connection = redis.UnixDomainSocketConnection(
        path=client.connection_pool.connection_kwargs["path"], decode_responses=True
    )
    try:
        connection.send_command("COMMAND")
        reply = connection.read_response()
    finally:
        connection.disconnect()
    arities: dict[str, int] = {}

    def walk(entry: list[Any]) -> None:
        arities[entry[0]] = entry[1]
        for sub in entry[9] if len(entry) > 9 else []:
            walk(sub)

    for entry in reply:
        walk(entry)
    return arities


def test_refused_grants_are_exactly_what_the_acl_takes_away(redis_server: redis.Redis) -> None:
    """For every command and subcommand of the running server: a role granting it is
    refused exactly when the ACL, with security.py's denials after the grant, does not
    let the user run all of it (ACL DRYRUN)."""
    arities = _commands_and_arities(redis_server)

    def allowed(name: str) -> bool:
        words = name.split("|")
        padding = ["x"] * max(abs(arities[name]) - len(words), 0)
        reply = redis_server.execute_command("ACL", "DRYRUN", "probe", *words, *padding)
        return reply == "OK"

    mismatches = []
    for name in sorted(arities):
        rules = ["reset", "on", "nopass", "~*", "&*", f"+{name}", *security.APP_ROLE_DENIALS]
        redis_server.execute_command("ACL", "SETUSER", "probe", *rules)
        parts = [n for n in arities if n == name or n.startswith(f"{name}|")]
        parts = [n for n in parts if "|" in n] or parts  # a container is its subcommands
        loses = not all(allowed(n) for n in parts)
        refused = refused_grant(f"+{name}", security.APP_ROLE_DENIALS) is not None
        if loses != refused:
            mismatches.append((name, loses, refused))
    assert mismatches == []
    categories = redis_server.execute_command("ACL", "CAT")
    for category in categories:
        rules = ["reset", "on", "nopass", "~*", "&*", f"+@{category}", *security.APP_ROLE_DENIALS]
        redis_server.execute_command("ACL", "SETUSER", "probe", *rules)
        members = redis_server.execute_command("ACL", "CAT", category)
        # A container command (`acl`) is judged by its subcommands, as above: DRYRUN of a
        # container with a made-up subcommand is an error, and ACL CAT's order is random.
        leaves = [n for n in members if n in arities and not any(k.startswith(f"{n}|") for k in arities)]
        entirely_denied = members and not any(allowed(n) for n in leaves)
        refused = refused_grant(f"+@{category}", security.APP_ROLE_DENIALS) is not None
        assert refused == (bool(entirely_denied) or category == "all"), category
