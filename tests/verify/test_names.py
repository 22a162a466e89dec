"""Names: on Docker every node finds every other node's address in its own /etc/hosts,
so a stopped or cut-off node's name never sends a Sentinel to Docker's DNS (which
forgets it and asks the host's resolvers: a slow one blocks Sentinel into TILT;
docs/partitions.md#names-on-docker). On Kubernetes the cluster's DNS answers for
pod names itself."""

from __future__ import annotations

from . import faults
from .access import Node


def _hosts_file(node: Node) -> dict[str, str]:
    """name -> address, as the node's resolver reads /etc/hosts (the first line wins)."""
    entries: dict[str, str] = {}
    for line in node.host.file("/etc/hosts").content_string.splitlines():
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            entries.setdefault(name, fields[0])
    return entries


def test_every_node_finds_every_other_in_its_hosts_file(redis_nodes: list[Node], sentinels: list[Node]) -> None:
    nodes = [*redis_nodes, *sentinels]
    addresses = {n.hostname: faults.fixed_address(n) for n in nodes}  # skips unless docker://
    unfixed = sorted(name for name, address in addresses.items() if not address)
    assert not unfixed, f"no fixed address (deployed before fixed addresses?): {unfixed}"
    wrong = {}
    for node in nodes:
        found = _hosts_file(node)
        for name, address in addresses.items():
            if found.get(name) != address:
                wrong[f"{node.name}: {name}"] = f"{found.get(name)} (is {address})"
    assert not wrong, f"names missing from /etc/hosts or at the wrong address: {wrong}"
