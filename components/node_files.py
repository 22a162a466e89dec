"""The node scripts (components/node/*.sh, plain POSIX sh) and the env file each node
gets beside them (docs/node-scripts.md).

The scripts are the same files on every backend and every node; everything deployment
specific is in `node.env`: `KEY=value` lines, the value the rest of the line as is (no
quoting, no expansion; lib.sh's load_env reads it). It holds no secret: the scripts
read passwords from files at run time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from redis_ha.components import package_data

ENV_FILE = "node.env"
LIBRARY = "lib.sh"
REDIS_START = "redis-start.sh"
SENTINEL_START = "sentinel-start.sh"
CLUSTER_CREATE = "cluster-create.sh"
HEALTHCHECK = "healthcheck.sh"
SECRETS_WRITER = "secrets-writer.sh"
FENCE = "fence.sh"

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


@cache
def script(name: str) -> str:
    """The text of one node script."""
    return (package_data.node_dir() / name).read_text()


def env_file(values: Mapping[str, str | int]) -> str:
    """`values` as the lines of a node.env (sorted by key)."""
    lines = ["# Written by redis-ha (components/node_files.py); read by the scripts beside it."]
    for key, value in sorted(values.items()):
        text = str(value)
        if not _KEY.fullmatch(key):
            raise ValueError(f"node.env: {key!r} is not a variable name (A-Z, 0-9, _)")
        if "\n" in text or "\r" in text:
            raise ValueError(f"node.env: {key} holds a line break")
        lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"


def bundle(scripts: Iterable[str], values: Mapping[str, str | int]) -> dict[str, str]:
    """The files a node runs with: `scripts`, the library they source and node.env."""
    return {**{name: script(name) for name in (*scripts, LIBRARY)}, ENV_FILE: env_file(values)}
