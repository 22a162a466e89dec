"""Redis Cluster partitions on a dev deployment on the real Docker engine
(docs/partitions-cluster.md), shared by tests/e2e/test_cluster_partition.py and
bench/cluster_partition.py.

One shard's master is cut off from every other cluster node (its replica included)
with the iptables rules of tests/e2e/partition.py, while the drill's three writers
(tests/verify/drill.py: plain SET, SET + WAIT 1, SET + WAIT <replicas of the shard>)
write through redis-py's RedisCluster from the host, which still reaches every node.
Every key carries one hash tag whose slot that master serves, so every write goes to
the shard being cut. Redis Cluster fences on its own: a master that cannot reach a
majority of the masters for cluster-node-timeout turns cluster_state:fail and refuses
writes (CLUSTERDOWN), while the majority promotes its replica.

After the heal: every node cluster_state:ok with all slots, each slot range served by
exactly one master, every replica following its master with its link up, and every
acknowledged key read back through the cluster client.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import redis
from redis.cluster import RedisCluster

from tests.e2e.day2 import Stack
from tests.e2e.partition import KINDS, network
from tests.verify.access import Node, Outputs
from tests.verify.cluster_access import (
    ClusterState,
    cluster_client,
    cluster_info,
    shard_key,
    wait_healthy_cluster,
)
from tests.verify.drill import Connect, Drill

# The server-side error codes a drill counts on every node (INFO errorstats): the
# writers' redirects (MOVED, ASK), the fence (CLUSTERDOWN), min-replicas-to-write
# (NOREPLICAS) and a replica asked to write (READONLY).
ERROR_CODES = ("ASK", "CLUSTERDOWN", "MOVED", "NOREPLICAS", "READONLY", "TRYAGAIN")


class ShardClient(RedisCluster):
    """RedisCluster that sends WAIT to the master of the drill's slot: redis-py sends a
    bare WAIT to every primary and adds their replies up, which would count replicas
    of other shards."""

    slot_key = ""

    def wait(self, num_replicas: int, timeout: int, **kwargs: Any) -> Any:
        return super().wait(num_replicas, timeout, target_nodes=self.get_node_from_key(self.slot_key), **kwargs)


def connector(slot_key: str) -> Connect:
    """The drill's clients: a ShardClient per (re)connection. The socket timeout (2 s)
    outlasts the writers' WAIT timeout (1 s): a WAIT that times out replies with the
    replicas it got instead of counting as a connection error."""

    def connect(outputs: Outputs, user: str) -> ShardClient:
        client = cluster_client(outputs, user, cls=ShardClient, socket_timeout=2.0, socket_connect_timeout=1.0)
        assert isinstance(client, ShardClient)
        client.slot_key = slot_key
        return client

    return connect


def _direct(node: Node, outputs: Outputs) -> redis.Redis:
    host, port = node.spec["hostEndpoint"].rsplit(":", 1)
    return redis.Redis(
        host=host,
        port=int(port),
        username="admin",
        password=outputs.passwords["admin"],
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        decode_responses=True,
    )


def server_errors(nodes: list[Node]) -> dict[str, int]:
    """Per error code, the errors every node has counted so far."""
    totals = dict.fromkeys(ERROR_CODES, 0)
    for node in nodes:
        stats = node.info("admin", "errorstats")
        for code in ERROR_CODES:
            value = stats.get(f"errorstat_{code}", "count=0")
            totals[code] += int(value.split("=", 1)[1].split(",", 1)[0])
    return totals


class Watch(threading.Thread):
    """Samples, every 100 ms from the host, the cut master's cluster_state and its
    replica's role: when the master fenced itself and when the replica was promoted,
    in seconds after `cut_at`."""

    def __init__(self, master: Node, replica: Node, outputs: Outputs) -> None:
        super().__init__(daemon=True, name="cluster-partition-watch")
        self.master, self.replica = _direct(master, outputs), _direct(replica, outputs)
        self.halt = threading.Event()
        self.cut_at: float | None = None
        self.fenced_at: float | None = None
        self.unfenced_at: float | None = None
        self.promoted_at: float | None = None

    def run(self) -> None:
        while not self.halt.wait(0.1):
            now = time.monotonic()
            with contextlib.suppress(redis.RedisError):
                state = self.master.cluster("INFO")["cluster_state"]
                if state != "ok" and self.fenced_at is None:
                    self.fenced_at = now
                if state == "ok" and self.fenced_at is not None and self.unfenced_at is None:
                    self.unfenced_at = now
            with contextlib.suppress(redis.RedisError):
                if self.promoted_at is None and self.replica.info("replication")["role"] == "master":
                    self.promoted_at = now

    def since_cut(self, at: float | None) -> float | None:
        return None if at is None or self.cut_at is None else round(at - self.cut_at, 3)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
        self.master.close()
        self.replica.close()


@contextlib.contextmanager
def watching(master: Node, replica: Node, outputs: Outputs) -> Iterator[Watch]:
    watch = Watch(master, replica, outputs)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()


def converged(outputs: Outputs, nodes: list[Node], timeout: float = 180) -> ClusterState:
    """The `redis-cli --cluster check` of the drill: every node ok with all slots, each
    slot served once, each master with its replicas (tests/verify/cluster_access.py),
    and every replica's link to its master up."""
    deadline = time.monotonic() + timeout
    while True:
        state = wait_healthy_cluster(outputs, nodes, timeout=max(1.0, deadline - time.monotonic()))
        links = {r.name: r.info("admin", "replication") for rs in state.masters.values() for r in rs}
        down = {name: i.get("master_link_status") for name, i in links.items() if i.get("master_link_status") != "up"}
        if not down:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"replicas not following their master: {down}")
        time.sleep(0.5)


def run_scenario(client: docker.DockerClient, stack: Stack, seconds: float, shard: int = 0) -> dict[str, Any]:
    """The master of shard `shard` (in the live order) cut off from every other cluster
    node for `seconds`, then healed, under the three writers. Returns the drill's report
    with: the master before and after, the epoch before and after (a failover raises
    it), when the master fenced itself and its replica was promoted (s after the cut),
    the server-side errors by code, and the node timeout."""
    outputs, nodes = stack.outputs, stack.nodes("cluster")
    before = converged(outputs, nodes)
    master = before.master_nodes()[shard]
    replicas = before.masters[master.name]
    probe = cluster_client(outputs)
    try:
        tag = shard_key(probe, master, outputs, "rhcp:")
    finally:
        probe.close()
    others = [n.name for n in nodes if n.name != master.name]
    epoch_before = int(cluster_info(master)["cluster_current_epoch"])
    errors_before = server_errors(nodes)
    connect = connector(tag)
    # The watch outlasts the drill, which ends once every writer is through again.
    with (
        network(client, stack) as net,
        watching(master, replicas[0], outputs) as watch,
        Drill(outputs, kinds=KINDS, replicas=len(replicas), connect=connect, key_prefix=f"{{{tag}}}:drill:") as drill,
    ):
        watch.cut_at = time.monotonic()
        net.cut([master.name], others)
        cut_took = time.monotonic() - watch.cut_at
        time.sleep(seconds)
        net.heal()
        healed_at = time.monotonic()
    after = converged(outputs, nodes)
    report = drill.report()
    owner = connect(outputs, "admin")
    try:
        owner_endpoint = owner.get_node_from_key(tag).name
    finally:
        owner.close()
    [master_after] = [n.name for n in nodes if n.spec["hostEndpoint"] == owner_endpoint]
    assert master_after in after.masters, (master_after, after.masters)
    report.update(
        node_timeout_s=outputs.deployment["cluster"]["nodeTimeout"] / 1000,
        partition_s=seconds,
        # how long the rules took to go in (one iptables-restore in the cut master)
        cut_took_s=round(cut_took, 3),
        master_before=master.name,
        master_after=master_after,
        epoch_before=epoch_before,
        epoch_after=int(cluster_info(nodes[0])["cluster_current_epoch"]),
        fenced_after_s=watch.since_cut(watch.fenced_at),
        unfenced_after_heal_s=(
            None if watch.unfenced_at is None else round(max(0.0, watch.unfenced_at - healed_at), 3)
        ),
        promoted_after_s=watch.since_cut(watch.promoted_at),
    )
    errors_after = server_errors(nodes)
    report["server_errors"] = {code: errors_after[code] - errors_before[code] for code in ERROR_CODES}
    return report
