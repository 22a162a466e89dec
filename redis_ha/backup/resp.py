"""A minimal RESP2 client over a socket, optionally TLS: enough for the backup engine.

Replies: simple strings and bulk strings come back as bytes, integers as int, arrays
as lists, a nil as None. An error reply raises RespError from `call`; `pipeline`
returns it in place so that one refused command of a batch does not hide the others.
"""

from __future__ import annotations

import io
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

Arg = bytes | str | int
Reply = Any


class RespError(Exception):
    """An error reply of the server (`-ERR ...`, `-NOPERM ...`)."""


class ProtocolError(Exception):
    """The peer said something that is not RESP2, or closed the connection mid-reply."""


@dataclass(frozen=True)
class Tls:
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    verify_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = self.verify_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def encode(args: Sequence[Arg]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Connection:
    """One connection to a Redis or Sentinel port."""

    def __init__(self, host: str, port: int, *, tls: Tls | None = None, timeout: float = 30.0) -> None:
        self.address = f"{host}:{port}"
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = tls.context().wrap_socket(raw, server_hostname=host) if tls else raw
        self.reader = cast(io.BufferedReader, self.sock.makefile("rb", buffering=1 << 16))

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    # --- reading ---------------------------------------------------------------

    def readline(self) -> bytes:
        line = self.reader.readline(1 << 20)
        if not line.endswith(b"\n"):
            raise ProtocolError(f"{self.address} closed the connection")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    def read_exact(self, size: int) -> bytes:
        data = self.reader.read(size)
        if data is None or len(data) != size:
            raise ProtocolError(f"{self.address} closed the connection")
        return data

    def read_reply(self) -> Reply:
        line = self.readline()
        if not line:
            raise ProtocolError(f"{self.address} sent an empty line where a reply was due")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.read_exact(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self.read_reply() for _ in range(count)]
        raise ProtocolError(f"{self.address} sent {line[:40]!r}, not a RESP2 reply")

    # --- commands ---------------------------------------------------------------

    def send(self, *args: Arg) -> None:
        self.sock.sendall(encode(args))

    def call(self, *args: Arg) -> Reply:
        self.send(*args)
        reply = self.read_reply()
        if isinstance(reply, RespError):
            name = args[0] if isinstance(args[0], str) else repr(args[0])
            raise RespError(f"{self.address}: {name}: {reply}")
        return reply

    def pipeline(self, commands: Iterable[Sequence[Arg]]) -> list[Reply]:
        """Send every command in one write, then read as many replies."""
        encoded = [encode(command) for command in commands]
        return self.pipeline_encoded(b"".join(encoded), len(encoded))

    def pipeline_encoded(self, payload: bytes, count: int) -> list[Reply]:
        self.sock.sendall(payload)
        return [self.read_reply() for _ in range(count)]

    def auth(self, user: str, password: str) -> None:
        try:
            self.call("AUTH", user, password)
        except RespError as error:
            # The message names no password; keep it that way.
            raise RespError(f"{self.address}: AUTH as {user!r} refused: {str(error).split(': ', 2)[-1]}") from None


def text(reply: Reply) -> str:
    if isinstance(reply, bytes | bytearray):
        return reply.decode(errors="replace")
    return str(reply)


def pairs(reply: Reply) -> dict[str, Any]:
    """A flat [name, value, name, value, ...] array (SENTINEL MASTER, CLUSTER SHARDS
    maps in RESP2) as a dict with str keys; nested values are left as they are."""
    items = list(reply or [])
    return {text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def parse_info(reply: Reply) -> dict[str, str]:
    """INFO's `name:value` lines."""
    result = {}
    for line in text(reply).splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            result[name] = value
    return result


def keyspace(info: dict[str, str]) -> dict[int, int]:
    """`db0:keys=3,expires=0,avg_ttl=0` lines of INFO keyspace as {0: 3}."""
    result = {}
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit():
            fields = dict(part.split("=", 1) for part in value.split(","))
            result[int(name[2:])] = int(fields["keys"])
    return result
