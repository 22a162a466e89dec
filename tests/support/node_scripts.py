"""The node scripts (components/node/*.sh) as the tests run them: copied into a
directory of their own with lib.sh, and with the node.env a backend would ship beside
them (or none: then the environment gives every value)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from redis_ha.components import node_files

# dash (Debian's /bin/sh) and busybox ash (the Alpine images' shell).
SHELLS = {"dash": ["dash"], "busybox-ash": ["busybox", "sh"]}


def install(directory: Path, script: str, env: Mapping[str, str | int] | None = None) -> Path:
    """`script`, lib.sh and (with `env`) node.env in `directory`; the script's path."""
    directory.mkdir(parents=True, exist_ok=True)
    files = node_files.bundle((script,), env) if env is not None else node_files.bundle((script,), {})
    for name, text in files.items():
        if name == node_files.ENV_FILE and env is None:
            continue
        (directory / name).write_text(text)
    return directory / script


def parse_env(text: str) -> dict[str, str]:
    """The KEY=value lines of a node.env."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def env_values(directory: Path) -> dict[str, str]:
    """The KEY=value lines of the node.env in `directory`."""
    return parse_env((directory / node_files.ENV_FILE).read_text())
