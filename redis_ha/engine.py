"""The Pulumi engine behind `redis-ha up|preview|refresh|destroy` (and `verify --stack`).

The stack program runs inline through the Automation API: `redis_ha.stack.run` is
handed to `create_or_select_stack(program=...)`, and the Pulumi CLI talks to this very
Python process, so no Python language host (`pulumi-language-python`) is needed, only
the `pulumi` CLI and the providers' plugins. The project (Pulumi.yaml) and the stack's
config (Pulumi.<stack>.yaml) are read from the project directory as `pulumi up` reads
them there, so a user with a language host can still run `pulumi up` in it and gets the
same program (`__main__.py` calls the same `run`).

State: PULUMI_BACKEND_URL (or --backend), by default a local backend in
~/.pulumi-redis-ha; a self-managed backend encrypts the stack's secrets with
PULUMI_CONFIG_PASSPHRASE(_FILE), checked before anything runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from redis_ha import rollout

PROG = "redis-ha"
PROJECT = "redis-ha"
INSTALL_HINT = "https://www.pulumi.com/docs/install/"
DEFAULT_BACKEND = "file://~/.pulumi-redis-ha"
# Backends that keep their own secrets (Pulumi Cloud, self-hosted Pulumi service);
# every other one (file://, s3://, gs://, azblob://, postgres://) uses the passphrase.
_SERVICE_SCHEMES = ("https://", "http://")
PULUMI_COMMANDS = ("up", "preview", "refresh", "destroy")
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")


class CliError(Exception):
    """Cannot start: one line for the user, exit status 2."""


def require_pulumi_cli() -> None:
    if shutil.which("pulumi") is None:
        raise CliError(
            f"the Pulumi CLI is not installed: see {INSTALL_HINT} (render and verify --outputs work without it)"
        )


def backend_url(option: str | None, env: Mapping[str, str]) -> str:
    """The backend to use: --backend, else $PULUMI_BACKEND_URL, else the local default
    (`~` expanded, since the URL is handed to the CLI as it is)."""
    url = option or env.get("PULUMI_BACKEND_URL") or DEFAULT_BACKEND
    if url.startswith("file://~"):
        url = "file://" + os.path.expanduser("~" + url[len("file://~") :])
    return url


def check_passphrase(url: str, env: Mapping[str, str]) -> None:
    """A self-managed backend encrypts secrets with the passphrase: without one the
    CLI would prompt (and hang in CI) or fail half-way; refuse up front instead."""
    if url.startswith(_SERVICE_SCHEMES):
        return
    if not (env.get("PULUMI_CONFIG_PASSPHRASE") or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        raise CliError(
            f"the backend {url} keeps the stack's secrets encrypted with a passphrase: "
            "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)"
        )


def stack_program() -> Callable[[], None]:
    """The program `pulumi up` runs in the project directory (`__main__.py`)."""
    from redis_ha.stack import run

    return run


def workspace_stack(stack: str, work_dir: Path, backend: str | None, create: bool) -> Any:
    """The stack `stack` of the project in `work_dir`, running the program inline."""
    require_pulumi_cli()
    if not any((work_dir / name).is_file() for name in PROJECT_FILES):
        raise CliError(f"no Pulumi.yaml in {work_dir}: run in the project directory or pass --project-dir DIR")
    url = backend_url(backend, os.environ)
    check_passphrase(url, os.environ)
    if url.startswith("file://"):
        Path(url[len("file://") :]).mkdir(mode=0o700, parents=True, exist_ok=True)
    from pulumi import automation as auto

    # With a Pulumi.yaml in work_dir the workspace uses it (and the Pulumi.<stack>.yaml
    # next to it) as they are: nothing is written into the user's directory.
    options = auto.LocalWorkspaceOptions(work_dir=str(work_dir), env_vars={"PULUMI_BACKEND_URL": url})
    how = auto.create_or_select_stack if create else auto.select_stack
    try:
        return how(stack_name=stack, project_name=PROJECT, program=stack_program(), opts=options)
    except auto.StackNotFoundError:
        raise CliError(f"stack {stack!r} does not exist on {url} (create it with `{PROG} up`)") from None


def _print(text: str) -> None:
    print(text, end="" if text.endswith("\n") else "\n", flush=True)


def change_summary(changes: Mapping[Any, int]) -> str:
    """`create 3, update 1` from an engine change summary (OpType -> count)."""
    counts = {str(getattr(op, "value", op)): count for op, count in changes.items()}
    return ", ".join(f"{op} {count}" for op, count in sorted(counts.items()) if op != "same" and count) or "no changes"


def up_and_roll_out(stack: Any, timeout: float, **up_options: Any) -> tuple[Any, list[rollout.Workload]]:
    """`up`, then wait until every StatefulSet it changed has rolled out and every Job
    it created completed (redis_ha/rollout.py); RolloutError after `timeout` s."""
    changed = rollout.ChangedWorkloads()
    result = stack.up(on_event=changed, **up_options)
    rollout.wait_for_stack(stack, changed.found, timeout)
    return result, sorted(changed.found)


def run_command(
    command: str,
    stack: Any,
    name: str,
    options: Mapping[str, bool],
    rollout_timeout: float = rollout.DEFAULT_TIMEOUT_S,
) -> int:
    """up / preview / refresh / destroy of `stack` (from workspace_stack), the CLI's
    output streamed; 0 done, 1 failed (the CLI's last line is the reason). `up` returns
    only once what it changed has rolled out (at most `rollout_timeout` s more)."""
    from pulumi import automation as auto

    try:
        if command == "up":
            # Stack outputs hold the passwords (as secrets): not worth a place in a log.
            up, waited = up_and_roll_out(
                stack,
                rollout_timeout,
                on_output=_print,
                refresh=options.get("refresh", False),
                color="auto",
                suppress_outputs=True,
            )
            rolled = f", rolled out: {', '.join(f'{w.kind}/{w.name}' for w in waited)}" if waited else ""
            changes = change_summary(up.summary.resource_changes or {})
            print(f"{PROG} up: {up.summary.result}, {changes}, stack {name}{rolled}")
        elif command == "preview":
            preview = stack.preview(on_output=_print, diff=options.get("diff", False), color="auto")
            print(f"{PROG} preview: {change_summary(preview.change_summary)}, stack {name}")
        elif command == "refresh":
            refresh = stack.refresh(on_output=_print, color="auto")
            drift = change_summary(refresh.summary.resource_changes or {})
            print(f"{PROG} refresh: {refresh.summary.result}, {drift}, stack {name}")
        elif command == "destroy":
            destroy = stack.destroy(on_output=_print, color="auto", remove=options.get("remove", False))
            removed = " (stack removed)" if options.get("remove") else ""
            print(f"{PROG} destroy: {destroy.summary.result}, stack {name}{removed}")
        else:
            raise ValueError(f"unknown Pulumi command {command!r} (allowed: {', '.join(PULUMI_COMMANDS)})")
    except auto.CommandError as error:
        # The CLI's own output has been streamed already; its error text holds no secret.
        print(f"{PROG} {command}: failed ({last_line(error)})", file=sys.stderr)
        return 1
    except rollout.RolloutError as error:
        print(f"{PROG} {command}: the update was applied, but {error}", file=sys.stderr)
        return 1
    return 0


def last_line(error: Exception) -> str:
    """The reason of a failed CLI command: its last `error:` line, else its last line
    (the Automation API's text ends with empty `stdout:`/`stderr:` labels)."""
    lines = [line.strip().removeprefix("stdout:").removeprefix("stderr:").strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("code: ")]
    errors = [line for line in lines if line.startswith("error:")]
    return errors[-1] if errors else lines[-1] if lines else "no message"


def stack_outputs(stack: Any) -> dict[str, Any]:
    """Every output of `stack`, secrets shown."""
    from pulumi import automation as auto

    try:
        return {name: output.value for name, output in stack.outputs().items()}
    except auto.CommandError as error:
        raise CliError(f"cannot read the stack outputs ({last_line(error)})") from None
