"""load_settings: the defaults, the conversions of Pulumi's string values, and the valid
neighbours of the refused configurations.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_ha.components.settings import DEFAULT_ROLES, AppRole
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_checks import image_tag
from redis_ha.components.settings_load import SECRET_KEYS, load_settings, parse_memory

from tests.support.settings_cases import (
    CACHE_ROLE,
    DOCKER,
    GOOD_PASSWORD,
    K8S,
    MY_APP,
    bad_password,
    grant,
    images,
    role,
)


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
        load_settings({**DOCKER, "fence": "true", "fenceAfterMilliseconds": 6000})
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
