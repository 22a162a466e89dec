"""A part's backup worker on Kubernetes: a CronJob, its Secret and ConfigMap.

The CronJob's pods take a backup from a replica, then prune beyond the retention
count. They carry the client label, so the NetworkPolicies let them reach the Redis
nodes and the Sentinels, and they run as the restricted Pod Security Standard asks.
With backupTarget volume the claim is the user's (components/settings_backup.py): the
stack mounts it and never owns it, so backups outlive `pulumi destroy`.
`redis-ha backup` runs the same Job template at once (`kubectl create job --from`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pulumi
import pulumi_kubernetes as k8s
from redis_ha.components import backup_plan
from redis_ha.components.backup_plan import Backup
from redis_ha.components.credentials import with_passwords
from redis_ha.components.kubernetes import pods
from redis_ha.components.kubernetes.network import Metadata
from redis_ha.components.plan import Part
from redis_ha.components.settings import Settings

_MOUNT = k8s.core.v1.VolumeMountArgs
_ITEM = k8s.core.v1.KeyToPathArgs


def component(part: Part) -> str:
    """The pods' component label: `sentinel-backup`, `cluster-backup`."""
    return f"{part.kind}-backup"


def _key(path: str) -> str:
    """A ConfigMap key for a file path (keys may not hold '/')."""
    return path.replace("/", "__")


def deploy_backup(
    meta: Metadata,
    settings: Settings,
    part: Part,
    backup: Backup,
    secrets: Mapping[str, pulumi.Output[str]],
    child: Callable[[], pulumi.ResourceOptions],
) -> k8s.batch.v1.CronJob:
    s, label = settings, component(part)
    k8s.core.v1.Secret(
        f"{backup.name}-secret",
        metadata=meta(backup.name, label),
        type="Opaque",
        string_data=with_passwords(secrets, backup.files),
        opts=child(),
    )
    program = backup_plan.program_files()
    k8s.core.v1.ConfigMap(
        f"{backup.name}-program",
        metadata=meta(backup.name, label),
        data={
            backup_plan.CONFIG_FILE: json.dumps(backup.config, indent=2, sort_keys=True) + "\n",
            **{_key(path): source for path, source in program.items()},
        },
        opts=child(),
    )
    config_items = [_ITEM(key=backup_plan.CONFIG_FILE, path=backup_plan.CONFIG_FILE)]
    secret_items = [_ITEM(key=name, path=name) for name in backup.secret_files]
    volumes = [
        k8s.core.v1.VolumeArgs(
            name="conf",
            projected=k8s.core.v1.ProjectedVolumeSourceArgs(
                default_mode=0o440,
                sources=[
                    k8s.core.v1.VolumeProjectionArgs(
                        config_map=k8s.core.v1.ConfigMapProjectionArgs(name=backup.name, items=config_items)
                    ),
                    k8s.core.v1.VolumeProjectionArgs(
                        secret=k8s.core.v1.SecretProjectionArgs(name=backup.name, items=secret_items)
                    ),
                ],
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="program",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=backup.name,
                default_mode=0o444,
                items=[_ITEM(key=_key(path), path=path) for path in program],
            ),
        ),
        # Snapshots are written to a temp file first; the root filesystem is read-only.
        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
    ]
    mounts = [
        _MOUNT(name="conf", mount_path=backup_plan.CONF_DIR, read_only=True),
        _MOUNT(name="program", mount_path=backup_plan.PROGRAM_DIR, read_only=True),
        _MOUNT(name="tmp", mount_path="/tmp"),
    ]
    if backup.volume:
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name="backups",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=backup.volume),
            )
        )
        mounts.append(_MOUNT(name="backups", mount_path=backup_plan.MOUNT_PATH))
    # Take, then prune: no secret on the command line, only the config's path.
    script = " && ".join(" ".join(backup.args(word)) for word in ("take", "prune"))
    container = k8s.core.v1.ContainerArgs(
        name="backup",
        image=backup.image,
        command=["sh", "-c", script],
        volume_mounts=mounts,
        resources=pods.small_resources(cpu_limit="500m", memory="256Mi"),
        security_context=pods.container_security_context(),
    )
    return k8s.batch.v1.CronJob(
        backup.name,
        metadata=meta(backup.name, label),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=backup.schedule,
            time_zone="Etc/UTC",
            # Never two backups of one part at once; a missed run is not made up later than 10 min.
            concurrency_policy="Forbid",
            starting_deadline_seconds=600,
            successful_jobs_history_limit=3,
            failed_jobs_history_limit=3,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=2,
                    active_deadline_seconds=6 * 3600,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels={**pods.labels(s, label), **pods.client_label(s)}),
                        spec=k8s.core.v1.PodSpecArgs(
                            restart_policy="Never",
                            automount_service_account_token=False,
                            enable_service_links=False,
                            security_context=pods.pod_security_context(),
                            containers=[container],
                            volumes=volumes,
                        ),
                    ),
                )
            ),
        ),
        opts=child(),
    )
