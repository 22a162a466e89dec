"""Redis Cluster: every slot served exactly once, every master with its replicas,
clients redirected by hostname, the same security as the Sentinel group, and (with
--destructive) a stopped master replaced by its replica and rejoining as a replica.

Selected only when the deployment has a cluster (topology cluster or both).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis

from . import faults
from .access import Node, Outputs, eventually, sample_key
from .cluster_access import (
    SLOTS,
    ClusterState,
    cluster_client,
    cluster_info,
    node_id,
    nodes_view,
    shard_key,
    slot_coverage,
    wait_healthy_cluster,
)

pytestmark = pytest.mark.topology("cluster")


# --- state and slots ---------------------------------------------------------------


def test_cluster_state_is_ok(cluster_node: Node, cluster_nodes: list[Node], outputs: Outputs) -> None:
    info = cluster_info(cluster_node)
    assert info["cluster_state"] == "ok", f"{cluster_node.name}: cluster_state {info['cluster_state']}"
    assert info["cluster_slots_assigned"] == info["cluster_slots_ok"] == str(SLOTS), (
        f"{cluster_node.name}: {info['cluster_slots_assigned']} slots assigned, {info['cluster_slots_ok']} ok"
    )
    assert int(info["cluster_known_nodes"]) == len(cluster_nodes), (
        f"{cluster_node.name} knows {info['cluster_known_nodes']} nodes, {len(cluster_nodes)} are deployed"
    )
    assert int(info["cluster_size"]) == outputs.deployment["cluster"]["shards"], (
        f"{cluster_node.name}: {info['cluster_size']} shards serve slots"
    )


def test_node_sees_every_slot_served_exactly_once(cluster_node: Node, outputs: Outputs) -> None:
    coverage = slot_coverage(nodes_view(cluster_node))
    missing = coverage.count(0)
    doubled = sum(1 for c in coverage if c > 1)
    assert missing == 0 and doubled == 0, f"{cluster_node.name}: {missing} slots unserved, {doubled} served twice"


def test_nodes_agree_on_the_slot_map(cluster_nodes: list[Node]) -> None:
    def slot_map(node: Node) -> dict[tuple[int, int], str]:
        return {r: line.id for line in nodes_view(node) if line.is_master for r in line.slots}

    reference = slot_map(cluster_nodes[0])
    for node in cluster_nodes[1:]:
        assert slot_map(node) == reference, f"{node.name} and {cluster_nodes[0].name} disagree about slot owners"


def test_each_master_has_its_replicas(cluster_nodes: list[Node], outputs: Outputs) -> None:
    # Raises naming the master whose replica count differs from clusterReplicasPerShard.
    state = wait_healthy_cluster(outputs, cluster_nodes, timeout=10)
    assert len(state.masters) == outputs.deployment["cluster"]["shards"]


def test_replica_link_is_up(cluster_node: Node, cluster_nodes: list[Node]) -> None:
    view = nodes_view(cluster_node)
    me = next(line for line in view if "myself" in line.flags)
    if me.is_master:
        return
    by_id = {node_id(n): n for n in cluster_nodes}
    assert me.master_id in by_id, f"{cluster_node.name} replicates {me.master_id}, not a deployed node"
    master = next(line for line in view if line.id == me.master_id)
    info = cluster_node.info("admin", "replication")
    # Cluster replicas connect to the address in the node table, not the hostname.
    assert info["master_host"] in (master.address.rsplit(":", 1)[0], master.hostname), (
        f"{cluster_node.name} replicates {info['master_host']}, the cluster says {by_id[me.master_id].name}"
    )
    # Cluster replicas authenticate to their master as the replication user.
    assert info["master_link_status"] == "up", f"{cluster_node.name}: master_link_status {info['master_link_status']}"


# --- hostnames, settings, persistence ------------------------------------------------


def test_nodes_announce_their_hostnames(cluster_node: Node, cluster_nodes: list[Node], outputs: Outputs) -> None:
    if outputs.deployment["cluster"]["settings"]["cluster-preferred-endpoint-type"] != "hostname":
        pytest.skip("the stack announces IP addresses (announceHostnames false)")
    by_id = {node_id(n): n for n in cluster_nodes}
    for line in nodes_view(cluster_node):
        node = by_id.get(line.id)
        assert node is not None, f"{cluster_node.name} knows node {line.id}, which is not deployed"
        assert line.hostname == node.hostname, f"{node.name} is announced as {line.hostname!r} to {cluster_node.name}"


def test_redirects_name_the_owner_by_hostname(cluster_nodes: list[Node], outputs: Outputs) -> None:
    """A client asking the wrong node is sent to the owner by a name it can resolve."""
    if outputs.deployment["cluster"]["settings"]["cluster-preferred-endpoint-type"] != "hostname":
        pytest.skip("the stack announces IP addresses (announceHostnames false)")
    asked = cluster_nodes[0]
    hosts = {f"{n.hostname}:{n.port}" for n in cluster_nodes}
    redirects = 0
    for i in range(50):
        reply = asked.cli("admin", "GET", f"redis-ha:verify:redirect:{i}")
        if reply.startswith("MOVED"):
            _, _, target = reply.split()
            assert target in hosts, f"{asked.name} redirects to {target}, not a deployed node's hostname"
            redirects += 1
    assert redirects > 0, f"{asked.name} served 50 keys itself: no redirect to check"


def test_cluster_settings_match_the_stack(cluster_node: Node, outputs: Outputs) -> None:
    expected = {**outputs.deployment["protectedSettings"], **outputs.deployment["cluster"]["settings"]}
    for name, value in expected.items():
        reply = cluster_node.cli("admin", "CONFIG", "GET", name).splitlines()
        assert reply == [name, value], f"{cluster_node.name}: {name} is {reply[1:]!r}, the stack says {value!r}"


def test_node_keeps_its_cluster_state_on_its_volume(cluster_node: Node, outputs: Outputs) -> None:
    nodes_conf = outputs.deployment["cluster"]["settings"]["cluster-config-file"]
    content = cluster_node.host.file(nodes_conf).content_string
    assert f"{node_id(cluster_node)} " in content and "myself" in content, f"{cluster_node.name}: {nodes_conf}"
    if outputs.deployment["protectedSettings"]["appendonly"] == "yes":
        listing = cluster_node.sh("ls %s", f"{outputs.deployment['cluster']['dataDir']}/appendonlydir")
        assert re.search(r"\.manifest$", listing, re.MULTILINE), f"{cluster_node.name}: no AOF manifest"


# --- security -------------------------------------------------------------------------


def test_cluster_node_refuses_unauthenticated_clients(cluster_node: Node) -> None:
    reply = cluster_node.cli(None, "CLUSTER", "INFO")
    assert reply.startswith("NOAUTH"), f"{cluster_node.name} answered {reply[:40]!r} to an unauthenticated client"


def test_cluster_node_users(cluster_node: Node, outputs: Outputs) -> None:
    acl = cluster_node.cli("admin", "ACL", "LIST").splitlines()
    default = next(line for line in acl if line.startswith("user default "))
    assert " off " in f"{default} ", f"{cluster_node.name}: {default}"
    users = {line.split()[1] for line in acl}
    # Nothing monitors a cluster node with Sentinel's rights.
    assert "sentinel" not in users, f"{cluster_node.name} has a sentinel user"
    content = cluster_node.host.file(f"{outputs.deployment['confDir']}/users.acl").content_string
    leaked = [user for user, password in outputs.passwords.items() if password in content]
    assert not leaked, f"{cluster_node.name}: users.acl holds the plain-text password of {leaked}"


def test_role_works_through_a_cluster_client(role: dict, outputs: Outputs, cluster_nodes: list[Node]) -> None:
    user = role["name"]
    token = uuid.uuid4().hex
    client = cluster_client(outputs, user)
    try:
        for pattern in role["keys"]:
            key = sample_key(pattern, token)
            if key is None:
                continue
            assert client.set(key, "v", ex=60) is True, f"{user} cannot SET {key}"
            assert client.get(key) == "v"
            assert client.delete(key) == 1
        for pattern in role["channels"]:
            channel = sample_key(pattern, token)
            if channel is not None:
                assert isinstance(client.publish(channel, "verify"), int)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set(f"redis-ha-verify-forbidden:{token}", "v")
    finally:
        client.close()
    # The role may read the slot map (a cluster client needs it), not change the cluster.
    node = cluster_nodes[0]
    for command in (("CLUSTER", "RESET"), ("CLUSTER", "FORGET", node_id(node)), ("CLUSTER", "FAILOVER")):
        reply = node.cli(user, *command)
        assert reply.startswith("NOPERM"), f"{user} may run {' '.join(command[:2])}: {reply}"


# --- data through a cluster-aware client ------------------------------------------------


def test_keys_written_through_a_cluster_client_land_on_every_shard(cluster_nodes: list[Node], outputs: Outputs) -> None:
    client = cluster_client(outputs)
    prefix = f"redis-ha:verify:cluster:{uuid.uuid4().hex}:"
    keys = [f"{prefix}{i}" for i in range(100)]
    try:
        for key in keys:
            assert client.set(key, key, ex=300) is True
        assert [client.get(k) for k in keys] == keys
        owners = {client.get_node_from_key(k).name for k in keys}
        shards = outputs.deployment["cluster"]["shards"]
        assert len(owners) == shards, f"100 keys landed on {len(owners)} masters, {shards} shards deployed"
        # Each key is really stored by the node that serves its slot.
        endpoints = {n.spec["hostEndpoint"]: n for n in cluster_nodes}
        for key in keys[:10]:
            owner = endpoints[client.get_node_from_key(key).name]
            assert owner.cli("admin", "GET", key) == key, f"{key} is not on {owner.name}"
    finally:
        client.delete(*keys)
        client.close()


# --- exporter ---------------------------------------------------------------------------


def test_cluster_exporter_reports_the_cluster(outputs: Outputs, cluster_nodes: list[Node]) -> None:
    specs = outputs.nodes("cluster-exporter")
    assert specs, "the cluster has no exporter (settings: exporter false?)"
    exporter = Node(specs[0], outputs)
    text = exporter.sh("wget -q -O - http://127.0.0.1:%s/metrics", str(exporter.port))
    assert re.search(r"^redis_up 1$", text, re.MULTILINE), "redis_up is not 1"
    assert re.search(r"^redis_cluster_enabled 1$", text, re.MULTILINE), "the exporter sees no cluster node"
    if urlparse(exporter.spec["testinfraHost"]).scheme != "docker":
        return  # a Kubernetes sidecar scrapes its own pod only
    for node in cluster_nodes:
        target = f"redis://{node.hostname}:{node.port}"
        text = exporter.sh("wget -q -O - %s", f"http://127.0.0.1:{exporter.port}/scrape?target={target}")
        assert re.search(r"^redis_up 1$", text, re.MULTILINE), f"the exporter cannot scrape {node.name}"


# --- drills -------------------------------------------------------------------------------


@pytest.fixture
def healthy(outputs: Outputs, cluster_nodes: list[Node]) -> Iterator[ClusterState]:
    """A healthy cluster before the drill; after it every node is started again and
    the cluster must be healthy once more."""
    for node in cluster_nodes:
        node_id(node)  # asked while every node runs
    state = wait_healthy_cluster(outputs, cluster_nodes, timeout=90)
    yield state
    for node in cluster_nodes:
        faults.start(node)  # a no-op for running nodes
    wait_healthy_cluster(outputs, cluster_nodes, timeout=120)


def _takeover_deadline(outputs: Outputs) -> float:
    # PFAIL after the node timeout, FAIL once a majority agrees, then the replica's
    # election delay (500-1000 ms plus 1 s per rank) and the vote.
    return outputs.deployment["cluster"]["nodeTimeout"] / 1000 + 10


@pytest.mark.destructive
def test_master_stopped_replica_takes_over_and_old_master_rejoins(
    healthy: ClusterState, outputs: Outputs, cluster_nodes: list[Node]
) -> None:
    old = healthy.master_nodes()[0]
    replicas = healthy.masters[old.name]
    assert replicas, f"{old.name} has no replica: nothing can take over"
    survivors = [n for n in cluster_nodes if n.name != old.name]
    client = cluster_client(outputs)
    key = shard_key(client, old, outputs, f"redis-ha:drill:{uuid.uuid4().hex}:")
    assert client.set(key, "before", ex=600) is True
    client.close()

    faults.stop(old)
    started = time.monotonic()

    def taken_over() -> Node:
        view = nodes_view(replicas[0])
        by_id = {line.id: line for line in view}
        promoted = [r for r in replicas if by_id[node_id(r)].is_master and by_id[node_id(r)].slots]
        assert promoted, f"no replica of {old.name} is master yet"
        for node in survivors:
            info = cluster_info(node)
            assert info["cluster_state"] == "ok", f"{node.name}: cluster_state {info['cluster_state']}"
            assert info["cluster_slots_ok"] == str(SLOTS), f"{node.name}: {info['cluster_slots_ok']} slots ok"
        return promoted[0]

    deadline = _takeover_deadline(outputs)
    new = eventually(taken_over, timeout=deadline + 5, interval=0.25)
    took = time.monotonic() - started
    assert took <= deadline, f"{new.name} took over after {took:.1f}s, more than {deadline:.0f}s"
    assert set(slot_coverage(nodes_view(new))) == {1}, "a slot is unserved or served twice after the takeover"

    # The data of the shard is served by the new master.
    client = cluster_client(outputs)
    eventually(lambda: _assert_equal(client.get(key), "before"), timeout=10)
    # With min-replicas-to-write above the replicas left, the shard refuses writes
    # until one is back (a bounded-loss setting working as intended).
    left = len(replicas) - 1
    if int(outputs.deployment["protectedSettings"]["min-replicas-to-write"]) > left:
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            client.set(key, "during", ex=600)
    else:
        assert client.set(key, "during", ex=600) is True
    client.close()

    faults.start(old)

    def rejoined() -> None:
        me = next(line for line in nodes_view(old) if "myself" in line.flags)
        assert not me.is_master, f"{old.name} came back as a master"
        assert me.master_id == node_id(new), f"{old.name} replicates {me.master_id}, not {new.name}"
        info = old.info("admin", "replication")
        assert info.get("master_link_status") == "up", f"{old.name}: link {info.get('master_link_status')}"

    eventually(rejoined, timeout=60)
    wait_healthy_cluster(outputs, cluster_nodes, timeout=60)
    client = cluster_client(outputs)

    def writes() -> None:
        try:
            assert client.set(key, "after", ex=600) is True
        except redis.RedisError as error:
            raise AssertionError(f"write to the shard of {new.name} failed: {error!r}") from error

    eventually(writes, timeout=30)
    assert client.get(key) == "after"
    client.close()


@pytest.mark.destructive
def test_replica_restarted_resyncs(healthy: ClusterState, outputs: Outputs, cluster_nodes: list[Node]) -> None:
    master = healthy.master_nodes()[-1]
    replica = healthy.masters[master.name][0]
    before = node_id(replica)
    faults.restart(replica)

    def resynced() -> None:
        me = next(line for line in nodes_view(replica) if "myself" in line.flags)
        assert me.master_id == node_id(master), f"{replica.name} replicates {me.master_id}, not {master.name}"
        info = replica.info("admin", "replication")
        assert info.get("master_link_status") == "up", f"{replica.name}: link {info.get('master_link_status')}"

    eventually(resynced, timeout=60)
    # Same identity from its nodes.conf: it rejoined, it was not added anew.
    assert replica.cli("admin", "CLUSTER", "MYID").strip() == before
    wait_healthy_cluster(outputs, cluster_nodes, timeout=60)


def _assert_equal(value: object, expected: object) -> None:
    assert value == expected, f"{value!r} != {expected!r}"
