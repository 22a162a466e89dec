"""Where the data files the program reads are: the Jinja2 templates, the nodes' plain
shell scripts (components/node, package data in place) and the monitoring rules and
dashboard.

The repository keeps them at its top level (templates/, monitoring/); a wheel ships them
as package data next to this module (components/templates, components/monitoring: the
package-dir mapping of pyproject.toml). The installed location wins when it exists,
else the repository's (a checkout, or an editable install, which runs from it).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPOSITORY_DIR = PACKAGE_DIR.parent


def _data_dir(name: str) -> Path:
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else REPOSITORY_DIR / name


def templates_dir() -> Path:
    """The Jinja2 templates (redis.conf.j2, sentinel.conf.j2, ...)."""
    return _data_dir("templates")


def node_scripts_dir() -> Path:
    """The nodes' plain shell scripts (components/node: fence.sh), shipped as they are."""
    return PACKAGE_DIR / "node"


def monitoring_dir() -> Path:
    """The Prometheus rules and the Grafana dashboard."""
    return _data_dir("monitoring")
