"""How the Docker backend lays out a deployment: paths inside the containers and
container names. Pure; nothing here creates a resource."""

from __future__ import annotations

from dataclasses import dataclass

from redis_ha.components.plan import Layout
from redis_ha.components.rendering import Paths
from redis_ha.components.settings import Settings

# The files holding passwords or hashes reach a node through a volume of its own
# (`<node>-secrets`, at SECRETS_DIR), written by a one-shot writer container: a new
# password changes the writer, never the node container (a changed input would replace
# it, a restart), and the node's start script applies it live
# (docs/redis-notes.md#rotating-passwords).
# Redis: redis-start.sh builds its redis.conf in the writable /data volume from the
# delivered one (Redis rewrites its config through a temp file in the same directory;
# the script rewrites `replicaof`) and copies the ACL and password files next to it.
# Sentinel: the delivered file seeds the state Sentinel rewrites (/data/sentinel.conf).
SECRETS_DIR = "/run/redis-ha/config"
APPLIED_FILE = f"{SECRETS_DIR}/applied"
LAYOUT = Layout(
    redis=Paths(conf_dir="/data", data_dir="/data", secrets_dir=SECRETS_DIR, applied_file=APPLIED_FILE),
    sentinel=Paths(conf_dir=SECRETS_DIR, data_dir="/data", secrets_dir=SECRETS_DIR, applied_file=APPLIED_FILE),
    scripts_dir="/data",
    job_secrets_dir="/etc/redis-ha",
)
# The writer sees the node's secrets volume at its own /data (an empty named volume
# takes the owner of the image's /data, the redis user, when first mounted there) and
# gets the files as uploads in WRITER_INCOMING, copied into the volume one by one
# (write, then rename) and the version last.
WRITER_VOLUME_PATH = "/data"
WRITER_INCOMING = "/run/redis-ha/incoming"
WRITER_SCRIPT = "write-secrets.sh"
# The version of a node's secret files (a digest), written last; the node records the
# version it applied in APPLIED_FILE, which the writer waits for on an update.
VERSION_FILE = "secrets.version"
CONFIG_CHECKSUM_LABEL = "redis-ha.config-checksum"
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
