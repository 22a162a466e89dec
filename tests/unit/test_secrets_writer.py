"""The Docker secrets writer's script (components/docker/deployment.py), run here by dash
and busybox ash with its two directories moved to temporary ones: what it delivers, in
which order, and how it waits for the node."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from redis_ha.components.docker.deployment import writer_script
from redis_ha.components.docker.layout import WRITER_INCOMING, WRITER_VOLUME_PATH

SHELLS = {"dash": ["dash"], "busybox-ash": ["busybox", "sh"]}
FILES = ("redis.conf", "users.acl", "admin.password")


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> list[str]:
    command = SHELLS[request.param]
    assert shutil.which(command[0])
    return command


def script(tmp_path: Path, wait_seconds: int = 2) -> tuple[Path, Path, Path]:
    incoming, volume = tmp_path / "incoming", tmp_path / "volume"
    incoming.mkdir()
    volume.mkdir()
    text = writer_script(FILES, wait_seconds)
    assert f"src={WRITER_INCOMING}\n" in text and f"dst={WRITER_VOLUME_PATH}\n" in text
    text = text.replace(f"src={WRITER_INCOMING}\n", f"src={incoming}\n").replace(
        f"dst={WRITER_VOLUME_PATH}\n", f"dst={volume}\n"
    )
    path = tmp_path / "write-secrets.sh"
    path.write_text(text)
    return path, incoming, volume


def upload(incoming: Path, version: str) -> None:
    for name in FILES:
        (incoming / name).write_text(f"{name} {version}\n")
    (incoming / "secrets.version").write_text(f"{version}\n")


def test_first_delivery_writes_every_file_and_the_version_and_returns(shell: list[str], tmp_path: Path) -> None:
    path, incoming, volume = script(tmp_path)
    upload(incoming, "v1")
    result = subprocess.run([*shell, str(path)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in volume.iterdir()) == sorted([*FILES, "secrets.version"])
    for name in FILES:
        assert (volume / name).read_text() == f"{name} v1\n"
        assert (volume / name).stat().st_mode & 0o777 == 0o600, name
    assert "the node has not started yet" in result.stdout


def test_an_update_returns_once_the_node_has_applied_it(shell: list[str], tmp_path: Path) -> None:
    path, incoming, volume = script(tmp_path, wait_seconds=20)
    (volume / "applied").write_text("v1\n")
    upload(incoming, "v2")

    def node_applies() -> None:
        time.sleep(1.5)
        assert (volume / "secrets.version").read_text() == "v2\n"
        (volume / "applied").write_text("v2\n")

    node = threading.Thread(target=node_applies)
    started = time.monotonic()
    node.start()
    result = subprocess.run([*shell, str(path)], capture_output=True, text=True, timeout=30)
    node.join()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.5
    assert "delivered and applied" in result.stdout


def test_an_update_the_node_never_applies_fails(shell: list[str], tmp_path: Path) -> None:
    path, incoming, volume = script(tmp_path, wait_seconds=1)
    (volume / "applied").write_text("v1\n")
    upload(incoming, "v2")
    result = subprocess.run([*shell, str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "did not apply the new secrets within 1s" in result.stderr
    # The files are delivered all the same: the node applies them when it runs.
    assert (volume / "users.acl").read_text() == "users.acl v2\n"
