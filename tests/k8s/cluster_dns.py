"""Resolve `*.cluster.local` names on the host through the node's CoreDNS
(scripts/k8s/node.sh runs it on the node address), so that host processes reach pods
by the hostnames Sentinel announces, as the pods themselves do.

`install(server)` wraps `socket.getaddrinfo`: names under cluster.local are asked of
`server` (UDP, an A query, no cache: a pod that came back with a new address is found
at once); every other name goes to the original resolver. As a pytest plugin
(`-p tests.k8s.cluster_dns`) it installs itself when REDIS_HA_K8S_DNS names the server,
which is how the verification suite, run as a subprocess, connects from the host.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

ZONE = "cluster.local"
_original: Callable[..., Any] | None = None


def _query(name: str) -> bytes:
    ident = random.randrange(1 << 16)
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack(">HH", 1, 1)  # A, IN


def _skip_name(reply: bytes, offset: int) -> int:
    while True:
        length = reply[offset]
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def resolve_a(name: str, server: str, timeout: float = 2.0) -> list[str]:
    """The A records of `name` at `server`:53; OSError when there is none."""
    query = _query(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, (server, 53))
        reply = s.recv(4096)
    ident, flags, qdcount, ancount = struct.unpack(">HHHH", reply[:8])
    if ident != struct.unpack(">H", query[:2])[0]:
        raise OSError(f"{name}: a reply to another query from {server}")
    if flags & 0x000F:
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: rcode {flags & 0x000F} from {server}")
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(reply, offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = _skip_name(reply, offset)
        rtype, _class, _ttl, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: no A record at {server}")
    return addresses


def in_zone(host: Any) -> bool:
    return isinstance(host, str) and (host.rstrip(".") == ZONE or host.rstrip(".").endswith("." + ZONE))


def install(server: str) -> None:
    """Route cluster.local lookups of this process to `server` (idempotent)."""
    global _original
    if _original is not None:
        return
    original = socket.getaddrinfo
    _original = original

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        if in_zone(host) and family in (0, socket.AF_INET):
            results = []
            for address in resolve_a(host, server):
                results += original(address, port, socket.AF_INET, type, proto, flags | socket.AI_NUMERICHOST)
            return results
        return original(host, port, family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def uninstall() -> None:
    global _original
    if _original is not None:
        socket.getaddrinfo = _original
        _original = None


def pytest_configure(config: Any) -> None:
    server = os.environ.get("REDIS_HA_K8S_DNS")
    if server:
        install(server)
