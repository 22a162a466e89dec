"""The verification suite's shell calls keep passwords out of every process's arguments."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.verify import access
from tests.verify.access import Node, Outputs

PASSWORD = "Verify-Suite-Secret-0123456789"


def _node(testinfra_host: str) -> Node:
    outputs = Outputs(deployment={"nodes": []}, passwords={"admin": PASSWORD})
    spec = {"name": "n1", "kind": "redis", "host": "n1", "port": 6379, "testinfraHost": testinfra_host}
    return Node(spec, outputs)


@pytest.mark.parametrize(
    ("host", "prefix"),
    [
        ("docker://rh-redis-1", ["docker", "exec", "-i", "rh-redis-1", "sh", "-c"]),
        (
            "kubectl://rh-redis-0?namespace=redis&container=redis",
            ["kubectl", "exec", "-i", "rh-redis-0", "-n", "redis", "-c", "redis", "--"],
        ),
    ],
)
def test_the_password_goes_on_stdin_never_into_an_argument(
    monkeypatch: pytest.MonkeyPatch, host: str, prefix: list[str]
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append({"command": command, **kwargs})
        return subprocess.CompletedProcess(command, 0, "PONG\n", "")

    monkeypatch.setattr(access.subprocess, "run", fake_run)
    node = _node(host)
    assert node.cli("admin", "PING") == "PONG"
    node.cli_script("admin", "PING\nINFO\n", "--json")
    assert len(calls) == 2
    for call in calls:
        assert call["command"][: len(prefix)] == prefix
        assert not [a for a in call["command"] if PASSWORD in a], call["command"]
        assert call["input"].split("\n", 1)[0] == PASSWORD
    assert calls[1]["input"] == f"{PASSWORD}\nPING\nINFO\n"
