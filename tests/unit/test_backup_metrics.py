"""The scheduled worker's /metrics: what the backup alerts read."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_ha.backup import metrics, schedule
from redis_ha.backup.engine import run_schedule


def _values(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name.split("{", 1)[0].removeprefix(metrics.PREFIX)] = float(value)
    return found


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("0 */6 * * *", 6 * 3600), ("*/5 * * * *", 300), ("0 3 * * 1-5", 3 * 86400), ("30 2 1 * *", 31 * 86400)],
)
def test_the_longest_gap_of_a_schedule(expression: str, seconds: float) -> None:
    plan = schedule.parse(expression)
    assert metrics.max_interval(plan, datetime(2026, 1, 1, tzinfo=UTC), runs=60) == seconds


def test_render_has_help_type_and_the_part_label() -> None:
    m = metrics.Metrics('part "a"', 21600, started=100.0)
    text = m.render()
    assert "# TYPE redis_ha_backup_failures_total counter" in text
    assert 'redis_ha_backup_worker_start_timestamp_seconds{part="part \\"a\\""} 100' in text
    # No backup known yet: 0, which the alert rules read as "none yet".
    assert 'redis_ha_backup_last_success_timestamp_seconds{part="part \\"a\\""} 0' in text
    m.known_backup(50.0)
    m.success(size_bytes=1234, keys=10, seconds=1.5, at=200.0)
    m.failure(at=300.0)
    values = _values(m.render())
    assert values["last_success_timestamp_seconds"] == 200.0
    assert values["last_failure_timestamp_seconds"] == 300.0
    assert values["successes_total"] == 1 and values["failures_total"] == 1
    assert values["last_size_bytes"] == 1234 and values["last_keys"] == 10


def test_the_schedule_serves_metrics_and_counts_failures(tmp_path: Path) -> None:
    """A schedule whose backups cannot be taken (no Sentinel answers): each run is a
    failure, counted on /metrics, and nothing secret is in the page."""
    password_file = tmp_path / "backup.password"
    password_file.write_text("Never-Shown-Secret-1\n")
    port = _free_port()
    config = {
        "deployment": "drill",
        "topology": "sentinel",
        "masterName": "m",
        "sentinels": [["127.0.0.1", _free_port()]],
        "backupUser": {"user": "backup", "passwordFile": str(password_file)},
        "sentinelUser": {"user": "sentinel-client", "passwordFile": str(password_file)},
        "schedule": "*/5 * * * *",
        "retention": 2,
        "target": {"kind": "directory", "path": str(tmp_path / "backups")},
        "workDir": str(tmp_path / "work"),
        "metricsPort": port,
    }
    clock = [datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)]
    pages: list[str] = []

    def sleep(seconds: float) -> None:
        clock[0] = clock[0].fromtimestamp(clock[0].timestamp() + seconds, UTC)

    def now() -> datetime:
        return clock[0]

    def out_line(line: str) -> None:
        pages.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())

    class Out:
        def write(self, text: str) -> None:
            if '"event": "failure"' in text:
                out_line(text)

        def flush(self) -> None:
            pass

    failures = run_schedule(config, max_runs=2, now=now, sleep=sleep, out=Out())  # type: ignore[arg-type]
    assert failures == 2
    values = _values(pages[-1])
    assert values["failures_total"] == 2
    assert values["schedule_max_interval_seconds"] == 300
    assert "Never-Shown-Secret-1" not in pages[-1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
