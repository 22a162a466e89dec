"""Sentinel: every Sentinel agrees on the master, sees its peers and the replicas."""

from __future__ import annotations

from .access import Node, Outputs, eventually, parse_flat


def test_sentinel_names_the_same_master(sentinel_node: Node, master: Node, outputs: Outputs) -> None:
    reply = sentinel_node.cli(
        "sentinel-client", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", outputs.deployment["masterName"]
    )
    assert reply.splitlines() == [master.hostname, str(master.port)], f"{sentinel_node.name} says {reply!r}"


def test_sentinel_quorum_is_reachable(sentinel_node: Node, outputs: Outputs) -> None:
    reply = sentinel_node.cli("sentinel-client", "SENTINEL", "CKQUORUM", outputs.deployment["masterName"])
    assert reply.startswith("OK"), f"{sentinel_node.name}: {reply}"


def test_sentinel_quorum_matches_the_stack(sentinel_node: Node, outputs: Outputs) -> None:
    state = parse_flat(sentinel_node.cli("sentinel-client", "SENTINEL", "MASTER", outputs.deployment["masterName"]))
    assert int(state["quorum"]) == outputs.deployment["quorum"], (
        f"{sentinel_node.name} runs with quorum {state['quorum']}, the stack says {outputs.deployment['quorum']}"
    )
    assert "s_down" not in state["flags"] and "o_down" not in state["flags"], state["flags"]


def test_sentinel_sees_every_other_sentinel(sentinel_node: Node, sentinels: list[Node], outputs: Outputs) -> None:
    def check() -> None:
        reply = sentinel_node.cli("sentinel-client", "SENTINEL", "SENTINELS", outputs.deployment["masterName"])
        peers = len(_blocks(reply))
        assert peers == len(sentinels) - 1, f"{sentinel_node.name} knows {peers} other Sentinels"

    eventually(check, timeout=15)


def test_sentinel_sees_every_replica(
    sentinel_node: Node, redis_nodes: list[Node], master: Node, outputs: Outputs
) -> None:
    expected = sorted(n.hostname for n in redis_nodes if n.name != master.name)

    def check() -> None:
        reply = sentinel_node.cli("sentinel-client", "SENTINEL", "REPLICAS", outputs.deployment["masterName"])
        blocks = _blocks(reply)
        hosts = sorted(b["ip"] for b in blocks)
        assert hosts == expected, f"{sentinel_node.name} lists replicas {hosts}, expected {expected}"
        bad = [b["ip"] for b in blocks if "s_down" in b["flags"] or "disconnected" in b["flags"]]
        assert not bad, f"{sentinel_node.name} flags replicas down: {bad}"

    eventually(check, timeout=15)


def _blocks(reply: str) -> list[dict[str, str]]:
    """Split a list of flat maps (SENTINEL REPLICAS output) on its `name` fields."""
    lines = reply.splitlines()
    starts = [i for i in range(0, len(lines), 2) if lines[i] == "name"]
    return [parse_flat("\n".join(lines[s:e])) for s, e in zip(starts, [*starts[1:], len(lines)], strict=True)]
