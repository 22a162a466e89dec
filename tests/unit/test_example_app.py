"""examples/app-with-redis/app.sh, the example's application, against a real
redis-server and redis-sentinel (127.0.0.1, free ports): it finds the master through
the Sentinel and writes its heartbeat as the `cache` user, logging in on stdin."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import LOCALHOST, connect, free_port, make_password, wait_until
from tests.support.redis_servers import terminate

APP = Path(__file__).resolve().parents[2] / "examples" / "app-with-redis" / "app.sh"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, str]]:
    redis_port, sentinel_port = free_port(), free_port()
    passwords = {user: make_password() for user in ("cache", "admin", "sentinel-client")}
    (tmp_path / "redis.conf").write_text(
        f'port {redis_port}\nbind {LOCALHOST}\nsave ""\ndir {tmp_path}\nuser default off\n'
        f"user cache on >{passwords['cache']} ~cache:* +@connection +set +get\n"
        f"user admin on >{passwords['admin']} ~* &* +@all\n"
    )
    (tmp_path / "sentinel.conf").write_text(
        f"port {sentinel_port}\nbind {LOCALHOST}\ndir {tmp_path}\n"
        f"sentinel monitor example {LOCALHOST} {redis_port} 1\n"
        f"sentinel auth-user example admin\nsentinel auth-pass example {passwords['admin']}\n"
        f"user default off\nuser sentinel-client on >{passwords['sentinel-client']} +@connection +sentinel\n"
    )
    started = []
    try:
        for binary, conf in (("redis-server", "redis.conf"), ("redis-sentinel", "sentinel.conf")):
            log = (tmp_path / f"{binary}.log").open("ab")
            started.append(subprocess.Popen([binary, str(tmp_path / conf)], stdout=log, stderr=log))
        wait_until(lambda: connect(redis_port, "admin", passwords["admin"]).ping(), 10, "redis-server")
        app_dir = tmp_path / "app"
        app_dir.mkdir()
        (app_dir / "cache-password").write_text(passwords["cache"])
        (app_dir / "sentinel-client-password").write_text(passwords["sentinel-client"])
        (app_dir / "redis.env").write_text(f'SENTINELS="{LOCALHOST}:{free_port()} {LOCALHOST}:{sentinel_port}"\n')
        with (app_dir / "redis.env").open("a") as env:
            env.write('MASTER_NAME="example"\n')
        # One round of the loop, with the files where this test put them.
        script = APP.read_text().replace("/run/app", str(app_dir)).replace("sleep 10", "exit 0")
        (tmp_path / "app.sh").write_text(script)
        yield {"dir": str(tmp_path), "port": str(redis_port), "admin": passwords["admin"]}
    finally:
        for process in reversed(started):
            terminate(process)


def _run_app(servers: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", f"{servers['dir']}/app.sh"], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
    )


def test_the_app_writes_its_heartbeat_on_the_master_the_sentinel_names(servers: dict[str, str]) -> None:
    result = _run_app(servers)
    assert result.stdout.strip() == f"heartbeat written to the master {LOCALHOST}:{servers['port']}", result.stderr
    admin = connect(int(servers["port"]), "admin", servers["admin"])
    assert admin.get("cache:example:heartbeat") is not None
    assert 0 < admin.ttl("cache:example:heartbeat") <= 60


def test_a_refused_login_is_reported_not_written(servers: dict[str, str]) -> None:
    (Path(servers["dir"]) / "app" / "cache-password").write_text("not-the-password")
    result = _run_app(servers)
    assert result.stdout == ""
    assert "refused the heartbeat" in result.stderr
    assert connect(int(servers["port"]), "admin", servers["admin"]).get("cache:example:heartbeat") is None
