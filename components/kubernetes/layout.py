"""How the Kubernetes backend lays out a deployment: paths inside the pods and pod
names under their headless Services. Pure; nothing here creates a resource."""

from __future__ import annotations

from dataclasses import dataclass, replace

from redis_ha.components.plan import Layout
from redis_ha.components.rendering import Paths
from redis_ha.components.settings import Settings

CONF_DIR = "/etc/redis-ha"
DATA_DIR = "/data"
SCRIPTS_DIR = "/opt/redis-ha"
# The cluster-creation Job sees only the admin password, from the cluster's Secret.
AUTH_DIR = "/run/redis-ha/auth"
# Where the init containers see the Secrets they copy from. The group's Secret is
# mounted as a directory (no subPath), so the kubelet updates it in place when the
# Secret changes, and the start scripts apply the change live.
CONFIG_SOURCE_DIR = "/run/redis-ha/config"
# The pods of both groups find their files in the same places; only where the start
# script records the secrets it applied differs.
_POD_PATHS = Paths(
    conf_dir=CONF_DIR, data_dir=DATA_DIR, secrets_dir=CONFIG_SOURCE_DIR, per_node_files=True, sidecar_exporter=True
)
LAYOUT = Layout(
    redis=replace(_POD_PATHS, applied_file=f"{CONF_DIR}/secrets.applied"),
    # Sentinel's state (the config it rewrites) lives on its own PersistentVolumeClaim.
    sentinel=replace(_POD_PATHS, applied_file=f"{DATA_DIR}/secrets.applied"),
    scripts_dir=SCRIPTS_DIR,
    job_secrets_dir=AUTH_DIR,
)
TLS_SOURCE_DIR = "/run/redis-ha/tls"
# The exporter sidecar reads its password file and the CA certificate from Secrets.
EXPORTER_AUTH_DIR = "/run/redis-ha/exporter"
EXPORTER_PASSWORD_FILE = "passwords.json"
EXPORTER_TLS_DIR = "/run/redis-ha/tls"
TLS_FILES = ("ca.crt", "tls.crt", "tls.key")
# The version of a group's secret files (a digest over the Secret's data).
VERSION_FILE = "secrets.version"
# Annotations that change, and so roll the pods, when their files change (the config
# checksum follows the settings only, never a password: docs/redis-notes.md#rotating-passwords).
CONFIG_CHECKSUM = "redis-ha/config-checksum"
SCRIPTS_CHECKSUM = "redis-ha/scripts-checksum"
# Pod Security Standard the namespace enforces; every pod here meets it.
POD_SECURITY = "restricted"
CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class KubernetesNaming:
    """StatefulSet pods are numbered from 0 and reached by their stable name under the
    group's headless Service."""

    settings: Settings

    def node_name(self, kind: str, index: int) -> str:
        return f"{self.settings.name}-{kind}-{index - 1}"

    def hostname(self, kind: str, node_name: str) -> str:
        return f"{node_name}.{headless_service(self.settings, kind)}.{self.settings.namespace}.{CLUSTER_DOMAIN}"


def headless_service(settings: Settings, kind: str) -> str:
    return f"{settings.name}-{kind}-headless"


def service_host(settings: Settings, service: str) -> str:
    return f"{service}.{settings.namespace}.{CLUSTER_DOMAIN}"


def testinfra_host(settings: Settings, pod: str, container: str) -> str:
    return f"kubectl://{pod}?namespace={settings.namespace}&container={container}"
