"""`redis-ha`: the day-to-day tasks of a redis-ha deployment.

    redis-ha preview --stack dev                  what `up` would change
    redis-ha up --stack dev [--verify]            deploy (then run the verification suite)
    redis-ha refresh --stack dev                  read the live resources into the state (drift)
    redis-ha verify --stack dev                   the verification suite, outputs from the stack
    redis-ha verify --outputs outputs.json        ... or from a file
    redis-ha render --stack prod --out review/    every file the stack deploys, secrets redacted
    redis-ha switchover --stack dev               planned zero-loss change of master
    redis-ha destroy --stack dev                  remove everything the stack deployed

The stack files (Pulumi.yaml, Pulumi.<stack>.yaml) are those of the project directory:
the current working directory, or --project-dir DIR.

up, preview, refresh, destroy and `verify --stack` drive the Pulumi CLI through the
Automation API with the stack program inline (no Python language host needed;
redis_ha/engine.py), on the state backend of PULUMI_BACKEND_URL (or --backend), by
default a local one in ~/.pulumi-redis-ha; a self-managed backend encrypts the stack's
secrets with PULUMI_CONFIG_PASSPHRASE. render and `verify --outputs` need no Pulumi CLI.

Exit status: 0 done, 1 the operation or a verified property failed, 2 it could not
start (bad arguments, no Pulumi CLI, no passphrase).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import secrets
import string
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from redis_ha import engine
from redis_ha.engine import DEFAULT_BACKEND, INSTALL_HINT, PROG, CliError

_STACK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# The verification suite: installed as redis_ha_verify; in a repository without an
# install, the same modules as tests.verify.
VERIFY_CLI_MODULES = ("redis_ha_verify.cli", "tests.verify.cli")


def _stack_name(value: str) -> str:
    if not _STACK_RE.match(value):
        raise argparse.ArgumentTypeError(f"invalid stack name {value!r}")
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"--rollout-timeout: {value!r} is not a number of seconds above 0")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Day-to-day tasks of a redis-ha deployment (Pulumi Automation API + the verification suite).",
        epilog=f"up, preview, destroy and `verify --stack` need the Pulumi CLI ({INSTALL_HINT}).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def stack_command(name: str, help_text: str, required: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--stack", "-s", type=_stack_name, required=required, help="stack name (dev, prod, ...)")
        sub.add_argument(
            "--project-dir",
            type=Path,
            help="directory with Pulumi.yaml and the Pulumi.<stack>.yaml files (default: the current directory)",
        )
        return sub

    def backend_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--backend",
            help=f"state backend URL (default: $PULUMI_BACKEND_URL, else {DEFAULT_BACKEND})",
        )

    up = stack_command("up", "deploy the stack (creates it on first use)")
    backend_option(up)
    up.add_argument("--verify", action="store_true", help="run the verification suite after the deploy")
    up.add_argument("--refresh", action="store_true", help="refresh the state from the live resources first")
    up.add_argument(
        "--rollout-timeout",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="how long up waits for the StatefulSets and Jobs it changed to roll out (default 600)",
    )
    preview = stack_command("preview", "show what `up` would change")
    backend_option(preview)
    preview.add_argument("--diff", action="store_true", help="show a detailed diff")
    refresh = stack_command("refresh", "update the state from the live resources (reports drift)")
    backend_option(refresh)
    destroy = stack_command("destroy", "remove every resource of the stack")
    backend_option(destroy)
    destroy.add_argument("--remove", action="store_true", help="also remove the stack and its config history")

    verify = stack_command("verify", "run the post-deploy verification suite", required=False)
    backend_option(verify)
    verify.add_argument("--outputs", type=Path, help="stack outputs JSON (pulumi stack output --json --show-secrets)")
    verify.add_argument("--destructive", action="store_true", help="also run failover drills that stop nodes")
    verify.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")

    switch = stack_command(
        "switchover", "hand mastership to a replica without losing an acknowledged write", required=False
    )
    backend_option(switch)
    switch.add_argument("--outputs", type=Path, help="stack outputs JSON instead of --stack")

    for name, help_text in (
        ("backup", "take a backup now (from a replica) with the deployment's backup worker, then prune"),
        ("backups", "list the backups the deployment's backup worker can restore"),
        ("restore", "restore a backup into the running deployment (replaces its whole dataset)"),
    ):
        sub = stack_command(name, help_text, required=False)
        backend_option(sub)
        sub.add_argument("--outputs", type=Path, help="stack outputs JSON instead of --stack")
        sub.add_argument("--part", help="which part's worker (topology both: the deployment or the cluster name)")
        if name == "restore":
            sub.add_argument("--from", dest="backup_id", required=True, help="the backup id (redis-ha backups)")

    render = stack_command("render", "write every file the stack deploys into a directory, secrets redacted")
    render.add_argument("--out", type=Path, required=True, help="output directory (created; must be empty)")
    return parser


# --- Pulumi engine (redis_ha/engine.py) ---------------------------------------------


def project_dir(args: argparse.Namespace) -> Path:
    """--project-dir, else the current working directory (as mocked_program.project_directory)."""
    directory = getattr(args, "project_dir", None)
    return (Path(directory) if directory is not None else Path.cwd()).resolve()


def _workspace_stack(args: argparse.Namespace, create: bool) -> Any:
    return engine.workspace_stack(args.stack, project_dir(args), args.backend, create)


def _pulumi_command(args: argparse.Namespace) -> int:
    stack = _workspace_stack(args, create=args.command not in ("destroy", "refresh"))
    options = {k: bool(getattr(args, k, False)) for k in ("refresh", "diff", "remove")}
    timeout = {"rollout_timeout": args.rollout_timeout} if args.command == "up" else {}
    code = engine.run_command(args.command, stack, args.stack, options, **timeout)
    if code == 0 and args.command == "up" and args.verify:
        return _verify_stack(stack, args)
    return code


# --- verify ------------------------------------------------------------------------


def verify_cli_module() -> Any:
    """The verification suite's CLI: the installed redis_ha_verify.cli, else (in this
    repository, nothing installed) tests.verify.cli. Imported by name: the suite is
    not part of the type-checked program."""
    hint = "install the [verify] extra (in the repository: pip install -e '.[verify]')"
    for name in VERIFY_CLI_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as error:
            missing = getattr(error, "name", None)
            if isinstance(error, ModuleNotFoundError) and missing and (name + ".").startswith(missing + "."):
                continue  # the suite itself is not there under this name: try the next
            # A dependency of the suite is missing (pytest, testinfra, ...).
            raise CliError(f"the verification suite's packages are missing ({error}): {hint}") from None
    raise CliError(f"the verification suite is not installed: {hint}")


def _run_verify(outputs: Path, args: argparse.Namespace) -> int:
    verify_cli = verify_cli_module()
    argv = ["--outputs", str(outputs)]
    if getattr(args, "destructive", False):
        argv.append("--destructive")
    extra = getattr(args, "pytest_args", [])
    return verify_cli.main([*argv, "--", *extra] if extra else argv)


def _verify_stack(stack: Any, args: argparse.Namespace) -> int:
    """Fetch the outputs (secrets included) into a private temporary file, verify,
    and remove the file whatever happens: it holds every password."""

    values = engine.stack_outputs(stack)
    if not {"redisHa", "passwords"} <= set(values):
        raise CliError(f"stack {args.stack} has no redisHa/passwords outputs: deploy it first (`redis-ha up`)")
    directory = tempfile.mkdtemp(prefix="redis-ha-outputs-")
    path = Path(directory) / "outputs.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(values, file)
        return _run_verify(path, args)
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(directory)


def _verify(args: argparse.Namespace) -> int:
    if (args.outputs is None) == (args.stack is None):
        raise CliError("give exactly one of --outputs FILE or --stack STACK")
    if args.outputs is not None:
        if not args.outputs.is_file():
            raise CliError(f"{args.outputs}: no such file")
        return _run_verify(args.outputs, args)
    return _verify_stack(_workspace_stack(args, create=False), args)


def _stack_outputs(args: argparse.Namespace) -> dict[str, Any]:
    """The outputs of --outputs FILE or of --stack STACK (secrets shown)."""
    if (args.outputs is None) == (args.stack is None):
        raise CliError("give exactly one of --outputs FILE or --stack STACK")
    if args.outputs is not None:
        if not args.outputs.is_file():
            raise CliError(f"{args.outputs}: no such file")
        values = json.loads(args.outputs.read_text())
    else:
        values = engine.stack_outputs(_workspace_stack(args, create=False))
    if "redisHa" not in values:
        raise CliError("the stack has no redisHa output (not deployed)")
    return dict(values)


def _switchover(args: argparse.Namespace) -> int:
    from redis_ha import switchover

    return switchover.main(_stack_outputs(args))


def _backups(args: argparse.Namespace) -> int:
    from redis_ha import backup_ops

    return backup_ops.main(_stack_outputs(args), args.command, args.part, getattr(args, "backup_id", None))


# --- render ------------------------------------------------------------------------


def _stand_in_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def review_config(stack: str, project_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The stack's `redis-ha:*` config from Pulumi.<stack>.yaml of `project_dir`
    (default: the current working directory); encrypted values (`secure:`) become
    stand-in passwords, which render redacts like any other."""
    from redis_ha.mocked_program import project_directory, stack_config, stack_file

    if not stack_file(stack, project_dir).is_file():
        raise CliError(f"no Pulumi.{stack}.yaml in {project_directory(project_dir).resolve()}")
    config = stack_config(stack, project_dir)
    return {
        key: _stand_in_password() if isinstance(value, Mapping) and "secure" in value else value
        for key, value in config.items()
    }


def _password_owners(config: Mapping[str, Any]) -> dict[str, str]:
    """Password config key -> user for this config's roles (the toolkit's users when the
    roles do not load: the program reports that error itself)."""
    from redis_ha.components.settings_base import SettingsError
    from redis_ha.components.settings_load import load_settings
    from redis_ha.components.settings_roles import password_keys

    try:
        settings = load_settings({k: v for k, v in config.items() if not k.endswith("Password")})
    except SettingsError:
        settings = load_settings({"backend": "docker"})
    return password_keys(settings)


def _render(args: argparse.Namespace) -> int:
    from redis_ha import deployed_files
    from redis_ha.mocked_program import ProgramRun, run_program

    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CliError(f"{out} exists and is not an empty directory")
    config = review_config(args.stack, project_dir(args))
    # Redaction labels name the user: `sentinelClientPassword` -> sentinel-client.
    owners = _password_owners(config)
    stand_ins = {owners.get(key, key): value for key, value in config.items() if key.endswith("Password")}
    run = ProgramRun()
    try:
        run_program(config, stack=args.stack, run=run)
    except Exception as error:  # the program's own error, e.g. an invalid setting
        message = str(error).strip().splitlines()
        print(f"{PROG} render: the program failed: {message[-1] if message else type(error).__name__}", file=sys.stderr)
        return 1
    files = deployed_files.redacted_files(run, stand_ins)
    deployed_files.write_files(files, out)
    for f in files:
        print(f"{f.path}  <- {f.source}")
    print(f"{PROG} render: {len(files)} files of stack {args.stack} in {out} (passwords redacted)")
    return 0


# --- main --------------------------------------------------------------------------

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": _pulumi_command,
    "preview": _pulumi_command,
    "refresh": _pulumi_command,
    "destroy": _pulumi_command,
    "verify": _verify,
    "render": _render,
    "switchover": _switchover,
    "backup": _backups,
    "backups": _backups,
    "restore": _backups,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except CliError as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
