"""How the verification suite reaches a deployment: only through the stack outputs.

Every Redis command runs as `redis-cli` inside a node's container or pod, reached
with testinfra (`docker://...` or `kubectl://...`), so the same suite verifies a
Docker and a Kubernetes deployment. Passwords go in on redis-cli's stdin (read into
REDISCLI_AUTH by the shell), never as an argument of any process, and are redacted from testinfra's log records.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import testinfra

T = TypeVar("T")


class Redactor(logging.Filter):
    """Replaces every known password in log records with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = ()
        return True


@dataclass(frozen=True)
class Outputs:
    deployment: dict[str, Any]
    # Kept out of repr: pytest prints fixture values in failure reports.
    passwords: dict[str, str] = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Outputs:
        """The system users' passwords are the `passwords` output, each application
        role's the output its `passwordOutput` names (components/outputs.py)."""
        data = json.loads(Path(path).read_text())
        missing = {"redisHa", "passwords"} - set(data)
        roles = data.get("redisHa", {}).get("roles", [])
        passwords = dict(data.get("passwords") or {})
        for role in roles:
            output = role.get("passwordOutput")
            if output in data:
                passwords[role["name"]] = data[output]
            elif role["name"] not in passwords:
                missing.add(output or f"the password output of role {role['name']}")
        if missing:
            raise ValueError(
                f"{path}: missing stack outputs {sorted(missing)}; "
                "write it with `pulumi stack output --json --show-secrets > outputs.json`"
            )
        return cls(deployment=data["redisHa"], passwords=passwords)

    def nodes(self, kind: str) -> list[dict[str, Any]]:
        return [n for n in self.deployment["nodes"] if n["kind"] == kind]


class Node:
    """One deployed node and a shell inside it."""

    def __init__(self, spec: dict[str, Any], outputs: Outputs) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.kind: str = spec["kind"]
        self.hostname: str = spec["host"]
        self.port: int = int(spec["port"])
        self.outputs = outputs
        self.host = testinfra.get_host(spec["testinfraHost"])

    def __repr__(self) -> str:
        return self.name

    def sh(self, command: str, *args: str) -> str:
        result = self.host.run(command, *args)
        if result.rc != 0:
            raise AssertionError(
                f"{self.name}: `{command.split()[0]}` failed (rc {result.rc}): {result.stderr.strip()}"
            )
        return result.stdout

    def _exec_prefix(self) -> list[str]:
        """How to run a program inside the node with its stdin attached."""
        url = urlparse(self.spec["testinfraHost"])
        if url.scheme == "docker":
            return ["docker", "exec", "-i", url.netloc]
        if url.scheme == "kubectl":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            prefix = ["kubectl", "exec", "-i", url.netloc]
            if "namespace" in query:
                prefix += ["-n", query["namespace"]]
            if "container" in query:
                prefix += ["-c", query["container"]]
            return [*prefix, "--"]
        if url.scheme == "local":
            return []
        raise AssertionError(f"{self.name}: cannot run a command with stdin on {self.spec['testinfraHost']}")

    def log_tail(self, lines: int = 40) -> list[str]:
        """The last lines the node's container wrote (Docker or Kubernetes); [] elsewhere."""
        url = urlparse(self.spec["testinfraHost"])
        if url.scheme == "docker":
            command = ["docker", "logs", "--tail", str(lines), url.netloc]
        elif url.scheme == "kubectl":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            command = ["kubectl", "logs", "--tail", str(lines), url.netloc]
            command += [f"--{k}={query[k]}" for k in ("namespace", "container") if k in query]
        else:
            return []
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return []
        return (result.stdout + result.stderr).splitlines()[-lines:]

    def _authenticated(self, password: str, redis_cli_args: list[str], stdin_rest: str = "") -> str:
        """redis-cli inside the node with the password on its stdin, read into
        REDISCLI_AUTH by the shell: it is never an argument of any process (docker exec,
        kubectl, sh or redis-cli), where `ps` on the host or in the node would show it."""
        script = (
            "IFS= read -r REDISCLI_AUTH; export REDISCLI_AUTH; exec redis-cli --no-auth-warning "
            + " ".join(shlex.quote(a) for a in redis_cli_args)
            + " 2>&1"
        )
        command = [*self._exec_prefix(), "sh", "-c", script]
        try:
            result = subprocess.run(
                command, input=f"{password}\n{stdin_rest}", capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name}: redis-cli did not answer within 120 s") from None
        if result.returncode != 0:
            raise AssertionError(f"{self.name}: `redis-cli` failed (rc {result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def cli(self, user: str | None, *args: str, host: str = "127.0.0.1", port: int | None = None) -> str:
        """Run redis-cli in this node against host:port (itself by default) as `user`
        (None: unauthenticated). Returns the reply text; error replies are text too."""
        port = port or self.port
        words = " ".join(["%s"] * len(args))
        if user is None:
            command = f"redis-cli -h %s -p %s {words} 2>&1"
            return self.sh(command, host, str(port), *args).strip()
        password = self.outputs.passwords[user]
        return self._authenticated(password, ["--user", user, "-h", host, "-p", str(port), *args]).strip()

    def cli_script(
        self, user: str, script: str, *options: str, host: str = "127.0.0.1", port: int | None = None
    ) -> str:
        """Run the commands of `script` (one a line, in redis-cli's quoting) through one
        redis-cli in this node as `user`, with redis-cli `options` (e.g. --json).
        Returns the output, one reply after the other, error replies included."""
        port = port or self.port
        password = self.outputs.passwords[user]
        return self._authenticated(password, ["--user", user, "-h", host, "-p", str(port), *options], script)

    def info(self, user: str, section: str) -> dict[str, str]:
        text = self.cli(user, "INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def parse_flat(reply: str) -> dict[str, str]:
    """redis-cli prints a flat map reply as alternating lines."""
    lines = reply.splitlines()
    return dict(zip(lines[0::2], lines[1::2], strict=False))


def eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.5) -> T:
    """Retry `check` until it stops raising AssertionError, or re-raise the last one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


def sample_key(pattern: str, token: str) -> str | None:
    """A key matching an ACL glob pattern that no application uses, or None for a
    literal pattern (a real application key: the suite never writes those)."""
    if "*" not in pattern or re.search(r"[?\[\]\\]", pattern):
        return None
    return pattern.replace("*", f"redis-ha-verify-{token}", 1).replace("*", "x")
