"""The Docker secrets writer (components/node/secrets-writer.sh with the node.env
components/docker/deployment.py ships), run here by dash and busybox ash with its two
directories moved to temporary ones: what it delivers, in which order, and how it
waits for the node."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from redis_ha.components import node_files
from redis_ha.components.docker.layout import WRITER_INCOMING, WRITER_SCRIPT, WRITER_VOLUME_PATH
from redis_ha.components.docker.secrets import writer_files

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
    files = writer_files(FILES, str(os.getuid()), wait_seconds)
    env = files[node_files.ENV_FILE]
    assert f"REDIS_HA_WRITER_SRC={WRITER_INCOMING}\n" in env and f"REDIS_HA_WRITER_DST={WRITER_VOLUME_PATH}\n" in env
    env = env.replace(f"_SRC={WRITER_INCOMING}\n", f"_SRC={incoming}\n").replace(
        f"_DST={WRITER_VOLUME_PATH}\n", f"_DST={volume}\n"
    )
    # The writer's program beside its uploads, as on Docker.
    for name, text in {**files, node_files.ENV_FILE: env}.items():
        (incoming / name).write_text(text)
    return incoming / WRITER_SCRIPT, incoming, volume


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
        assert (volume / name).stat().st_uid == os.getuid(), name
    assert volume.stat().st_mode & 0o777 == 0o700
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


def test_a_non_numeric_owner_is_refused() -> None:
    with pytest.raises(ValueError, match="numeric uid"):
        writer_files(FILES, "redis")


@pytest.mark.skipif(os.getuid() != 0, reason="handing files to another uid needs root (CAP_CHOWN)")
def test_the_files_are_handed_to_the_reader(shell: list[str], tmp_path: Path) -> None:
    """Uploads arrive root's (no upload sets an owner); the writer hands them over."""
    path, incoming, volume = script(tmp_path)
    env = incoming / node_files.ENV_FILE
    env.write_text(env.read_text().replace(f"REDIS_HA_WRITER_OWNER={os.getuid()}\n", "REDIS_HA_WRITER_OWNER=999\n"))
    upload(incoming, "v1")
    result = subprocess.run([*shell, str(path)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    for name in (*FILES, "secrets.version"):
        st = (volume / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (999, 999, 0o600), name
    assert (volume.stat().st_uid, volume.stat().st_mode & 0o777) == (999, 0o700)
