"""Backup and restore of a Redis Cluster on real Redis 7.0 processes: two clusters of
3 masters and 3 replicas created by the rendered creation script (as in
test_cluster_live.py). The backup takes one replica per shard; the restore goes into
the other cluster, whose node ids differ, each key to the master owning its slot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode as PyClusterNode
from redis.cluster import RedisCluster
from redis_ha.components import security
from redis_ha.components.settings_load import load_settings

from redis_ha.backup import config as backup_config
from redis_ha.backup import crc, discovery
from redis_ha.backup.config import Refused
from redis_ha.backup.engine import take_backup
from redis_ha.backup.restore import restore
from tests.support import redis_data
from tests.support.backup_live import BACKUP_USER, CLUSTER_BACKUP_COMMANDS, create_backup_user, write_secret
from tests.support.live import make_password
from tests.support.live_cluster import CONFIG, LiveCluster


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {user: make_password() for user in security.user_names(load_settings(CONFIG))}


def _cluster(base: Path, passwords: dict[str, str], backup_password: str) -> LiveCluster:
    live = LiveCluster(base, passwords, max_shards=3)
    live.start(shards=3)
    result = live.run_script(3)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in live.live:
        create_backup_user(live.client(name), backup_password, CLUSTER_BACKUP_COMMANDS)
    return live


@pytest.fixture(scope="module")
def clusters(
    tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str], backup_password: str
) -> Iterator[tuple[LiveCluster, LiveCluster]]:
    started: list[LiveCluster] = []
    try:
        for name in ("source", "target"):
            started.append(_cluster(tmp_path_factory.mktemp(name), passwords, backup_password))
        yield started[0], started[1]
    finally:
        for live in started:
            live.stop()


def _raw_cluster(live: LiveCluster) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[PyClusterNode("127.0.0.1", node.port) for node in live.live.values()],
        username="admin",
        password=live.passwords["admin"],
        socket_timeout=10,
    )


def _masters(live: LiveCluster) -> list[redis.Redis]:
    found = []
    for node in live.live.values():
        client = redis.Redis(
            host="127.0.0.1", port=node.port, username="admin", password=live.passwords["admin"], protocol=2
        )
        if client.info("replication")["role"] == "master":
            found.append(client)
    return found


def _contents(live: LiveCluster) -> dict[Any, Any]:
    merged: dict[Any, Any] = {}
    for master in _masters(live):
        merged.update(redis_data.snapshot(lambda db, m=master: m, (0,)))
    return merged


def _config(live: LiveCluster, base: Path, backup_password: str, store: Path) -> backup_config.Config:
    base.mkdir(parents=True, exist_ok=True)
    return backup_config.config_from_dict(
        {
            "deployment": "redis-ha",
            "topology": "cluster",
            "clusterNodes": [["127.0.0.1", node.port] for node in list(live.live.values())[:2]],
            "backupUser": {"user": BACKUP_USER, "passwordFile": write_secret(base, "backup.pw", backup_password)},
            "restoreUser": "admin",
            "target": {"kind": "directory", "path": str(store)},
            "workDir": str(base),
            "waitTimeoutSeconds": 30,
        }
    )


def test_cluster_backup_and_restore_route_every_key_to_its_shard(
    clusters: tuple[LiveCluster, LiveCluster], backup_password: str, tmp_path: Path
) -> None:
    source, target = clusters
    client = _raw_cluster(source)
    redis_data.populate(lambda db: client, databases=(0,))
    client.mset_nonatomic({f"{{tag}}:{i}": i for i in range(50)})  # one slot, one shard
    client.close()
    store = tmp_path / "store"
    expected = _contents(source)
    manifest = take_backup(_config(source, tmp_path / "s", backup_password, store))

    # One file per shard, each from a replica; the slot map covers every slot once.
    assert len(manifest.files) == 3 and {f.source["role"] for f in manifest.files} == {"slave"}
    ranges = sorted(tuple(r) for entry in manifest.slots for r in entry["ranges"])
    assert ranges[0][0] == 0 and ranges[-1][1] == 16383
    assert sum(end - start + 1 for start, end in ranges) == 16384
    assert manifest.total_keys() == len(expected)
    replica_ports = {
        node.port
        for node in source.live.values()
        if source.client(node.node.name).info("replication")["role"] == "slave"
    }
    assert {int(f.source["address"].rsplit(":", 1)[1]) for f in manifest.files} <= replica_ports

    target_ids = {target.client(n).execute_command("CLUSTER MYID") for n in target.live}
    source_ids = {source.client(n).execute_command("CLUSTER MYID") for n in source.live}
    assert not target_ids & source_ids
    target_client = _raw_cluster(target)
    target_client.set("left-over", "x")
    target_client.close()

    report = restore(_config(target, tmp_path / "t", backup_password, store), manifest.id, target.passwords["admin"])
    assert sum(report["keysRestored"].values()) == len(expected)
    assert len(report["masters"]) == 3 and all(m["replicasAcknowledged"] == 1 for m in report["masters"])
    assert redis_data.same_contents(expected, _contents(target)) == []
    # Every key sits on the master that owns its slot in the target's own slot map.
    shards = discovery.cluster_shards(_config(target, tmp_path / "t", backup_password, store), target_admin(target))
    for master in _masters(target):
        port = master.connection_pool.connection_kwargs["port"]
        (shard,) = [s for s in shards if s.master.port == port]
        for key in master.scan_iter(count=1000):
            slot = crc.key_slot(key)
            assert any(start <= slot <= end for start, end in shard.ranges), (key, port)
            assert master.execute_command("CLUSTER KEYSLOT", key) == slot


def target_admin(live: LiveCluster) -> backup_config.Credentials:
    return backup_config.Credentials("admin", password=live.passwords["admin"])


def test_a_cluster_backup_is_refused_by_a_sentinel_config(
    clusters: tuple[LiveCluster, LiveCluster], backup_password: str, tmp_path: Path
) -> None:
    source, _ = clusters
    store = tmp_path / "store"
    manifest = take_backup(_config(source, tmp_path / "s", backup_password, store))
    data = json.loads((store / manifest.id / "manifest.json").read_text())
    assert data["topology"] == "cluster" and len(data["slots"]) == 3
    sentinel_like = backup_config.config_from_dict(
        {
            "topology": "sentinel",
            "masterName": "x",
            "sentinels": [["127.0.0.1", 1]],
            "backupUser": {"user": BACKUP_USER, "passwordFile": write_secret(tmp_path, "pw", backup_password)},
            "target": {"kind": "directory", "path": str(store)},
            "workDir": str(tmp_path),
        }
    )
    with pytest.raises(Refused, match="cluster deployment"):
        restore(sentinel_like, manifest.id, source.passwords["admin"])


def test_a_shard_without_a_healthy_replica_is_refused(
    clusters: tuple[LiveCluster, LiveCluster], backup_password: str, tmp_path: Path
) -> None:
    # Last in the module: it stops a replica of the source cluster.
    source, _ = clusters
    replica = next(
        live for live in source.live.values() if source.client(live.node.name).info("replication")["role"] == "slave"
    )
    replica.stop()
    store = tmp_path / "store"
    with pytest.raises(Refused, match="no healthy replica"):
        take_backup(_config(source, tmp_path / "s", backup_password, store))
    assert not store.exists() or not any(store.iterdir())
