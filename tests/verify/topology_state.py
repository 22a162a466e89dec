"""The live state of a Sentinel topology, read the way an operator would."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .access import Node, Outputs, eventually


@dataclass(frozen=True)
class LiveState:
    master: Node
    replicas: list[Node]


def failover_deadline(outputs: Outputs) -> float:
    """Seconds within which the Sentinels must have replaced a failed master."""
    d = outputs.deployment
    # Detection, then one failover attempt, with room for a retry by another Sentinel.
    return d["downAfterMilliseconds"] / 1000 + 2 * d["failoverTimeout"] / 1000 + 10


def sentinel_master(sentinel: Node, outputs: Outputs) -> str | None:
    """The master hostname this Sentinel names, or None if it does not answer."""
    try:
        reply = sentinel.cli("sentinel-client", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", outputs.deployment["masterName"])
    except AssertionError:
        return None
    lines = reply.splitlines()
    return lines[0] if len(lines) == 2 else None


def role(node: Node) -> str | None:
    try:
        return node.info("admin", "replication").get("role")
    except AssertionError:
        return None


def healthy_state(outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node]) -> LiveState:
    """Raises AssertionError unless every Sentinel names the same master, that node is
    a master, and every other node is its replica with the link up."""
    named = {s.name: sentinel_master(s, outputs) for s in sentinels}
    hosts = set(named.values())
    assert len(hosts) == 1 and None not in hosts, f"Sentinels disagree or do not answer: {named}"
    master_host = hosts.pop()
    master = next((n for n in redis_nodes if n.hostname == master_host), None)
    assert master is not None, f"Sentinels name {master_host}, not a deployed node"
    assert role(master) == "master", f"{master.name} is named master but reports {role(master)}"
    replicas = [n for n in redis_nodes if n.name != master.name]
    for replica in replicas:
        info = replica.info("admin", "replication")
        assert info.get("role") == "slave", f"{replica.name} reports role {info.get('role')}"
        assert info.get("master_host") == master.hostname, f"{replica.name} follows {info.get('master_host')}"
        assert info.get("master_link_status") == "up", f"{replica.name}: link {info.get('master_link_status')}"
    return LiveState(master, replicas)


def wait_healthy(outputs: Outputs, redis_nodes: list[Node], sentinels: list[Node], timeout: float = 60) -> LiveState:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return healthy_state(outputs, redis_nodes, sentinels)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


# Sentinel's TILT mode: after its timer ran late by over 2 s (a stalled or starved
# host), a Sentinel takes no action for 30 s (SENTINEL_TILT_PERIOD in sentinel.c).
TILT_SECONDS = 30


def _tilted(sentinel: Node) -> bool:
    try:
        return sentinel.info("admin", "sentinel").get("sentinel_tilt") == "1"
    except AssertionError:
        return False


def _sentinel_facts(sentinel: Node, outputs: Outputs) -> dict[str, str]:
    """What a Sentinel says of itself and of the master: tilt, flags, failover state."""
    facts: dict[str, str] = {}
    try:
        facts.update({k: v for k, v in sentinel.info("admin", "sentinel").items() if "tilt" in k})
        reply = sentinel.cli("sentinel-client", "SENTINEL", "MASTER", outputs.deployment["masterName"]).splitlines()
        fields = dict(zip(reply[::2], reply[1::2], strict=False))
        for key in ("ip", "flags", "failover-state", "num-other-sentinels", "quorum", "config-epoch"):
            facts[key] = fields.get(key, "?")
        reply = sentinel.cli("sentinel-client", "SENTINEL", "REPLICAS", outputs.deployment["masterName"]).splitlines()
        replicas: list[dict[str, str]] = []
        current: dict[str, str] = {}
        for key, value in zip(reply[::2], reply[1::2], strict=False):
            if key == "name" and current:
                replicas.append(current)
                current = {}
            current[key] = value
        replicas += [current] if current else []
        wanted = ("name", "flags", "master-link-status", "master-link-down-time", "slave-priority", "info-refresh")
        facts["replicas"] = str([{k: r.get(k, "?") for k in wanted} for r in replicas])
    except AssertionError as error:
        facts["error"] = str(error)[-300:]
    # Sentinel's events (+sdown, +try-failover, -failover-abort-..., +switch-master).
    events = [line for line in sentinel.log_tail(80) if " # " in line or "failover" in line]
    facts["events"] = " | ".join(events[-10:])
    return facts


def wait_new_master(outputs: Outputs, sentinels: list[Node], old: Node, timeout: float) -> tuple[str, float]:
    """Wait until every given Sentinel names a master other than `old`; returns it and
    the seconds it took. A Sentinel seen in TILT mode extends the wait once by the
    30 s it takes no action; a timeout names what each Sentinel said."""
    started = time.monotonic()
    extended = False
    looked = 0.0
    while True:
        named = {sentinel_master(s, outputs) for s in sentinels}
        if len(named) == 1 and None not in named and old.hostname not in named:
            return named.pop(), time.monotonic() - started  # type: ignore[return-value]
        if not extended and time.monotonic() - looked > 2:
            looked = time.monotonic()
            if any(_tilted(s) for s in sentinels):
                extended = True
                timeout += TILT_SECONDS
        if time.monotonic() - started > timeout:
            facts = {s.name: _sentinel_facts(s, outputs) for s in sentinels}
            raise AssertionError(
                f"no failover away from {old.name} within {timeout:.0f}s: Sentinels name {named}; "
                f"what they say: {facts}"
            )
        time.sleep(0.25)


def wait_replicated(state: LiveState, timeout: float = 15) -> None:
    """Wait until every replica has the master's current replication offset: whatever
    the master acknowledged until now is on every replica (what `WAIT <all>` confirms
    for one client's writes, here for everyone's)."""
    target = int(state.master.info("admin", "replication")["master_repl_offset"])

    def caught_up() -> None:
        for replica in state.replicas:
            offset = int(replica.info("admin", "replication").get("slave_repl_offset", -1))
            assert offset >= target, f"{replica.name} is at offset {offset}, the master at {target}"

    eventually(caught_up, timeout=timeout, interval=0.2)


def wait_writable(outputs: Outputs, redis_nodes: list[Node], host: str, timeout: float = 60) -> Node:
    """Wait until the master `host` has the replicas `min-replicas-to-write` asks for:
    until then a new master answers writes with NOREPLICAS (docs/redis-notes.md#bounded-write-loss)."""
    master = next(n for n in redis_nodes if n.hostname == host)
    needed = int(outputs.deployment["protectedSettings"].get("min-replicas-to-write", "0"))

    def enough() -> None:
        info = master.info("admin", "replication")
        assert info.get("role") == "master", f"{master.name} is {info.get('role')}"
        # Replicas that are online and within min-replicas-max-lag; the master counts
        # them once a second, so a replica that just attached is not there yet.
        good = int(info.get("min_slaves_good_slaves", info.get("connected_slaves", 0)))
        assert good >= needed, f"{master.name} has {good} good replicas, min-replicas-to-write is {needed}"

    eventually(enough, timeout=timeout, interval=0.25)
    return master
