"""How the Docker backend lays out a deployment: paths inside the containers and
container names. Pure; nothing here creates a resource."""

from __future__ import annotations

from dataclasses import dataclass

from components.plan import Layout
from components.rendering import Paths
from components.settings import Settings

# Redis: every file goes into the writable /data volume (Redis rewrites its config
# through a temp file in the same directory; redis-start.sh rewrites `replicaof`).
# Sentinel: the rendered file is uploaded outside its volume, which keeps the state
# Sentinel rewrites (/data/sentinel.conf); an upload there would overwrite it.
LAYOUT = Layout(
    redis=Paths(conf_dir="/data", data_dir="/data"),
    sentinel=Paths(conf_dir="/etc/redis-ha", data_dir="/data"),
    scripts_dir="/data",
    job_secrets_dir="/etc/redis-ha",
)
# Redis, Sentinel and one-shot containers run as the redis user of the official images
# (uid 999 in the Debian and the Alpine variants), never as root; the files holding a
# password are theirs, mode 0600. The exporter runs as the user of its image
# (oliver006/redis_exporter: 59000).
REDIS_UID = "999"
EXPORTER_UID = "59000"
SECRET_FILE_MODE = "0600"
# The probe script's name inside a container (one per container).
HEALTHCHECK = "healthcheck.sh"
EXPORTER_PASSWORD_FILE = "/etc/redis-ha/exporter-passwords.json"
LABEL = "redis-ha.deployment"
KIND_LABEL = "redis-ha.kind"


@dataclass(frozen=True)
class DockerNaming:
    """Containers are numbered from 1 and reached by their name on the part's network."""

    settings: Settings

    def node_name(self, kind: str, index: int) -> str:
        return f"{self.settings.name}-{kind}-{index}"

    def hostname(self, kind: str, node_name: str) -> str:
        return node_name


def testinfra_host(node_name: str) -> str:
    return f"docker://{node_name}"
