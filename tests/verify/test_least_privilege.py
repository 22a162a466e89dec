"""Least privilege: on every Redis node, Sentinel and cluster node, every user may run
exactly the allowlist the stack declares (`acl` in the outputs), checked with ACL DRYRUN
for every command and subcommand the server knows (acl_sweep.py). One case per node
and user; a failure lists the offending commands.
"""

from __future__ import annotations

from typing import Any

import pytest

from .access import Node, Outputs
from .acl_sweep import Server

# Whatever the deployment has: the cases are generated from its nodes.
pytestmark = pytest.mark.topology("sentinel", "cluster")

_SERVERS: dict[str, Server] = {}


def sweep_server(node: Node) -> Server:
    """One Server per node, so that its command table is read once."""
    if node.name not in _SERVERS:
        _SERVERS[node.name] = Server(node.name, lambda script: node.cli_script("admin", script, "--json"))
    return _SERVERS[node.name]


def test_user_may_run_exactly_its_allowlist(acl_target: tuple[dict[str, Any], str | None], outputs: Outputs) -> None:
    spec, user = acl_target
    acl = outputs.deployment.get("acl")
    assert acl and user, "the stack outputs have no `acl` allowlists (deployed by an older redis-ha?)"
    declaration = acl["servers"][spec["kind"]][user]
    result = sweep_server(Node(spec, outputs)).sweep(user, declaration, acl["alwaysAllowed"])
    assert result.ok, result.report()
