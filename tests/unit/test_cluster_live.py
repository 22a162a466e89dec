"""The rendered Redis Cluster files and creation script, run by the real Redis 7.0.

Eight local redis-server processes in cluster mode (127.0.0.1, each with its own
directory and bus port), started from the files components/rendering.py renders;
the creation script (components/node/cluster-create.sh) runs against them with the
host's redis-cli, exactly as the one-shot container or Job runs it. The tests run in
order on one cluster: create, re-run, restart, clients and users, scale-out.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis_ha.components import node_files, rendering, security
from redis_ha.components.settings_load import load_settings

from tests.support.live import (
    LOCALHOST,
    make_password,
    raw_command,
    sweep_server,
    wait_until,
)
from tests.support.live_cluster import CONFIG, LiveCluster


def nodes_text(cluster: LiveCluster, node: str) -> list[str]:
    out = subprocess.run(
        ["redis-cli", "--askpass", "--user", "admin", "-p", str(cluster.live[node].port), "CLUSTER", "NODES"],
        input=cluster.passwords["admin"] + "\n",
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def parsed_nodes(cluster: LiveCluster, node: str) -> dict[int, dict[str, Any]]:
    """port -> {id, flags, master id, slot ranges} as `node` sees the cluster."""
    result = {}
    for line in nodes_text(cluster, node):
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        result[port] = {"id": fields[0], "flags": fields[2], "master": fields[3], "slots": fields[8:]}
    return result


def cluster_info(client: redis.Redis) -> dict[str, str]:
    reply = client.execute_command("CLUSTER INFO")
    if isinstance(reply, dict):
        return {k: str(v) for k, v in reply.items()}
    return dict(line.split(":", 1) for line in reply.splitlines() if ":" in line)


def assert_healthy(cluster: LiveCluster, shards: int, deploy_time_roles: bool = True) -> None:
    """State ok everywhere; with `deploy_time_roles` every node also has the role and
    shard it was deployed with, else each master has one replica."""
    topology = cluster.topology(shards)
    for node in topology.nodes:
        info = cluster_info(cluster.client(node.name))
        assert info["cluster_state"] == "ok", (node.name, info)
        assert int(info["cluster_slots_assigned"]) == 16384
        assert int(info["cluster_known_nodes"]) == len(topology.nodes)
        assert int(info["cluster_size"]) == shards
    view = parsed_nodes(cluster, topology.nodes[0].name)
    if not deploy_time_roles:
        masters = [e for e in view.values() if "master" in e["flags"]]
        assert len(masters) == shards and all(e["slots"] for e in masters), view
        for master in masters:
            assert [e for e in view.values() if e["master"] == master["id"]], f"{master} has no replica"
        return
    for member in topology.members:
        entry = view[member.node.port]
        if member.master is None:
            assert "master" in entry["flags"] and entry["slots"], (member.node.name, entry)
        else:
            assert "slave" in entry["flags"], (member.node.name, entry)
            assert entry["master"] == view[member.master.port]["id"], f"{member.node.name} is in the wrong shard"


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    settings = load_settings(CONFIG)
    return {user: make_password() for user in security.user_names(settings)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[LiveCluster]:
    live = LiveCluster(tmp_path_factory.mktemp("cluster"), passwords)
    try:
        live.start(shards=3)
        yield live
    finally:
        live.stop()


def test_rendered_node_config_is_a_cluster_node(cluster: LiveCluster) -> None:
    live = next(iter(cluster.live.values()))
    conf = live.conf.read_text()
    assert "\ncluster-enabled yes\n" in conf
    assert f"\ncluster-config-file {live.directory}/nodes.conf\n" in conf
    assert "\nreplicaof " not in conf
    client = cluster.client(live.node.name)
    assert client.config_get("cluster-node-timeout") == {"cluster-node-timeout": "2000"}
    assert client.config_get("cluster-announce-hostname") == {"cluster-announce-hostname": LOCALHOST}
    assert client.config_get("cluster-preferred-endpoint-type") == {"cluster-preferred-endpoint-type": "hostname"}
    assert client.config_get("cluster-port") == {"cluster-port": str(live.port + 10000)}
    # Redis wrote its own state file where the config says.
    assert (live.directory / "nodes.conf").exists()


def test_script_holds_no_password(cluster: LiveCluster) -> None:
    env = rendering.cluster_create_env(cluster.settings, cluster.topology(3), "/x/admin.password")
    files = node_files.bundle(("cluster-create.sh",), env)
    for text in files.values():
        assert not [p for p in cluster.passwords.values() if p in text]
    text, lib = files["cluster-create.sh"], files["lib.sh"]
    assert "--cluster create" in text
    # The password reaches each redis-cli on its stdin, not through its environment:
    # the cluster manager here, every other call through lib.sh's cli_as.
    assert "REDISCLI_AUTH" not in text + lib
    assert text.count("| redis-cli --no-auth-warning --askpass") == 1
    assert lib.count("| $_timeout redis-cli --no-auth-warning --askpass") == 2
    assert 'cli_as "$user" "$password"' in text


def test_script_creates_the_cluster_with_the_deployed_shards(cluster: LiveCluster) -> None:
    result = cluster.run_script(3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "creating it from the masters" in result.stderr
    assert_healthy(cluster, 3)
    # Cluster replicas authenticate as `replica` (masteruser/masterauth).
    for member in cluster.topology(3).members:
        if member.master is not None:
            info = cluster.client(member.node.name).info("replication")
            assert info["master_link_status"] == "up", member.node.name
            assert int(info["master_port"]) == member.master.port


def test_script_is_idempotent(cluster: LiveCluster) -> None:
    before = {
        port: (e["id"], e["flags"], e["slots"]) for port, e in parsed_nodes(cluster, "redis-ha-cluster-1").items()
    }
    result = cluster.run_script(3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to change" in result.stderr
    after = {port: (e["id"], e["flags"], e["slots"]) for port, e in parsed_nodes(cluster, "redis-ha-cluster-1").items()}
    assert after == before


def test_restarted_node_rejoins_and_the_script_changes_nothing(cluster: LiveCluster) -> None:
    live = cluster.live["redis-ha-cluster-2"]
    node_id = cluster.client(live.node.name).execute_command("CLUSTER MYID")
    live.stop()
    live.start()
    live.wait_ready("admin", cluster.passwords["admin"])
    # Same identity from nodes.conf, back as a replica of its shard.
    assert cluster.client(live.node.name).execute_command("CLUSTER MYID") == node_id
    wait_until(
        lambda: cluster.client(live.node.name).info("replication").get("master_link_status") == "up",
        20,
        "the restarted replica to resync",
    )
    result = cluster.run_script(3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to change" in result.stderr
    assert_healthy(cluster, 3)


def test_application_role_uses_a_cluster_client(cluster: LiveCluster) -> None:
    client = cluster.cluster_client("cache")
    keys = [f"cache:live:{i}" for i in range(60)]
    for key in keys:
        assert client.set(key, key, ex=300) is True
    assert [client.get(k) for k in keys] == keys
    owners = {client.get_node_from_key(k).port for k in keys}
    assert len(owners) == 3, owners
    # The slot map is readable, the cluster is not changeable.
    node = cluster.client("redis-ha-cluster-1", "cache")
    for command in (("CLUSTER", "FORGET", "x"), ("CLUSTER", "RESET"), ("CLUSTER", "MEET", "127.0.0.1", "1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            node.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("other:x", "1")
    client.close()


def test_cluster_node_has_no_sentinel_user_and_refuses_anonymous_clients(cluster: LiveCluster) -> None:
    users = {line.split()[1] for line in cluster.client("redis-ha-cluster-1").acl_list()}
    assert "sentinel" not in users and {"admin", "replica", "exporter", "default"} <= users
    assert raw_command(cluster.live["redis-ha-cluster-1"].port, "PING").startswith(b"-NOAUTH")
    exporter = cluster.client("redis-ha-cluster-1", "exporter")
    assert cluster_info(exporter)["cluster_state"] == "ok"


CLUSTER_USERS = [u.name for u in security.cluster_redis_users(load_settings(CONFIG))]


@pytest.mark.parametrize("user", CLUSTER_USERS)
def test_cluster_user_may_run_exactly_its_allowlist(cluster: LiveCluster, user: str) -> None:
    # The verification suite's sweep (tests/verify/acl_sweep.py) on a cluster node.
    acl = security.allowlists(cluster.settings)
    server = sweep_server(cluster.live["redis-ha-cluster-1"], cluster.passwords)
    result = server.sweep(user, acl["servers"]["cluster"][user], acl["alwaysAllowed"])
    assert result.ok, result.report()


def test_script_scales_out_and_rebalances_after_a_failover(cluster: LiveCluster) -> None:
    # A manual failover first: a deploy-time replica is a master when the scale-out runs.
    promoted = cluster.client("redis-ha-cluster-2")
    assert promoted.execute_command("CLUSTER FAILOVER") in (True, "OK", b"OK")
    wait_until(lambda: promoted.info("replication")["role"] == "master", 20, "the manual failover")
    wait_until(
        lambda: cluster.client("redis-ha-cluster-1").info("replication").get("master_link_status") == "up",
        20,
        "the old master to follow the promoted replica",
    )
    client = cluster.cluster_client()
    keys = [f"scale:{i}" for i in range(300)]
    for key in keys:
        client.set(key, key)
    client.close()
    cluster.start(shards=4)
    result = cluster.run_script(4)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "adding master" in result.stderr and "rebalancing slots" in result.stderr
    assert_healthy(cluster, 4, deploy_time_roles=False)
    view = parsed_nodes(cluster, "redis-ha-cluster-1")
    masters = [e for e in view.values() if "master" in e["flags"]]
    assert len(masters) == 4 and all(e["slots"] for e in masters)
    client = cluster.cluster_client()
    assert [client.get(k) for k in keys] == keys
    client.close()
    # The new nodes were relaxed while joining (FUNCTION RESTORE); the setting is back.
    for name in cluster.live:
        assert cluster.client(name).config_get("min-replicas-to-write") == {"min-replicas-to-write": "1"}, name
    # And once more: nothing to change.
    again = cluster.run_script(4)
    assert again.returncode == 0 and "nothing to change" in again.stderr, again.stderr[-2000:]
