"""python -m redis_ha.backup {take,list,verify,restore,prune,schedule} --config CONFIG.json"""

from __future__ import annotations

import argparse
import json
import sys

from .config import BackupError, Refused, load_config
from .rdb import RdbError
from .schedule import ScheduleError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-ha-backup",
        description="Back up a redis-ha deployment from its replicas, and restore it through its masters.",
        epilog="Exit codes: 0 done, 1 failed, 2 refused (a bad backup, a version or topology mismatch, "
        "no healthy replica): nothing was changed.",
    )
    parser.add_argument("command", choices=("take", "list", "verify", "restore", "prune", "schedule"))
    parser.add_argument("--config", required=True, help="the JSON configuration (holds paths, no secrets)")
    parser.add_argument("--from", dest="backup", help="the backup id to restore or verify (list shows them)")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="restore: read the restore user's password from the first line of standard input",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "take":
            from .engine import take_backup

            manifest = take_backup(config)
            print(
                json.dumps(
                    {
                        "id": manifest.id,
                        "keys": manifest.total_keys(),
                        "seconds": manifest.seconds,
                        "sources": [f.source for f in manifest.files],
                    },
                    sort_keys=True,
                )
            )
        elif args.command == "list":
            from .engine import list_backups

            for entry in list_backups(config):
                print(json.dumps(entry, sort_keys=True))
        elif args.command == "prune":
            from .engine import prune

            print(json.dumps({"deleted": prune(config)}))
        elif args.command == "schedule":
            from .engine import run_schedule

            run_schedule(config)
        else:
            if not args.backup:
                raise BackupError(f"{args.command} needs --from ID (see `list`)")
            if args.command == "verify":
                from .engine import verify_backup

                manifest = verify_backup(config, args.backup)
                print(json.dumps({"id": manifest.id, "verified": True, "keys": manifest.total_keys()}))
            else:
                if not args.password_stdin:
                    raise BackupError("restore needs --password-stdin: the password is never taken from argv or env")
                password = sys.stdin.readline().rstrip("\r\n")
                if not password:
                    raise BackupError("no password on standard input")
                from .restore import restore

                print(json.dumps(restore(config, args.backup, password), sort_keys=True))
    except (Refused, RdbError) as error:
        print(f"redis-ha-backup {args.command}: refused: {error}", file=sys.stderr)
        return 2
    except (BackupError, ScheduleError, OSError) as error:
        print(f"redis-ha-backup {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
