"""redis_ha/rollout.py: what `redis-ha up` waits for after the engine's `up`."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from redis_ha import rollout
from redis_ha.rollout import ChangedWorkloads, RolloutError, Workload


def sts(generation: int = 2, observed: int = 2, **status: Any) -> dict[str, Any]:
    full = {
        "observedGeneration": observed,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "currentRevision": "r2",
        "updateRevision": "r2",
    }
    full.update(status)
    return {"metadata": {"name": "x-redis", "generation": generation}, "spec": {"replicas": 3}, "status": full}


def test_a_rolled_out_statefulset_is_not_pending() -> None:
    assert rollout.statefulset_pending(sts()) is None


@pytest.mark.parametrize(
    ("obj", "said"),
    [
        # The provider's race: a new generation with the previous, all-ready status.
        (sts(generation=3, observed=2), "generation 3 not observed"),
        (sts(updatedReplicas=2), "updatedReplicas 2"),
        (sts(readyReplicas=2), "readyReplicas 2"),
        (sts(replicas=4), "replicas 4"),  # an old pod still terminating
        (sts(currentRevision="r1"), "revision r1 still current"),
        ({"metadata": {"name": "x", "generation": 1}, "spec": {"replicas": 3}}, "not observed"),
    ],
)
def test_a_statefulset_mid_rollout_is_pending(obj: dict[str, Any], said: str) -> None:
    reason = rollout.statefulset_pending(obj)
    assert reason is not None and said in reason, reason


def job(*conditions: tuple[str, str], message: str = "") -> dict[str, Any]:
    listed = [{"type": t, "status": s, "message": message} for t, s in conditions]
    return {"metadata": {"name": "x-cluster-create"}, "status": {"conditions": listed}}


def test_jobs() -> None:
    assert rollout.job_pending(job(("Complete", "True"))) is None
    assert rollout.job_pending(job()) == "not complete"
    assert rollout.job_pending(job(("Complete", "False"))) == "not complete"
    with pytest.raises(RolloutError, match="x-cluster-create failed: BackoffLimitExceeded"):
        rollout.job_pending(job(("Failed", "True"), message="BackoffLimitExceeded"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_returns_once_every_workload_rolled_out() -> None:
    a, b = Workload("statefulset", "ns", "a"), Workload("job", "ns", "b")
    reads: list[Workload] = []

    def read(w: Workload) -> dict[str, Any]:
        reads.append(w)
        if w.kind == "job":
            return job(("Complete", "True"))
        return sts() if len([r for r in reads if r == a]) >= 3 else sts(generation=3)

    clock = FakeClock()
    rollout.wait({a, b}, read, timeout=60, clock=clock, sleep=clock.sleep)
    assert clock.now == 2.0
    assert reads.count(b) == 1  # done workloads are not read again


def test_wait_times_out_naming_what_did_not_roll_out() -> None:
    clock = FakeClock()
    with pytest.raises(RolloutError) as raised:
        rollout.wait(
            {Workload("statefulset", "prod", "redis-ha-redis")},
            lambda w: sts(currentRevision="r1"),
            timeout=30,
            clock=clock,
            sleep=clock.sleep,
        )
    text = str(raised.value)
    assert "not rolled out after 30 s" in text and "statefulset/redis-ha-redis in namespace prod" in text, text
    assert "revision r1 still current" in text
    assert clock.now == 30.0


def test_a_missing_object_is_pending() -> None:
    assert rollout.pending(Workload("statefulset", "ns", "a"), None) == "not found"


def event(type_: str, op: str, metadata: dict[str, Any] | None) -> SimpleNamespace:
    new = SimpleNamespace(outputs={"metadata": metadata} if metadata is not None else {})
    meta = SimpleNamespace(type=type_, op=op, new=new)
    return SimpleNamespace(res_outputs_event=SimpleNamespace(metadata=meta))


def test_changed_workloads_are_the_statefulsets_and_jobs_created_or_changed() -> None:
    changed = ChangedWorkloads()
    for e in (
        event("kubernetes:apps/v1:StatefulSet", "update", {"name": "r", "namespace": "p"}),
        event("kubernetes:apps/v1:StatefulSet", "same", {"name": "s", "namespace": "p"}),
        event("kubernetes:batch/v1:Job", "create", {"name": "j", "namespace": "p"}),
        event("kubernetes:apps/v1:StatefulSet", "replace", {"name": "q"}),
        event("kubernetes:core/v1:Secret", "update", {"name": "c", "namespace": "p"}),
        SimpleNamespace(res_outputs_event=None, diagnostic_event=SimpleNamespace()),
    ):
        changed(e)
    assert changed.found == {
        Workload("statefulset", "p", "r"),
        Workload("job", "p", "j"),
        Workload("statefulset", "default", "q"),
    }


def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdout: str, stderr: str = "", rc: int = 0) -> Path:
    """A `kubectl` on PATH that records its arguments (and the kubeconfig file's mode)."""
    log = tmp_path / "args"
    script = tmp_path / "bin" / "kubectl"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'for a in "$@"; do [ -f "$a" ] && stat -c "%a %s" "$a" >> ' + f"{log}; done\n"
        f"printf '%s' '{stdout}'\nprintf '%s' '{stderr}' >&2\nexit {rc}\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_kubectl_reader_uses_the_kubeconfig_content_in_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_kubectl(tmp_path, monkeypatch, '{"kind": "StatefulSet"}')
    config = {"kubernetes:kubeconfig": "apiVersion: v1\nkind: Config\n", "kubernetes:context": "prod"}
    with rollout.kubectl_reader(config) as read:
        assert read(Workload("statefulset", "ns", "a")) == {"kind": "StatefulSet"}
        path = log.read_text().split("--kubeconfig ")[1].split()[0]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not Path(path).exists()  # removed with its directory
    args = log.read_text().splitlines()
    assert "--context prod get statefulset a -n ns -o json" in args[0], args
    assert args[1] == f"600 {len(config['kubernetes:kubeconfig'])}", args  # 0600, the whole content


def test_kubectl_reader_passes_a_kubeconfig_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_kubectl(tmp_path, monkeypatch, "", 'Error from server (NotFound): jobs.batch "j" not found', 1)
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text("x")
    with rollout.kubectl_reader({"kubernetes:kubeconfig": str(kubeconfig)}) as read:
        assert read(Workload("job", "ns", "j")) is None
    assert log.read_text().startswith(f"--kubeconfig {kubeconfig} get job j -n ns")


def test_kubectl_reader_reports_other_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kubectl(tmp_path, monkeypatch, "", "error: You must be logged in to the server (Unauthorized)", 1)
    with rollout.kubectl_reader({}) as read, pytest.raises(RolloutError, match="Unauthorized"):
        read(Workload("statefulset", "ns", "a"))


class UpStack:
    """An Automation API Stack whose `up` reports a StatefulSet update as the engine does."""

    workspace = SimpleNamespace(env_vars={})

    def up(self, **kw: Any) -> Any:
        kw["on_event"](event("kubernetes:apps/v1:StatefulSet", "update", {"name": "r-redis", "namespace": "p"}))
        return SimpleNamespace(summary=SimpleNamespace(result="succeeded", resource_changes={"update": 2}))

    def get_all_config(self) -> dict[str, Any]:
        return {"kubernetes:kubeconfig": SimpleNamespace(value="/nonexistent"), "redis-ha:name": "r"}


def test_redis_ha_up_returns_once_the_statefulset_rolled_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from redis_ha import engine

    reads: list[Workload] = []
    seen_config: list[dict[str, str]] = []

    @contextmanager
    def reader(config: dict[str, str], env: Any = None) -> Iterator[Any]:
        seen_config.append(config)
        # Two reads mid-rollout (the provider's race), then rolled out.
        yield lambda w: reads.append(w) or (sts() if len(reads) > 2 else sts(generation=3))

    monkeypatch.setattr(rollout, "kubectl_reader", reader)
    assert engine.run_command("up", UpStack(), "prod", {}, rollout_timeout=30) == 0
    assert reads == [Workload("statefulset", "p", "r-redis")] * 3
    assert seen_config == [{"kubernetes:kubeconfig": "/nonexistent"}]
    assert capsys.readouterr().out.endswith("stack prod, rolled out: statefulset/r-redis\n")


def test_redis_ha_up_fails_when_the_rollout_times_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from redis_ha import engine

    @contextmanager
    def reader(config: dict[str, str], env: Any = None) -> Iterator[Any]:
        yield lambda w: sts(updatedReplicas=1)

    monkeypatch.setattr(rollout, "kubectl_reader", reader)
    assert engine.run_command("up", UpStack(), "prod", {}, rollout_timeout=0.5) == 1
    err = capsys.readouterr().err
    assert err.startswith("redis-ha up: the update was applied, but not rolled out after 0.5 s"), err
    assert "statefulset/r-redis in namespace p: 3 replicas wanted" in err


def test_the_rollout_timeout_option(capsys: pytest.CaptureFixture[str]) -> None:
    from redis_ha import cli

    parser = cli.build_parser()
    assert parser.parse_args(["up", "--stack", "prod"]).rollout_timeout == rollout.DEFAULT_TIMEOUT_S
    assert parser.parse_args(["up", "--stack", "prod", "--rollout-timeout", "90"]).rollout_timeout == 90.0
    for bad in ("0", "-5", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args(["up", "--stack", "prod", "--rollout-timeout", bad])
        assert f"--rollout-timeout: '{bad}' is not a number of seconds above 0" in capsys.readouterr().err
