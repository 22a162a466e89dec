"""load_settings: every bad configuration is refused with the key that is wrong."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from components.settings import DEFAULT_ROLES, AppRole, SettingsError, load_settings

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
def test_maxmemory_is_parsed_like_redis(value: Any, expected: int) -> None:
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
    s = load_settings({**DOCKER, "adminPassword": "s3cret", "exporterPassword": "x"})
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
    )
    assert s.broker_roles == ("jobs",)


def test_quorum_defaults_to_a_majority_of_the_sentinels() -> None:
    assert load_settings({"backend": "docker", "sentinels": 5}).quorum == 3
    assert load_settings({"backend": "docker", "sentinels": 4}).quorum == 3
    assert load_settings({"backend": "docker"}).quorum == 2


def test_redis_image_defaults_to_the_configured_version() -> None:
    assert load_settings({"backend": "docker", "redisVersion": "7.0"}).redis_image == "redis:7.0-alpine"
    assert load_settings({"backend": "docker"}).redis_image == "redis:7.2-alpine"
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
    assert s.exporters == 2


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
