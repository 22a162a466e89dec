"""Finding the nodes: the master and its replicas through the Sentinels, the shards
of a cluster through CLUSTER SHARDS, and the healthy replica to snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Address, BackupError, Config, Credentials, Refused
from .resp import Connection, RespError, keyspace, pairs, parse_info, text

SLOTS = 16384


@dataclass(frozen=True)
class SentinelView:
    master: Address
    replicas: tuple[dict[str, str], ...]  # SENTINEL REPLICAS entries
    state: dict[str, str]  # SENTINEL MASTER of the first agreeing Sentinel
    agreeing: tuple[Address, ...]


@dataclass
class ClusterNode:
    id: str
    host: str
    port: int
    role: str
    offset: int
    health: str


@dataclass
class Shard:
    ranges: list[tuple[int, int]]
    master: ClusterNode
    replicas: list[ClusterNode] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """The node a snapshot is taken from, and what it said just before."""

    host: str
    port: int
    run_id: str
    role: str
    lag: int
    keyspace: dict[int, int]
    redis_version: str


def _flat(reply: Any) -> dict[str, str]:
    return {k: text(v) for k, v in pairs(reply).items()}


def sentinel_view(config: Config) -> SentinelView:
    """The master as a majority of the configured Sentinels name it; every Sentinel
    that answers must name the same one."""
    answers: dict[Address, Address] = {}
    errors = []
    for host, port in config.sentinels:
        try:
            with config.connect(host, port, config.sentinel_user, timeout=5) as conn:
                reply = conn.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", config.master_name)
        except (OSError, BackupError, RespError) as error:
            errors.append(f"{host}:{port}: {error}")
            continue
        if reply:
            answers[(host, port)] = (text(reply[0]), int(reply[1]))
    named = set(answers.values())
    majority = len(config.sentinels) // 2 + 1
    if len(named) > 1:
        raise Refused(f"the Sentinels disagree on the master of {config.master_name!r}: {sorted(named)}")
    if len(answers) < majority:
        detail = "; ".join(errors) or "they do not know it"
        raise Refused(
            f"only {len(answers)} of {len(config.sentinels)} Sentinels name a master for "
            f"{config.master_name!r} (a majority is {majority}): {detail}"
        )
    master = named.pop()
    first = next(iter(answers))
    with config.connect(*first, config.sentinel_user, timeout=5) as conn:
        replicas = tuple(_flat(r) for r in conn.call("SENTINEL", "REPLICAS", config.master_name))
        state = _flat(conn.call("SENTINEL", "MASTER", config.master_name))
    return SentinelView(master, replicas, state, tuple(answers))


def node_info(conn: Connection) -> dict[str, str]:
    info = parse_info(conn.call("INFO", "server"))
    info.update(parse_info(conn.call("INFO", "replication")))
    info.update(parse_info(conn.call("INFO", "keyspace")))
    info.update(parse_info(conn.call("INFO", "persistence")))
    return info


def _source(host: str, port: int, info: dict[str, str], lag: int) -> Source:
    return Source(host, port, info.get("run_id", ""), info.get("role", ""), lag, keyspace(info), info["redis_version"])


def _replica_in_sync(config: Config, host: str, port: int, reasons: list[str]) -> dict[str, str] | None:
    """The replica's own INFO when it is a replica with its link up and not loading;
    else None, with the reason appended to `reasons`."""
    try:
        with config.connect(host, port, config.backup_user) as conn:
            info = node_info(conn)
    except (OSError, BackupError, RespError) as error:
        reasons.append(f"{host}:{port}: {error}")
        return None
    if info.get("role") != "slave" or info.get("master_link_status") != "up" or info.get("loading") == "1":
        reasons.append(
            f"{host}:{port}: role {info.get('role')}, link {info.get('master_link_status')}, "
            f"loading {info.get('loading')}"
        )
        return None
    return info


def pick_sentinel_source(config: Config, view: SentinelView) -> Source:
    """The replica with its link up and the smallest lag behind the master."""
    with config.connect(*view.master, config.backup_user) as conn:
        master_info = node_info(conn)
    master_offset = int(master_info.get("master_repl_offset", 0))
    best: Source | None = None
    reasons = []
    for entry in view.replicas:
        host, port = entry.get("ip", ""), int(entry.get("port", 0))
        flags = entry.get("flags", "")
        if any(bad in flags for bad in ("s_down", "o_down", "disconnected")):
            reasons.append(f"{host}:{port} is {flags}")
            continue
        info = _replica_in_sync(config, host, port, reasons)
        if info is None:
            continue
        lag = max(0, master_offset - int(info.get("slave_repl_offset", 0)))
        if best is None or lag < best.lag:
            best = _source(host, port, info, lag)
    if best is not None:
        return best
    if config.allow_master:
        return _source(*view.master, master_info, 0)
    raise Refused(
        f"no replica of {config.master_name!r} with its link up to back up from "
        f"({'; '.join(reasons) or 'the Sentinels list none'}); allowMaster is off"
    )


def _cluster_node(entry: Any, tls: bool) -> ClusterNode:
    item = pairs(entry)
    port = item.get("tls-port") if tls else item.get("port")
    port = port if port is not None else item.get("port", item.get("tls-port"))
    host = text(item.get("ip") or item.get("endpoint") or item.get("hostname") or b"")
    return ClusterNode(
        id=text(item.get("id", b"")),
        host=host,
        port=int(port),  # type: ignore[arg-type]
        role=text(item.get("role", b"")),
        offset=int(item.get("replication-offset", 0)),
        health=text(item.get("health", b"")),
    )


def cluster_shards(config: Config, credentials: Credentials) -> list[Shard]:
    """The shards as the first reachable seed node sees them, each slot covered once."""
    errors = []
    reply = None
    for host, port in config.cluster_nodes:
        try:
            with config.connect(host, port, credentials) as conn:
                reply = conn.call("CLUSTER", "SHARDS")
            break
        except (OSError, BackupError, RespError) as error:
            errors.append(f"{host}:{port}: {error}")
    if reply is None:
        raise BackupError(f"no seed node answered CLUSTER SHARDS: {'; '.join(errors)}")
    return parse_shards(reply, config.tls is not None)


def parse_shards(reply: Any, tls: bool = False) -> list[Shard]:
    """CLUSTER SHARDS as shards ordered by their lowest slot; Refused unless every slot
    has exactly one shard, and every shard one master."""
    shards = []
    for raw in reply:
        item = pairs(raw)
        bounds = [int(b) for b in item.get("slots") or []]
        ranges = [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
        nodes = [_cluster_node(n, tls) for n in item.get("nodes") or []]
        masters = [n for n in nodes if n.role == "master"]
        if not ranges:
            continue  # a shard without slots (a node not yet given any) holds no data
        if len(masters) != 1:
            raise Refused(f"the shard of slots {ranges} has {len(masters)} masters")
        shards.append(Shard(sorted(ranges), masters[0], [n for n in nodes if n.role == "replica"]))
    shards.sort(key=lambda s: s.ranges[0][0])
    covered = [0] * SLOTS
    for shard in shards:
        for start, end in shard.ranges:
            for slot in range(start, end + 1):
                covered[slot] += 1
    missing = covered.count(0)
    if missing or max(covered) > 1:
        raise Refused(f"the cluster's slot map is not whole: {missing} of {SLOTS} slots have no shard")
    return shards


def pick_shard_source(config: Config, shard: Shard) -> Source:
    best: Source | None = None
    reasons = []
    for node in shard.replicas:
        # CLUSTER SHARDS's `loading` is the seed node's view (a replica whose gossiped
        # offset is still 0 right after its first sync): the replica's own INFO decides.
        if node.health == "failed":
            reasons.append(f"{node.host}:{node.port} is {node.health}")
            continue
        info = _replica_in_sync(config, node.host, node.port, reasons)
        if info is None:
            continue
        lag = max(0, shard.master.offset - int(info.get("slave_repl_offset", 0)))
        if best is None or lag < best.lag:
            best = _source(node.host, node.port, info, lag)
    if best is not None:
        return best
    if config.allow_master:
        with config.connect(shard.master.host, shard.master.port, config.backup_user) as conn:
            return _source(shard.master.host, shard.master.port, node_info(conn), 0)
    raise Refused(
        f"the shard of slots {shard.ranges} has no healthy replica to back up from "
        f"({'; '.join(reasons) or 'none listed'}); allowMaster is off"
    )
