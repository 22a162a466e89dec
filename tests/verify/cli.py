"""`redis-ha-verify`: run the verification suite against a deployment's stack outputs.

    pulumi stack output --json --show-secrets > outputs.json
    redis-ha-verify --outputs outputs.json [--destructive] [-- extra pytest args]

Exit status 0 when every property holds, 1 when one does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent


class _Summary:
    """Collects one line per verified property for the closing summary."""

    def __init__(self) -> None:
        self.results: list[tuple[str, str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            message = ""
            crash = getattr(report.longrepr, "reprcrash", None)
            if report.failed:
                message = str(crash and crash.message)
            path, _, name = report.nodeid.partition("::")
            name = f"{Path(path).name}::{name}"
            self.results.append((report.outcome, name, message.splitlines()[0] if message else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redis-ha-verify", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--outputs", required=True, help="stack outputs JSON (pulumi stack output --json --show-secrets)"
    )
    parser.add_argument("--destructive", action="store_true", help="also run failover drills that stop nodes")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    if not Path(args.outputs).is_file():
        print(f"redis-ha-verify: {args.outputs}: no such file", file=sys.stderr)
        return 2
    marker = [] if args.destructive else ["-m", "not destructive"]
    summary = _Summary()
    code = pytest.main(
        [str(SUITE), f"--outputs={args.outputs}", "-q", "-p", "no:cacheprovider", *marker, *args.pytest_args],
        plugins=[summary],
    )
    passed = sum(1 for outcome, _, _ in summary.results if outcome == "passed")
    failed = [(name, message) for outcome, name, message in summary.results if outcome == "failed"]
    print(f"\nredis-ha-verify: {passed} properties hold, {len(failed)} do not")
    for name, message in failed:
        print(f"  FAIL {name}: {message}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
