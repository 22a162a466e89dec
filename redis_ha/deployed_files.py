"""The files a stack deploys, per node, as the program hands them to the providers;
with every secret redacted, for review (`redis-ha render`).

Read from a run of the real program under mocks (redis_ha/mocked_program.py), never
re-rendered: what a reviewer reads is byte for byte what `pulumi up` would upload,
except for the secrets.

Where the files land, relative to the output directory:

- Docker: every upload of a container, at `<container>/<file name>`; a node's secrets
  writer's at `<node>/<file name>` (the node reads them from the volume it fills).
- Kubernetes: every key of a Secret or ConfigMap that a pod mounts, at
  `<pod>/<file name>`; a `<pod>.<file>` key goes to that pod only (as its init
  container copies it), any other key to every pod of the StatefulSet. A secret key
  that a container reads into an environment variable lands at
  `<pod>/env/<container>/<VARIABLE>`; Secrets and ConfigMaps no pod uses (a Grafana
  dashboard, the CA certificate for clients) at `<kind>-<name>/<key>`.
- Docker: the Prometheus scrape targets (stack output prometheusScrapeConfigs) at
  `prometheus/scrape-configs.yml`.
- Values the provider computes at deploy time (TLS keys and certificates) do not
  exist before `pulumi up` and are left out.

Redaction: a password becomes `<redacted:USER>`; the `#<sha256>` an ACL file holds for
it becomes `#<redacted-sha256:USER>`. The hash goes too, although it is not the
password, because under mocks the passwords are stand-ins: a real-looking hash of a
stand-in would mislead a reviewer who compares it with the live ACL, and a hash of a
weak configured password can be brute-forced. As a second line of defence, any other
sha256-looking ACL hash and any value of a password directive (`masterauth`,
`requirepass`, `sentinel auth-pass`, `sentinel sentinel-pass`) still in the clear
after that is redacted too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from redis_ha.components import scrape
from redis_ha.components.outputs import SCRAPE_CONFIG, stack_passwords
from redis_ha.mocked_program import ProgramRun, Registered

CONTAINER = "docker:index/container:Container"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"

_SHA256_HASH = re.compile(r"#[0-9a-f]{64}\b")
_PASSWORD_DIRECTIVE = re.compile(
    r"^(\s*(?:masterauth|requirepass|sentinel\s+auth-pass\s+\S+|sentinel\s+sentinel-pass)\s+)(\S+)\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class DeployedFile:
    """One file of one node."""

    path: str  # relative to the output directory: <node>/<name>
    content: str
    source: str  # the resource and input it comes from
    executable: bool = False


def password_placeholder(user: str) -> str:
    return f"<redacted:{user}>"


def hash_placeholder(user: str) -> str:
    return f"#<redacted-sha256:{user}>"


def redact(text: str, passwords: Mapping[str, str]) -> str:
    """`text` with every password of `passwords` (user -> password) and its ACL hash
    replaced by a placeholder naming the user."""
    # Longest first, so that a password that contains another is replaced whole.
    for user, password in sorted(passwords.items(), key=lambda item: -len(item[1])):
        if not password:
            continue
        digest = "#" + hashlib.sha256(password.encode()).hexdigest()
        text = text.replace(digest, hash_placeholder(user)).replace(password, password_placeholder(user))
    text = _SHA256_HASH.sub("#<redacted-sha256>", text)

    def directive(match: re.Match[str]) -> str:
        value = match.group(2)
        return match.group(0) if value.startswith("<redacted") else match.group(1) + "<redacted>"

    return _PASSWORD_DIRECTIVE.sub(directive, text)


def _docker_node(container: Registered) -> str:
    """The node a container's files are for: a secrets writer's (`<node>-secrets`,
    components/docker/deployment.py) are its node's, which reads them from the volume
    the writer fills."""
    name: str = container.inputs["name"]
    labels = {item["label"]: item["value"] for item in container.inputs.get("labels", [])}
    if labels.get("redis-ha.kind") == "secrets-writer":
        return name.removesuffix("-secrets")
    return name


def _docker_files(run: ProgramRun) -> list[DeployedFile]:
    files = []
    for container in run.of_type(CONTAINER):
        node = _docker_node(container)
        for upload in container.inputs.get("uploads", []):
            content = upload.get("content")
            if not isinstance(content, str):
                raise ValueError(f"{node}: upload {upload.get('file')} has no content under mocks")
            files.append(
                DeployedFile(
                    path=f"{node}/{PurePosixPath(upload['file']).name}",
                    content=content,
                    source=f"docker container {node}: upload {upload['file']}",
                    executable=bool(upload.get("executable")),
                )
            )
    return files


def _data(resource: Registered) -> dict[str, Any]:
    if resource.type == SECRET:
        if resource.inputs.get("data"):
            raise ValueError(f"Secret {resource.name}: base64 `data` is not rendered, only `stringData`")
        return dict(resource.inputs.get("stringData") or {})
    return dict(resource.inputs.get("data") or {})


def _kubernetes_files(run: ProgramRun) -> list[DeployedFile]:
    stores: dict[tuple[str, str], Registered] = {}
    for resource in run.of_type(SECRET) + run.of_type(CONFIGMAP):
        kind = "Secret" if resource.type == SECRET else "ConfigMap"
        stores[(kind, resource.inputs["metadata"]["name"])] = resource
    used: set[tuple[str, str]] = set()
    files = []
    for statefulset in run.of_type(STATEFULSET):
        set_name = statefulset.inputs["metadata"]["name"]
        spec = statefulset.inputs["spec"]
        pods = [f"{set_name}-{i}" for i in range(int(spec.get("replicas", 1)))]
        pod_spec = spec["template"]["spec"]
        mounted: list[tuple[str, str]] = []
        for volume in pod_spec.get("volumes", []):
            for kind, field, name_field in (("Secret", "secret", "secretName"), ("ConfigMap", "configMap", "name")):
                if field in volume:
                    if volume[field].get("items"):
                        raise ValueError(f"{set_name}: volume {volume['name']} projects items; not rendered")
                    mounted.append((kind, volume[field][name_field]))
        for pod in pods:
            for key in mounted:
                if key not in stores:
                    continue  # created outside the program (none today)
                used.add(key)
                for data_key, content in sorted(_data(stores[key]).items()):
                    owner, _, per_pod_name = data_key.partition(".")
                    if owner in pods:
                        if owner != pod:
                            continue
                        file_name = per_pod_name
                    else:
                        file_name = data_key
                    if isinstance(content, str):
                        files.append(DeployedFile(f"{pod}/{file_name}", content, f"{key[0]} {key[1]}: key {data_key}"))
            containers = pod_spec.get("initContainers", []) + pod_spec.get("containers", [])
            for container in containers:
                for env in container.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref is None or ("Secret", ref["name"]) not in stores:
                        continue
                    used.add(("Secret", ref["name"]))
                    content = _data(stores[("Secret", ref["name"])]).get(ref["key"])
                    if isinstance(content, str):
                        files.append(
                            DeployedFile(
                                f"{pod}/env/{container['name']}/{env['name']}",
                                content,
                                f"Secret {ref['name']}: key {ref['key']}",
                            )
                        )
    for key in sorted(set(stores) - used):
        for data_key, content in sorted(_data(stores[key]).items()):
            if isinstance(content, str):
                files.append(
                    DeployedFile(f"{key[0].lower()}-{key[1]}/{data_key}", content, f"{key[0]} {key[1]}: key {data_key}")
                )
    return files


def _scrape_files(run: ProgramRun) -> list[DeployedFile]:
    """Docker: the Prometheus scrape targets of the stack output (components/scrape.py)."""
    content = run.outputs.get(SCRAPE_CONFIG)
    if not isinstance(content, str):
        return []
    return [DeployedFile(scrape.RENDERED_FILE, content, f"stack output {SCRAPE_CONFIG}")]


def deployed_files(run: ProgramRun) -> list[DeployedFile]:
    """Every file the run deploys, in the clear (secrets included), and the Prometheus
    scrape targets of a Docker stack."""
    files = _docker_files(run) + _kubernetes_files(run) + _scrape_files(run)
    paths = [f.path for f in files]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise ValueError(f"two files would land at the same path: {duplicates}")
    return sorted(files, key=lambda f: f.path)


def run_passwords(run: ProgramRun) -> dict[str, str]:
    """user -> password for every password the run used: the `passwords` stack output
    and the roles' own outputs, and any generated password it does not list (named after its resource)."""
    passwords = stack_passwords(run.outputs)
    known = set(passwords.values())
    for resource_name, password in run.passwords.items():
        if password not in known:
            passwords[resource_name] = password
    return passwords


# The version of a node's secret files (a digest of them, docs/redis-notes.md#rotating-passwords):
# under mocks a digest of stand-in passwords, which would only mislead a reviewer.
VERSION_FILE = "secrets.version"
VERSION_PLACEHOLDER = "<redacted:digest of the secret files>\n"


def redacted_files(run: ProgramRun, extra_secrets: Mapping[str, str] | None = None) -> list[DeployedFile]:
    """deployed_files with every password (and `extra_secrets`, name -> value) redacted."""
    passwords = {**run_passwords(run), **(extra_secrets or {})}
    return [
        replace(
            f,
            content=VERSION_PLACEHOLDER if PurePosixPath(f.path).name == VERSION_FILE else redact(f.content, passwords),
        )
        for f in deployed_files(run)
    ]


def write_files(files: Iterable[DeployedFile], out_dir: Path) -> list[Path]:
    """Write `files` under `out_dir` (which must be empty or absent)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    written = []
    for f in files:
        target = out_dir / f.path
        if ".." in PurePosixPath(f.path).parts or PurePosixPath(f.path).is_absolute():
            raise ValueError(f"refusing to write outside {out_dir}: {f.path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
        os.chmod(target, 0o755 if f.executable else 0o644)
        written.append(target)
    return written
