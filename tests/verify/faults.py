"""Fault injection for the destructive drills, by the node's testinfra host.

`docker://name` nodes are stopped, killed and disconnected with the Docker CLI (the
same one testinfra uses). Kubernetes pods can only be deleted (their StatefulSet brings
them back); drills that need a node to stay down or lose its network are skipped there,
with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest

from .access import Node


def _scheme(node: Node) -> str:
    return urlparse(node.spec["testinfraHost"]).scheme


def _docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"docker {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def _require_docker(node: Node, what: str) -> None:
    if _scheme(node) != "docker":
        pytest.skip(f"{what} is implemented for docker:// hosts only ({node.spec['testinfraHost']})")


def stop(node: Node) -> None:
    """Stop the node and leave it down (SIGTERM, then SIGKILL after 2 s)."""
    _require_docker(node, "stopping a node")
    _docker("stop", "-t", "2", node.name)


def kill(node: Node) -> None:
    """SIGKILL: no shutdown, no last sync to the replicas."""
    _require_docker(node, "killing a node")
    _docker("kill", node.name)


def start(node: Node) -> None:
    _require_docker(node, "starting a node")
    _docker("start", node.name)


def restart(node: Node) -> None:
    if _scheme(node) == "kubectl":
        parsed = urlparse(node.spec["testinfraHost"])
        namespace = dict(p.split("=", 1) for p in parsed.query.split("&") if "=" in p).get("namespace", "default")
        subprocess.run(["kubectl", "delete", "pod", "-n", namespace, parsed.netloc], check=True, timeout=300)
        return
    _docker("restart", "-t", "5", node.name)


def networks(node: Node) -> dict[str, list[str]]:
    """network name -> the `docker network connect` options that attach the node there
    as the deployment did: its aliases and its fixed address, if any."""
    _require_docker(node, "network faults")
    data = json.loads(_docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", node.name))
    attached = {}
    for name, info in data.items():
        # Docker adds the short container ID as an alias of its own; it comes back by itself.
        aliases = [a for a in (info.get("Aliases") or []) if not re.fullmatch(r"[0-9a-f]{12}", a)]
        options = [x for alias in aliases for x in ("--alias", alias)]
        address = (info.get("IPAMConfig") or {}).get("IPv4Address")
        if address:
            # Without it Docker would attach the node at another address, where the
            # other nodes' /etc/hosts do not send them (components/docker/addresses.py).
            options += ["--ip", address]
        attached[name] = options
    return attached


@dataclass(frozen=True)
class Attachment:
    """What `reconnect` restores: the node's networks and its /etc/hosts."""

    networks: dict[str, list[str]]
    hosts: str


def disconnect(node: Node) -> Attachment:
    """Cut the node off every network; returns what `reconnect` needs."""
    attached = Attachment(networks(node), _docker("exec", node.name, "cat", "/etc/hosts"))
    for name in attached.networks:
        _docker("network", "disconnect", name, node.name)
    return attached


def reconnect(node: Node, attached: Attachment) -> None:
    """Attach the node as before, and undo Docker's edit of its /etc/hosts: leaving a
    network drops the lines of that network's running containers from the leaver's file
    (Docker 20.10, seen in the e2e), the fixed entries of every node included, which
    a real partition never does."""
    for name, options in attached.networks.items():
        _docker("network", "connect", *options, name, node.name)
    if _docker("exec", node.name, "cat", "/etc/hosts") != attached.hosts:
        restore = subprocess.run(
            ["docker", "exec", "-i", "-u", "0", node.name, "sh", "-c", "cat > /etc/hosts"],
            input=attached.hosts,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if restore.returncode != 0:
            raise AssertionError(f"{node.name}: /etc/hosts not restored: {restore.stderr.strip()}")


def _inspect(node: Node, template: str) -> str:
    return _docker("inspect", "-f", template, node.name).strip()


def fixed_address(node: Node) -> str | None:
    """The address the deployment gave the node on its network, if any (a stack of this
    toolkit gives every node one: components/docker/addresses.py)."""
    _require_docker(node, "fixed addresses")
    template = "{{range .NetworkSettings.Networks}}{{if .IPAMConfig}}{{.IPAMConfig.IPv4Address}} {{end}}{{end}}"
    return next(iter(_inspect(node, template).split()), None)


def extra_hosts(node: Node) -> list[str]:
    """The `host:ip` entries the deployment put in the node's /etc/hosts."""
    _require_docker(node, "hosts entries")
    return json.loads(_inspect(node, "{{json .HostConfig.ExtraHosts}}")) or []


@contextmanager
def new_address(node: Node) -> Iterator[tuple[str, str]]:
    """Stop the node, attach a placeholder container to its network (so a freed address
    is taken), start the node again; yields (old address, new address)."""
    _require_docker(node, "changing a node's address")
    before = _inspect(node, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    network = next(iter(networks(node)))
    image = _inspect(node, "{{.Config.Image}}")
    stop(node)
    placeholder = f"{node.name}-ip-placeholder"
    _docker(
        "run",
        "-d",
        "--rm",
        "--name",
        placeholder,
        "--network",
        network,
        "--entrypoint",
        "sleep",
        image,
        "600",
    )
    try:
        start(node)
        yield before, _inspect(node, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    finally:
        subprocess.run(["docker", "rm", "-f", placeholder], capture_output=True, timeout=60)
