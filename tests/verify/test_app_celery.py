"""A real Celery application on the deployment: worker and producer connect through the
Sentinels as the broker role's user (kombu's Sentinel transport for the broker, Celery's
Sentinel result backend), exactly as the seed's Celery configuration would in
production. See celery_runtime.py for where they run.
"""

from __future__ import annotations

from .celery_runtime import SEED_ROUTES, CeleryRuntime, Worker, assert_all_done


def test_app_celery_tasks_follow_the_seed_routes_and_return_results(runtime: CeleryRuntime, worker: Worker) -> None:
    sent = runtime.produce("send", {"count": 5})["sent"]
    assert sorted({s["task"] for s in sent}) == sorted(SEED_ROUTES)
    outcome = runtime.produce("collect", {"ids": [s["id"] for s in sent], "timeout": 60})
    assert_all_done(runtime, sent, outcome, worker)


def test_app_celery_worker_answers_remote_control(runtime: CeleryRuntime, worker: Worker) -> None:
    # Broadcast over the pidbox fanout (pub/sub), answered through a reply queue.
    replies = runtime.produce("ping", {"worker": worker.name, "timeout": 10})["replies"]
    assert replies == [worker.name], f"ping replies: {replies}\n{worker.logs()[-2000:]}"


def test_app_celery_worker_hit_no_acl_refusal(worker: Worker) -> None:
    # kombu retries or logs some failures (e.g. a refused PSUBSCRIBE kills only the
    # event consumer): after the cases above, the worker's log must show none.
    logs = worker.logs()
    refusals = [line for line in logs.splitlines() if "NOPERM" in line or "NoPermissionError" in line]
    assert not refusals, "the broker role lacks a key, channel or command:\n" + "\n".join(refusals[:10])
