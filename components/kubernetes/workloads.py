"""Pod templates from the plan: a StatefulSet spec per group, a Job spec per one-shot
step. Pure functions returning typed pulumi-kubernetes args; no resource is created here.

Each pod gets its own rendered config file, stored as `<pod>.<file>` in its group's
Secret; an init container copies the pod's files into a writable memory-backed
emptyDir, because Redis and Sentinel rewrite their config through a temp file in the
same directory. Data lives on the pod's PersistentVolumeClaim, and so does a
Sentinel's state (the config it rewrites, seeded from its rendered file once).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s
from redis_ha.components.kubernetes import pods
from redis_ha.components.kubernetes.layout import (
    CONFIG_SOURCE_DIR,
    EXPORTER_AUTH_DIR,
    EXPORTER_PASSWORD_FILE,
    EXPORTER_TLS_DIR,
    SCRIPTS_DIR,
    TLS_FILES,
    TLS_SOURCE_DIR,
    headless_service,
)
from redis_ha.components.plan import Exporter, Group, OneShot, Part
from redis_ha.components.settings import Settings

_RUNTIME_ENV = {"POD_NAME": pods.pod_name_env, "POD_IP": pods.pod_ip_env}
_PORT = k8s.core.v1.ContainerPortArgs
_MOUNT = k8s.core.v1.VolumeMountArgs


def config_secret(settings: Settings, group: Group) -> str:
    return f"{settings.name}-{group.kind}"


def scripts_config_map(part: Part) -> str:
    return f"{part.name}-scripts"


def exporter_secret(exporter: Exporter) -> str:
    return exporter.node.name


def _init_config(settings: Settings, group: Group) -> k8s.core.v1.ContainerArgs:
    """Copies this pod's rendered files (and the TLS key pair) into the writable config
    directory; a container restart keeps what Redis/Sentinel rewrote."""
    conf_dir = group.paths.conf_dir
    copies = [f'cp "{CONFIG_SOURCE_DIR}/$POD_NAME.{group.config_file}" {conf_dir}/{group.config_file}']
    copies += [f"cp {CONFIG_SOURCE_DIR}/{f} {conf_dir}/{f}" for f in group.shared_files]
    mounts = [
        _MOUNT(name="config-source", mount_path=CONFIG_SOURCE_DIR, read_only=True),
        _MOUNT(name="conf", mount_path=conf_dir),
    ]
    if settings.tls:
        copies += [f"cp {TLS_SOURCE_DIR}/{f} {conf_dir}/{f}" for f in TLS_FILES]
        mounts.append(_MOUNT(name="tls", mount_path=TLS_SOURCE_DIR, read_only=True))
    return k8s.core.v1.ContainerArgs(
        name="config",
        image=group.image,
        command=["sh", "-c", "; ".join(["set -eu", "umask 077", *copies])],
        env=[pods.pod_name_env()],
        volume_mounts=mounts,
        resources=pods.small_resources(),
        security_context=pods.container_security_context(),
    )


def _volumes(settings: Settings, part: Part, group: Group, sidecar: bool) -> list[k8s.core.v1.VolumeArgs]:
    def secret(name: str, secret_name: str) -> k8s.core.v1.VolumeArgs:
        return k8s.core.v1.VolumeArgs(
            name=name, secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=secret_name, default_mode=0o440)
        )

    volumes = [
        secret("config-source", config_secret(settings, group)),
        k8s.core.v1.VolumeArgs(
            name="scripts",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=scripts_config_map(part), default_mode=0o555),
        ),
        # Memory-backed: the copied files hold passwords and never touch the node's disk.
        k8s.core.v1.VolumeArgs(
            name="conf", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="16Mi")
        ),
    ]
    if settings.tls:
        volumes.append(secret("tls", f"{settings.name}-tls"))
    exporter = part.exporter_of(group.kind)
    if sidecar and exporter is not None:
        volumes.append(secret("exporter-auth", exporter_secret(exporter)))
    return volumes


def _main_container(settings: Settings, group: Group) -> k8s.core.v1.ContainerArgs:
    probe = f"{SCRIPTS_DIR}/{group.probe.script}"
    mounts = [_MOUNT(name="conf", mount_path=group.paths.conf_dir)]
    if group.data_volume:
        mounts.append(_MOUNT(name="data", mount_path=group.paths.data_dir))
    mounts.append(_MOUNT(name="scripts", mount_path=SCRIPTS_DIR, read_only=True))
    startup = None
    liveness_delay = 10
    if group.probe.slow_start:
        # Loading a large AOF can take minutes; liveness starts only once started.
        startup = pods.exec_probe(probe, "live", period=5, timeout=3, failures=120)
        liveness_delay = 0
    lifecycle = None
    if group.prestop is not None:
        lifecycle = k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(exec_=k8s.core.v1.ExecActionArgs(command=list(group.prestop)))
        )
    return k8s.core.v1.ContainerArgs(
        name=group.process,
        image=group.image,
        command=list(group.command),
        env=[_RUNTIME_ENV[name]() for name in group.runtime_env] or None,
        ports=[_PORT(name=name, container_port=port, protocol="TCP") for name, port in group.ports],
        volume_mounts=mounts,
        startup_probe=startup,
        # Ready: in sync with the master (a rolling update waits for it); alive: answers,
        # -LOADING included (docs/redis-notes.md#probes-that-fit-ha).
        readiness_probe=pods.exec_probe(probe, "ready", period=5, timeout=3, failures=3),
        liveness_probe=pods.exec_probe(probe, "live", period=10, timeout=5, failures=6, initial_delay=liveness_delay),
        lifecycle=lifecycle,
        resources=(
            pods.redis_resources(settings)
            if group.process == "redis"
            else pods.small_resources(cpu_limit="250m", memory="128Mi")
        ),
        security_context=pods.container_security_context(),
    )


def _exporter_sidecar(settings: Settings, exporter: Exporter, port: int) -> k8s.core.v1.ContainerArgs:
    """redis_exporter beside every node of its group, watching its own pod's node
    (`port`: a Redis node's or a Sentinel's) whatever its role, as the group's exporter
    user; its password comes from a file (`kubectl describe` and the process environment
    show neither)."""
    s = settings
    scheme = "rediss" if s.tls else "redis"
    mounts = [_MOUNT(name="exporter-auth", mount_path=EXPORTER_AUTH_DIR, read_only=True)]
    args = None
    if s.tls:
        args = [f"--tls-ca-cert-file={EXPORTER_TLS_DIR}/ca.crt"]
        mounts.append(_MOUNT(name="tls", mount_path=EXPORTER_TLS_DIR, read_only=True))
    health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="metrics")
    env = {
        "REDIS_ADDR": f"{scheme}://localhost:{port}",
        "REDIS_USER": exporter.user,
        "REDIS_PASSWORD_FILE": f"{EXPORTER_AUTH_DIR}/{EXPORTER_PASSWORD_FILE}",
        "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": f":{s.exporter_port}",
        **dict(exporter.environment),
    }
    return k8s.core.v1.ContainerArgs(
        name="exporter",
        image=s.exporter_image,
        args=args,
        env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in env.items()],
        ports=[_PORT(name="metrics", container_port=s.exporter_port, protocol="TCP")],
        readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=10, timeout_seconds=3),
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=health, period_seconds=15, timeout_seconds=5, failure_threshold=4
        ),
        volume_mounts=mounts,
        resources=pods.small_resources(cpu_limit="200m", memory="64Mi"),
        security_context=pods.container_security_context(),
    )


def statefulset_spec(
    settings: Settings, part: Part, group: Group, annotations: Mapping[str, pulumi.Input[str]]
) -> k8s.apps.v1.StatefulSetSpecArgs:
    s = settings
    exporter = part.exporter_of(group.kind)
    sidecar = exporter is not None
    containers = [_main_container(s, group)]
    if exporter is not None:
        containers.append(_exporter_sidecar(s, exporter, group.ports[0][1]))
    claims = None
    if group.data_volume:
        claims = [
            k8s.core.v1.PersistentVolumeClaimArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=pods.labels(s, group.kind)),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=["ReadWriteOnce"],
                    storage_class_name=s.storage_class or None,
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": group.data_size}),
                ),
            )
        ]
    others = tuple(g.kind for g in part.groups if g is not group)
    return k8s.apps.v1.StatefulSetSpecArgs(
        service_name=headless_service(s, group.kind),
        replicas=len(group.nodes),
        # Each pod decides its own role (or is a Sentinel, or a cluster node that keeps
        # its role in nodes.conf): no start-up order, and a pod that cannot become ready
        # does not block its siblings.
        pod_management_policy="Parallel",
        update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
        selector=pods.selector(s, group.kind),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=pods.labels(s, group.kind), annotations=annotations),
            spec=k8s.core.v1.PodSpecArgs(
                automount_service_account_token=False,
                # Service links would inject REDIS_HA_*-style variables that the scripts
                # read as overrides.
                enable_service_links=False,
                termination_grace_period_seconds=group.stop_grace_seconds,
                security_context=pods.pod_security_context(),
                affinity=pods.spread(s, group.kind, others, required=group.spread == "required"),
                init_containers=[_init_config(s, group)],
                containers=containers,
                volumes=_volumes(s, part, group, sidecar),
            ),
        ),
        volume_claim_templates=claims,
    )


def job_spec(
    settings: Settings, part: Part, job: OneShot, component: str, scripts_checksum: str, checksum_key: str
) -> k8s.batch.v1.JobSpecArgs:
    """The one-shot step as a Job; `pulumi up` fails when the Job does."""
    s = settings
    auth_dir = job.password_file.rsplit("/", 1)[0]
    password_key = job.password_file.rsplit("/", 1)[1]
    container = k8s.core.v1.ContainerArgs(
        name=component,
        image=job.image,
        command=["sh", f"{SCRIPTS_DIR}/{job.script_name}"],
        volume_mounts=[
            _MOUNT(name="scripts", mount_path=SCRIPTS_DIR, read_only=True),
            _MOUNT(name="auth", mount_path=auth_dir, read_only=True),
        ],
        resources=pods.small_resources(),
        security_context=pods.container_security_context(),
    )
    target = part.group(job.after[0])
    return k8s.batch.v1.JobSpecArgs(
        backoff_limit=3,
        # The script gives up on its own after `wait_seconds`; a stuck pod is stopped here.
        active_deadline_seconds=4 * (job.wait_seconds + 60),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels=pods.labels(s, component), annotations={checksum_key: scripts_checksum}
            ),
            spec=k8s.core.v1.PodSpecArgs(
                restart_policy="Never",
                automount_service_account_token=False,
                enable_service_links=False,
                security_context=pods.pod_security_context(),
                containers=[container],
                volumes=[
                    k8s.core.v1.VolumeArgs(
                        name="scripts",
                        config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                            name=scripts_config_map(part), default_mode=0o555
                        ),
                    ),
                    # Only the admin password of the group's Secret.
                    k8s.core.v1.VolumeArgs(
                        name="auth",
                        secret=k8s.core.v1.SecretVolumeSourceArgs(
                            secret_name=config_secret(s, target),
                            default_mode=0o440,
                            items=[k8s.core.v1.KeyToPathArgs(key=password_key, path=password_key)],
                        ),
                    ),
                ],
            ),
        ),
    )
