"""Storage for StatefulSets on the local node, which has no provisioner: one hostPath
PersistentVolume per claim the StatefulSets will make (`<template>-<sts>-<ordinal>`),
pre-bound to it by its claimRef, in a directory under the cluster's state dir.

The pods run as non-root under the `restricted` Pod Security Standard, and the kubelet
does not apply fsGroup to hostPath volumes: each directory is made group-owned by the
pod template's fsGroup, setgid, mode 2770, which is what fsGroup would have done.
stop.sh removes the state dir, and with it any directory left behind.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.api import Api


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    storage: str
    access_modes: tuple[str, ...]
    fs_group: int


def claims_of(namespace: str, manifests: list[dict[str, Any]]) -> list[Claim]:
    claims = []
    for sts in (m for m in manifests if m["kind"] == "StatefulSet"):
        spec = sts["spec"]
        fs_group = int(spec["template"]["spec"].get("securityContext", {}).get("fsGroup", 0))
        for template in spec.get("volumeClaimTemplates", []):
            for ordinal in range(spec["replicas"]):
                claims.append(
                    Claim(
                        namespace=namespace,
                        name=f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}",
                        storage=template["spec"]["resources"]["requests"]["storage"],
                        access_modes=tuple(template["spec"].get("accessModes", ["ReadWriteOnce"])),
                        fs_group=fs_group,
                    )
                )
    return claims


@dataclass(frozen=True)
class Volume:
    name: str
    path: Path


def volume_root(api: Api, namespace: str) -> Path:
    return api.state / "volumes" / namespace


def create_for_claims(api: Api, namespace: str, manifests: list[dict[str, Any]]) -> list[Volume]:
    made = []
    for claim in claims_of(namespace, manifests):
        path = volume_root(api, namespace) / claim.name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 0, claim.fs_group)
        os.chmod(path, 0o2770)
        name = f"{namespace}-{claim.name}"[:253]
        api.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"redis-ha.test/namespace": namespace}},
                "spec": {
                    "capacity": {"storage": claim.storage},
                    "accessModes": list(claim.access_modes),
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "volumeMode": "Filesystem",
                    "hostPath": {"path": str(path), "type": "Directory"},
                    "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **_ref(claim)},
                },
            }
        )
        made.append(Volume(name, path))
    return made


def _ref(claim: Claim) -> dict[str, str]:
    return {"namespace": claim.namespace, "name": claim.name}


def delete(api: Api, volumes: list[Volume]) -> None:
    """The PersistentVolumes (Released once their namespace is gone) and their directories."""
    for volume in volumes:
        api.delete("v1", "PersistentVolume", volume.name)
    for volume in volumes:
        shutil.rmtree(volume.path, ignore_errors=True)
    roots = {v.path.parent for v in volumes}
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
