"""Network partitions on a dev stack on the real Docker engine (docs/partitions.md),
shared by the e2e drills (tests/e2e/test_partition.py) and bench/partition.py.

A partition is iptables DROP rules inside the network namespaces of the stack's own
containers (`nsenter -t <pid> -n iptables ...`), between container addresses only:
clients on the host reach every node through the published ports throughout, as an
application on the master's side of a split would. `heal` deletes exactly the rules
`cut` added. Each scenario runs under the drill's writers (plain, WAIT 1, WAIT <all
replicas>) and returns once healed; `run_scenario` then waits for a healthy topology
and reads back every acknowledged key.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker

from tests.e2e.day2 import Stack
from tests.verify.access import Node
from tests.verify.drill import Drill
from tests.verify.topology_state import healthy_state, sentinel_master

KINDS = ("plain", "wait", "wait-all")


@dataclass
class Network:
    client: docker.DockerClient
    stack: Stack
    # (container, iptables rule) for every rule in place
    rules: list[tuple[str, list[str]]] = field(default_factory=list)

    def _container(self, name: str) -> Any:
        container = self.client.containers.get(name)
        # Only containers of this test's own stack are ever touched.
        assert name.startswith(self.stack.name), name
        return container

    def ip(self, name: str) -> str:
        networks = self._container(name).attrs["NetworkSettings"]["Networks"]
        return next(n["IPAddress"] for n in networks.values() if n["IPAddress"])

    def _restore(self, name: str, rules: list[tuple[str, list[str]]]) -> None:
        """Apply `(action, rule)` lines to the container's filter table in one
        `iptables-restore --noflush`: all of them at once, or none."""
        pid = str(self._container(name).attrs["State"]["Pid"])
        lines = ["*filter", *(" ".join([action, *rule]) for action, rule in rules), "COMMIT", ""]
        subprocess.run(
            ["nsenter", "-t", pid, "-n", "iptables-restore", "--noflush"],
            input="\n".join(lines),
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def cut(self, side: list[str], others: list[str]) -> None:
        """Drop every packet between each container of `side` and each of `others`. Each
        container of `side` gets all its rules in one step (a cut made rule by rule,
        replicas before Sentinels, would lose writes before the fence could see it)."""
        addresses = [self.ip(other) for other in others]
        for name in side:
            rules = [
                rule
                for address in addresses
                for rule in (["INPUT", "-s", address, "-j", "DROP"], ["OUTPUT", "-d", address, "-j", "DROP"])
            ]
            self._restore(name, [("-I", rule) for rule in rules])
            self.rules.extend((name, rule) for rule in rules)

    def heal(self) -> None:
        by_container: dict[str, list[list[str]]] = {}
        while self.rules:
            name, rule = self.rules.pop()
            by_container.setdefault(name, []).append(rule)
        for name, rules in by_container.items():
            with contextlib.suppress(docker.errors.NotFound):
                self._restore(name, [("-D", rule) for rule in rules])


@dataclass(frozen=True)
class Roles:
    master: Node
    replicas: list[Node]
    sentinels: list[Node]

    @property
    def redis(self) -> list[Node]:
        return [self.master, *self.replicas]


# A scenario: what happens to the network and the nodes, given the roles before it and
# the stack's downAfterMilliseconds in seconds; it returns once healed.
Scenario = Callable[[Network, Roles, float], None]


def roles(stack: Stack) -> Roles:
    state = healthy_state(stack.outputs, stack.nodes("redis"), stack.nodes("sentinel"))
    return Roles(state.master, state.replicas, stack.nodes("sentinel"))


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def fenced_seconds(nodes: list[Node]) -> int:
    """The FENCED errors every node has counted (fence.sh: one a second while fenced)."""
    total = 0
    for node in nodes:
        with contextlib.suppress(AssertionError):
            stat = node.info("admin", "errorstats").get("errorstat_FENCED", "count=0")
            total += int(stat.split("=", 1)[1].split(",", 1)[0])
    return total


# --- scenarios: each takes the network, the roles and the stack's down-after (s) -------


def master_isolated(seconds: float) -> Callable[[Network, Roles, float], None]:
    def run(net: Network, r: Roles, down_after: float) -> None:
        net.cut([r.master.name], names(r.replicas + r.sentinels))
        time.sleep(seconds)
        net.heal()

    return run


def master_and_replica(seconds: float) -> Callable[[Network, Roles, float], None]:
    def run(net: Network, r: Roles, down_after: float) -> None:
        side = [r.master, r.replicas[0]]
        net.cut(names(side), names(r.replicas[1:] + r.sentinels))
        time.sleep(seconds)
        net.heal()

    return run


def sentinel_minority(seconds: float) -> Callable[[Network, Roles, float], None]:
    def run(net: Network, r: Roles, down_after: float) -> None:
        net.cut([r.sentinels[0].name], names(r.sentinels[1:] + r.redis))
        time.sleep(seconds)
        net.heal()

    return run


def flapping(seconds: float, period: float) -> Callable[[Network, Roles, float], None]:
    def run(net: Network, r: Roles, down_after: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            net.cut([r.master.name], names(r.replicas + r.sentinels))
            time.sleep(period)
            net.heal()
            time.sleep(period)

    return run


def healed_around_down_after(offset: float) -> Callable[[Network, Roles, float], None]:
    """The master cut off for downAfterMilliseconds + `offset` seconds."""

    def run(net: Network, r: Roles, down_after: float) -> None:
        net.cut([r.master.name], names(r.replicas + r.sentinels))
        time.sleep(max(0.0, down_after + offset))
        net.heal()

    return run


def bare_failover(net: Network, r: Roles, down_after: float) -> None:
    """SENTINEL FAILOVER as an operator sends it: no pause, the old master alive."""
    reply = r.sentinels[0].cli("admin", "SENTINEL", "FAILOVER", net.stack.outputs.deployment["masterName"])
    assert reply == "OK", reply
    time.sleep(down_after)


def frozen_master(extra: float) -> Callable[[Network, Roles, float], None]:
    """redis-server of the master stopped (SIGSTOP) past downAfterMilliseconds, then resumed."""

    def run(net: Network, r: Roles, down_after: float) -> None:
        top = net.client.containers.get(r.master.name).top(ps_args="-eo pid,comm")
        [pid] = [int(p[0]) for p in top["Processes"] if p[1] == "redis-server"]
        subprocess.run(["kill", "-STOP", str(pid)], check=True)
        try:
            time.sleep(down_after + extra)
        finally:
            subprocess.run(["kill", "-CONT", str(pid)], check=True)

    return run


# --- one drill -------------------------------------------------------------------------


@contextlib.contextmanager
def network(client: docker.DockerClient, stack: Stack) -> Iterator[Network]:
    net = Network(client, stack)
    try:
        yield net
    finally:
        net.heal()


def run_scenario(
    client: docker.DockerClient, stack: Stack, scenario: Callable[[Network, Roles, float], None]
) -> dict[str, Any]:
    """The scenario under the three writers; after the heal: one master, every replica
    following it, every Sentinel naming it. Returns the drill's report with the master
    before and after and the fenced seconds the nodes counted."""
    before = roles(stack)
    down_after = stack.outputs.deployment["downAfterMilliseconds"] / 1000
    fenced_before = fenced_seconds(before.redis)
    with network(client, stack) as net, Drill(stack.outputs, kinds=KINDS, replicas=len(before.replicas)) as drill:
        scenario(net, before, down_after)
    after = stack.healthy(timeout=120)
    report = drill.report()
    report["master_before"], report["master_after"] = before.master.name, after.master.name
    report["fenced_seconds"] = fenced_seconds(before.redis) - fenced_before
    report["sentinels_name"] = sorted({str(sentinel_master(s, stack.outputs)) for s in before.sentinels})
    return report
