"""`redis-ha backup`, `redis-ha backups` and `redis-ha restore`: the operator's side.

The work is done by the deployment's own backup worker (components/backup_plan.py,
the package redis_ha/backup): this module only finds the worker in the stack outputs
and runs it there, on Docker with `docker exec` in its container, on Kubernetes as a
Job made from its CronJob (`kubectl create job --from`). A restore needs the admin
password, which the worker never holds: it is read from the stack outputs and written
to the worker's stdin, never to a command line or an environment.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis_ha.switchover import exec_prefix


class BackupError(Exception):
    """The operation could not be done; the message says why."""


def workers(deployment: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Part name -> its backup worker's description, from the redisHa output."""
    found = {}
    for described in (deployment.get("backup"), (deployment.get("cluster") or {}).get("backup")):
        if described:
            found[described["name"].removesuffix("-backup")] = described
    return found


def pick(deployment: Mapping[str, Any], part: str | None) -> Mapping[str, Any]:
    found = workers(deployment)
    if not found:
        raise BackupError("the stack has no backup worker: set redis-ha:backupTarget (volume or s3) and run `up`")
    if part is None:
        if len(found) > 1:
            raise BackupError(f"the stack has {len(found)} backup workers; pick one with --part: {', '.join(found)}")
        return next(iter(found.values()))
    if part not in found:
        raise BackupError(f"no backup worker for part {part!r}; the stack has: {', '.join(found)}")
    return found[part]


def _worker_command(worker: Mapping[str, Any], *words: str) -> list[str]:
    return [*worker["command"], *words, "--config", worker["config"]]


def _run(command: list[str], stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as error:
        raise BackupError(f"{command[0]} is not installed: {error}") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"`{' '.join(command[:3])} ...` did not finish in {timeout:.0f}s") from None


def run_in_worker(
    worker: Mapping[str, Any], *words: str, stdin: str | None = None, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """Run one worker command (take, list, prune, restore ...) where the worker runs."""
    if "testinfraHost" in worker:
        prefix = exec_prefix(worker["testinfraHost"])
        if stdin is not None:
            prefix = [prefix[0], prefix[1], "-i", *prefix[2:]]
        return _run([*prefix, *_worker_command(worker, *words)], stdin, timeout)
    if "cronJob" in worker:
        if stdin is not None:
            raise BackupError(
                "restore on Kubernetes is not built into the CLI yet: run the worker's restore from a pod "
                "that mounts the admin password (docs: README, Backups)"
            )
        return _kubernetes_job(worker, words, timeout)
    raise BackupError("the backup worker's description has neither a testinfraHost nor a cronJob")


def _kubernetes_job(
    worker: Mapping[str, Any], words: Sequence[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`take` (then prune) by a Job from the CronJob's template: the scheduled run, now."""
    if list(words) != ["take"]:
        raise BackupError(f"on Kubernetes the CLI runs `take` only (asked: {' '.join(words)})")
    ns = ["-n", worker["namespace"]]
    name = f"{worker['cronJob']}-manual-{int(time.time())}"[:63]
    created = _run(["kubectl", "create", "job", name, f"--from=cronjob/{worker['cronJob']}", *ns], None, 60)
    if created.returncode != 0:
        return created
    waited = _run(
        ["kubectl", "wait", f"job/{name}", "--for=condition=Complete", f"--timeout={int(timeout)}s", *ns],
        None,
        timeout + 30,
    )
    logs = _run(["kubectl", "logs", f"job/{name}", *ns], None, 60)
    return subprocess.CompletedProcess(waited.args, waited.returncode, logs.stdout, waited.stderr + logs.stderr)


def _result(done: subprocess.CompletedProcess[str], what: str) -> str:
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise BackupError(f"{what} failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}")
    return done.stdout


def take(deployment: Mapping[str, Any], part: str | None = None) -> str:
    worker = pick(deployment, part)
    taken = _result(run_in_worker(worker, "take"), "backup")
    if "testinfraHost" in worker:
        _result(run_in_worker(worker, "prune"), "prune")
    return taken


def listing(deployment: Mapping[str, Any], part: str | None = None) -> str:
    return _result(run_in_worker(pick(deployment, part), "list"), "list")


def restore(deployment: Mapping[str, Any], admin_password: str, backup_id: str, part: str | None = None) -> str:
    worker = pick(deployment, part)
    done = run_in_worker(worker, "restore", "--from", backup_id, "--password-stdin", stdin=admin_password + "\n")
    return _result(done, f"restore of {backup_id}")


def main(
    outputs: Mapping[str, Any], command: str, part: str | None, backup_id: str | None, print_line: Any = print
) -> int:
    deployment = outputs.get("redisHa") or {}
    try:
        if command == "backup":
            text = take(deployment, part)
        elif command == "backups":
            text = listing(deployment, part)
        else:
            password = (outputs.get("passwords") or {}).get("admin")
            if not password:
                raise BackupError("the stack outputs hold no admin password (passwords.admin)")
            if not backup_id:
                raise BackupError("--from BACKUP_ID is required (see `redis-ha backups`)")
            text = restore(deployment, password, backup_id, part)
    except BackupError as error:
        print_line(f"redis-ha {command}: {error}")
        return 1
    for line in text.splitlines():
        print_line(line)
    return 0


__all__: Sequence[str] = ("BackupError", "listing", "main", "pick", "restore", "take", "workers")
