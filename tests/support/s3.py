"""A real S3-compatible server for the backup tests: versitygw (Apache-2.0), built from
its Go module by scripts/s3/build.sh (version pinned in scripts/s3/versions.env, the
binary cached outside the clone), serving a temporary directory on 127.0.0.1 with a
random port and random credentials. It checks Signature V4 on every request."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.redis_servers import terminate

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "s3" / "build.sh"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    directory: Path

    def spec(self, credentials_file: Path, prefix: str = "redis-ha", **extra: object) -> dict[str, object]:
        credentials_file.write_text(json.dumps({"accessKeyId": self.access_key, "secretAccessKey": self.secret_key}))
        return {
            "kind": "s3",
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": prefix,
            "region": "us-east-1",
            "credentialsFile": str(credentials_file),
            **extra,
        }


def build_server() -> Path:
    if shutil.which("go") is None and shutil.which("/usr/local/go/bin/go") is None:
        pytest.skip("no Go toolchain to build the S3 test server (scripts/s3/build.sh)")
    result = subprocess.run(["sh", str(BUILD)], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "scripts/s3/build.sh failed")
    return Path(result.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    from redis_ha.backup.s3 import S3Target

    binary = build_server()
    directory = tmp_path_factory.mktemp("s3-data")
    port = _free_port()
    access, secret = "test" + secrets.token_hex(6), secrets.token_urlsafe(24)
    log = (directory.parent / "s3-server.log").open("ab")
    process = subprocess.Popen(
        [
            str(binary),
            "--access",
            access,
            "--secret",
            secret,
            "--port",
            f"127.0.0.1:{port}",
            "--quiet",
            "posix",
            str(directory),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the S3 server did not start (exit {process.poll()})") from None
                time.sleep(0.1)
        server = S3Server(f"http://127.0.0.1:{port}", "backups", access, secret, directory)
        S3Target(server.endpoint, server.bucket, access_key=access, secret_key=secret).create_bucket()
        yield server
    finally:
        terminate(process)
        shutil.rmtree(directory, ignore_errors=True)
