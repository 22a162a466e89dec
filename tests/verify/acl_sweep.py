"""Least privilege, proven on a running server: every user may run exactly its allowlist.

The stack outputs publish, per server kind and user, the command rules of the user's
ACL line (in order) and its key and channel patterns (`acl` in the outputs, from
components/security.py). On one Redis node or Sentinel the sweep

1. reads the server's own command table (COMMAND INFO: every command and subcommand,
   with its arity, flags and ACL categories; Sentinel 7.0 answers it too),
2. evaluates the user's rules against that table, in order, as Redis does: the
   expected allowlist,
3. asks `ACL DRYRUN <user> <command> <args>` (as admin; DRYRUN runs nothing) for every
   command and subcommand, with arguments that match the user's key and channel
   patterns, so that an allowlisted command must be answered OK,

and fails listing every command the user may run beyond its allowlist, every
allowlisted command it may not run, and every allowlisted command refused for its
arguments. All DRYRUNs of a user go through one redis-cli (`--json`: one reply a line).

This module talks to servers only through a `run(script) -> output` callable: the
verification suite runs redis-cli inside the node (access.Node.cli_script), the unit
tests run the host's redis-cli against local processes.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# A script runner: redis-cli --json as admin against one server, fed `script` on stdin.
Runner = Callable[[str], str]

# Placeholder argument for a user without key or channel patterns (nothing matches).
NO_PATTERN = "redis-ha-sweep"
# Lines per redis-cli run: keeps one `sh -c` argument far below Linux's 128 KiB limit.
CHUNK = 150


@dataclass(frozen=True)
class ServerCommand:
    """A command a server can run: one without subcommands, or a subcommand `cmd|sub`."""

    name: str
    arity: int
    flags: frozenset[str]
    categories: frozenset[str]

    @property
    def words(self) -> list[str]:
        return self.name.split("|")


@dataclass(frozen=True)
class ReplyError:
    message: str


def quote(argument: str) -> str:
    """An argument as redis-cli reads it from stdin (sdssplitargs' double quotes)."""
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script(commands: Iterable[Sequence[str]]) -> str:
    return "".join(" ".join(quote(a) for a in command) + "\n" for command in commands)


def parse_reply(line: str) -> Any:
    """One reply line of redis-cli --json: a JSON value, or `error:"..."`."""
    text = line.strip()
    if text.startswith("error:"):
        try:
            return ReplyError(str(json.loads(text[len("error:") :])))
        except ValueError:
            return ReplyError(text[len("error:") :])
    try:
        return json.loads(text)
    except ValueError:
        return ReplyError(f"not a redis-cli --json reply: {text[:200]}")


def run_commands(run: Runner, commands: Sequence[Sequence[str]]) -> list[Any]:
    """Every command's reply, in order; fails if redis-cli did not answer each one."""
    replies: list[Any] = []
    for start in range(0, len(commands), CHUNK):
        chunk = commands[start : start + CHUNK]
        output = run(script(chunk))
        lines = [line for line in output.splitlines() if line.strip()]
        if len(lines) != len(chunk):
            raise AssertionError(
                f"redis-cli answered {len(lines)} lines to {len(chunk)} commands "
                f"(first command: {' '.join(chunk[0])}):\n{output[:2000]}"
            )
        replies += [parse_reply(line) for line in lines]
    return replies


def parse_command_table(reply: Any) -> dict[str, ServerCommand]:
    """COMMAND INFO -> runnable commands by name. A container (CLIENT, CONFIG, ...) is
    not runnable without a subcommand: only its subcommands are listed."""
    if not isinstance(reply, list) or not reply:
        raise AssertionError(f"COMMAND INFO gave no command table: {reply!r:.200}")
    table: dict[str, ServerCommand] = {}

    def add(entry: list[Any]) -> None:
        name, arity, flags, categories = entry[0], entry[1], entry[2], entry[6]
        subcommands = entry[9] if len(entry) > 9 else []
        if subcommands:
            for sub in subcommands:
                add(sub)
            return
        table[str(name).lower()] = ServerCommand(
            name=str(name).lower(),
            arity=int(arity),
            flags=frozenset(str(f) for f in flags),
            categories=frozenset(str(c).lstrip("@") for c in categories),
        )

    for entry in reply:
        add(entry)
    return table


def expected_commands(rules: Sequence[str], table: Mapping[str, ServerCommand], always: Iterable[str]) -> set[str]:
    """The allowlist `rules` give on a server with this table, the rules applied in
    order as Redis applies them (`@all`, `@category`, `cmd` with all its subcommands,
    `cmd|sub`), plus the commands Redis never checks (`always`, no_auth).
    components/security.allowed_commands is the same evaluation on the deploy side;
    the unit tests check that both agree."""
    allowed: set[str] = set()
    for rule in rules:
        sign, target = rule[0], rule[1:]
        if target.startswith("@"):
            category = target[1:]
            selected = {n for n, c in table.items() if category == "all" or category in c.categories}
        elif target in table:
            selected = {target}
        else:
            selected = {n for n in table if n.startswith(f"{target}|")} if "|" not in target else set()
        if not selected and not target.startswith("@"):
            raise AssertionError(f"rule {rule}: the server has no command {target}")
        if sign == "+":
            allowed |= selected
        else:
            allowed -= selected
    return allowed | (set(always) & set(table))


def sample(patterns: Sequence[str]) -> str:
    """A name matching the first pattern (Redis glob), for the positive checks."""
    if not patterns:
        return NO_PATTERN
    pattern = patterns[0]
    for candidate in (pattern.replace("*", NO_PATTERN).replace("?", "x"), pattern):
        if fnmatch.fnmatchcase(candidate, pattern):
            return candidate
    return pattern


def invocation(command: ServerCommand, key: str, channel: str, channel_pattern: str) -> list[str]:
    """The command with as few arguments as its arity allows, each one the user's key
    (the channel for pub/sub commands): whatever positions its key specs name, the
    keys match the user's patterns. PSUBSCRIBE patterns are compared with the ACL
    patterns literally, so it gets the user's own pattern."""
    missing = max(abs(command.arity) - len(command.words), 0)
    if command.name == "psubscribe":
        argument = channel_pattern
    elif "pubsub" in command.flags:
        argument = channel
    else:
        argument = key
    return [*command.words, *[argument] * missing]


@dataclass
class SweepResult:
    server: str
    user: str
    expected: set[str]
    allowed: set[str] = field(default_factory=set)
    # allowlisted, but DRYRUN refused the key or channel of the invocation
    refused: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def excess(self) -> list[str]:
        return sorted(self.allowed - self.expected)

    @property
    def missing(self) -> list[str]:
        return sorted(self.expected - self.allowed)

    @property
    def ok(self) -> bool:
        return not (self.excess or self.missing or self.refused or self.errors)

    def report(self) -> str:
        lines = [f"{self.user} on {self.server}: allowlist of {len(self.expected)}, DRYRUN allows {len(self.allowed)}"]
        if self.excess:
            lines.append(f"  may run {len(self.excess)} commands beyond its allowlist: {', '.join(self.excess)}")
        if self.missing:
            lines.append(f"  may not run {len(self.missing)} allowlisted commands: {', '.join(self.missing)}")
        for name, reply in sorted(self.refused.items()):
            lines.append(f"  allowlisted {name} refused for its arguments: {reply}")
        for name, reply in sorted(self.errors.items()):
            lines.append(f"  {name}: unexpected DRYRUN reply {reply}")
        return "\n".join(lines)


class Server:
    """One Redis node or Sentinel, reached as admin through `run`."""

    def __init__(self, name: str, run: Runner) -> None:
        self.name = name
        self.run = run

    @cached_property
    def table(self) -> dict[str, ServerCommand]:
        (reply,) = run_commands(self.run, [["COMMAND", "INFO"]])
        if isinstance(reply, ReplyError):
            raise AssertionError(f"{self.name}: COMMAND INFO failed: {reply.message}")
        return parse_command_table(reply)

    def sweep(self, user: str, declaration: Mapping[str, Any], always: Sequence[str]) -> SweepResult:
        """DRYRUN every command of the server as `user` against its declared allowlist."""
        expected = expected_commands(declaration["commands"], self.table, always)
        result = SweepResult(self.name, user, expected)
        key, channels = sample(declaration["keys"]), declaration["channels"]
        channel, channel_pattern = sample(channels), channels[0] if channels else NO_PATTERN
        names = sorted(self.table)
        commands = [["ACL", "DRYRUN", user, *invocation(self.table[n], key, channel, channel_pattern)] for n in names]
        for name, command, reply in zip(names, commands, run_commands(self.run, commands), strict=True):
            text = reply.message if isinstance(reply, ReplyError) else str(reply)
            if text == "OK":
                result.allowed.add(name)
            elif "no permissions to run" in text:
                continue
            elif "no permissions to access" in text:
                # The command itself is permitted; its arguments are not.
                result.allowed.add(name)
                if name in expected:
                    result.refused[name] = f"{' '.join(command[3:])} -> {text}"
            else:
                result.errors[name] = f"{' '.join(command[3:])} -> {text}"
        return result
