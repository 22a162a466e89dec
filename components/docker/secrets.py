"""How secret files reach a Docker container (docs/pulumi-engine.md#uploads-and-the-containers-users).

No upload of the program sets `owner` or `group`: the pulumi-docker provider asks Docker
to copy such an upload with `copyUIDGID`, and Docker (20.10 and newer) then looks the
container's `user` up in the passwd database of the *host*, failing on every host
without a passwd entry for uid 999 (redis) or 59000 (the exporter). An upload without
an owner arrives as root's, so a secret file is uploaded root-owned with mode 0600 into
a one-shot writer container (`<consumer>-secrets`) that runs as root with only the
capabilities it needs to copy and hand over files (CHOWN, DAC_OVERRIDE, FOWNER). The
writer copies each file into a volume, mode 0600 and owned by the user that reads it,
the directory 0700 and theirs too; the consumer mounts that volume. Nothing else in
the consumer's container can read the files.

A Redis or Sentinel node applies new secrets live (the writer is replaced, the node is
not; docs/redis-notes.md#rotating-passwords). Every other consumer (a cluster node, the
exporter, the cluster's creation step, the backup worker) carries the version of its
files as a (secret) label, so a change replaces it after its writer ran, as a changed
upload did before.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker
from redis_ha.components import node_files
from redis_ha.components.backend import digest
from redis_ha.components.docker.layout import (
    SECRET_FILE_MODE,
    VERSION_FILE,
    WRITER_INCOMING,
    WRITER_SCRIPT,
    WRITER_VOLUME_PATH,
)

# How long a writer waits for the running node to apply what it wrote (the node polls
# every 2 s; the master must accept a new replica password before a replica uses it).
APPLY_WAIT_SECONDS = 120
# The writer runs as root for the uploads it reads (root's, 0600) and the files it
# hands over; nothing more than this (every other capability is dropped).
WRITER_USER = "0:0"
WRITER_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER")
SECRETS_VERSION_LABEL = "redis-ha.secrets-version"


def writer_name(consumer: str) -> str:
    return f"{consumer}-secrets"


def check_writer(name: str, code: int | None) -> None:
    if code not in (None, 0):
        # The exited container keeps its exit code, and an unchanged writer does not run
        # again: once the node runs, the writer must be replaced to deliver again.
        raise pulumi.RunError(
            f"{name} exited with {code}: its node did not apply the new secrets in time (see `docker logs {name}` "
            f"and the node's log); once the node runs, deliver again with `pulumi up --replace <urn of {name}>`"
        )


def writer_files(files: tuple[str, ...], uid: str, wait_seconds: int = APPLY_WAIT_SECONDS) -> dict[str, str]:
    """The writer's script (components/node/secrets-writer.sh), lib.sh and node.env:
    each of `files` into the volume, owned by `uid`, mode 0600 (a copy, then a rename,
    so the reader never sees half a file), the version last; on an update (the node has
    recorded a version before) it waits until the node applied it."""
    if not uid.isdigit():
        raise ValueError(f"the secrets writer hands files to a numeric uid, not {uid!r}")
    env: dict[str, str | int] = {
        "REDIS_HA_WRITER_SRC": WRITER_INCOMING,
        "REDIS_HA_WRITER_DST": WRITER_VOLUME_PATH,
        "REDIS_HA_WRITER_FILES": " ".join(files),
        "REDIS_HA_WRITER_OWNER": uid,
        "REDIS_HA_APPLY_WAIT": wait_seconds,
    }
    return node_files.bundle((WRITER_SCRIPT,), env)


def versioned(files: pulumi.Output[dict[str, str]]) -> pulumi.Output[dict[str, str]]:
    """The files plus their version (a digest), written last."""
    return files.apply(lambda f: {**f, VERSION_FILE: digest(f)})


def _pick(files: pulumi.Output[dict[str, str]], name: str) -> pulumi.Output[str]:
    return files.apply(lambda f: f[name])


def writer_inputs(files: pulumi.Output[dict[str, str]], names: tuple[str, ...], uid: str) -> dict[str, Any]:
    """The writer container's inputs but for its image, volumes and dependencies:
    `files` must be versioned (above); none of its uploads has an owner or a group."""
    script = f"{WRITER_INCOMING}/{WRITER_SCRIPT}"
    uploads = [
        docker.ContainerUploadArgs(file=f"{WRITER_INCOMING}/{file_name}", content=content, executable=True)
        for file_name, content in writer_files(names, uid).items()
    ]
    uploads += [
        docker.ContainerUploadArgs(
            file=f"{WRITER_INCOMING}/{name}", content=_pick(files, name), permissions=SECRET_FILE_MODE
        )
        for name in (*names, VERSION_FILE)
    ]
    return {
        "command": ["sh", script],
        "user": WRITER_USER,
        "capabilities": docker.ContainerCapabilitiesArgs(adds=list(WRITER_CAPABILITIES), drops=["ALL"]),
        "uploads": uploads,
        # One run per change, no restarts; attach waits until it has exited.
        "restart": "no",
        "must_run": False,
        "attach": True,
        "logs": True,
    }
