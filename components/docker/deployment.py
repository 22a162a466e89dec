"""The dev backend: every node of a plan part as a Docker container (pulumi-docker).

A part gets a private network with a subnet of its own; each node a fixed address
there and every node's name in its /etc/hosts (components/docker/addresses.py: no
lookup of a node's name depends on Docker's DNS); each node a container (and a volume when its group
keeps data) with its scripts uploaded into the writable /data and its secret files in a
volume written by a secrets writer (components/docker/secrets.py: no upload sets an
owner, which Docker would resolve in the host's passwd database); each exporter
one container that scrapes every node of its group (the Redis nodes, the Sentinels,
the cluster nodes) through its multi-target /scrape endpoint, with the scrape targets
Prometheus is given in components/scrape.py; a one-shot step (the cluster's
creation) a container that runs once, which `pulumi up` waits for.

Containers have fixed names, so a replacement must remove the old one first
(`delete_before_replace`); the order the program needs is stated with `depends_on`.

Secrets (docs/redis-notes.md#rotating-passwords): a Redis node's or a Sentinel's files
that hold a password or a hash are not uploads of its container (every container input
replaces the container when it changes: a restart). They go into a volume of the
node's own, `<node>-secrets`, written by a one-shot writer container `<node>-secrets`
that changes, and so is replaced and runs again, when they change; the node's start
script applies them live. On an update the writer waits until the running node has
applied what it wrote, so `pulumi up` returns once every node uses the new secrets.
The node container carries a digest of its files rendered without the secrets (a
label): a settings change still replaces it, a new password never does.

Day 2 (docs/redis-notes.md#day-2-on-docker): the engine replaces every container whose
inputs changed, independent ones in parallel, and a container it removes gets
`destroy_grace_seconds` to stop. So the nodes of a group form a chain (each depends on
the previous one): a change rolls through them one at a time, each replacement waits
until the new container is healthy (ready: a replica in sync), and a stopped master
hands over first (redis-start.sh traps SIGTERM). Roles come from the Sentinels, not
from the deploy-time files, and Sentinel state lives on the Sentinel's own volume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_docker as docker
from redis_ha.components import backup_plan
from redis_ha.components.backend import DEFAULT_PLACEMENT, Descriptions, PartArgs, Passwords, Placement, digest
from redis_ha.components.backup_plan import Backup
from redis_ha.components.credentials import with_passwords
from redis_ha.components.docker.addresses import PartAddresses, plan_addresses
from redis_ha.components.docker.layout import (
    CONFIG_CHECKSUM_LABEL,
    EXPORTER_PASSWORD_FILE,
    EXPORTER_PASSWORD_NAME,
    EXPORTER_SECRETS_DIR,
    EXPORTER_UID,
    HEALTHCHECK,
    JOB_SCRIPT_DIR,
    KIND_LABEL,
    LABEL,
    LAYOUT,
    REDIS_UID,
    SECRETS_DIR,
    VERSION_FILE,
    WRITER_VOLUME_PATH,
    testinfra_host,
)
from redis_ha.components.docker.secrets import (
    SECRETS_VERSION_LABEL,
    check_writer,
    versioned,
    writer_inputs,
    writer_name,
)
from redis_ha.components.plan import Exporter, Group, OneShot, Part
from redis_ha.components.security import without_secrets
from redis_ha.components.settings import Settings
from redis_ha.components.topology import CLUSTER, Node


class _DockerPart(pulumi.ComponentResource):
    """The containers of one plan part, on one Docker host."""

    TYPE = ""
    network_name: pulumi.Output[str]
    """the private network every node of the part is attached to"""
    deployment: pulumi.Output[dict[str, Any]]
    """the stack-output description of the part (no secrets)"""

    def __init__(
        self,
        name: str,
        args: PartArgs,
        opts: pulumi.ResourceOptions | None = None,
        addresses: PartAddresses | None = None,
    ) -> None:
        """`addresses`: the part's subnet and fixed addresses (default: planned for this
        part alone)."""
        if addresses is None:
            addresses = plan_addresses(args.settings, (args.part,))[args.part.name]
        super().__init__(self.TYPE, name, None, opts)
        self._args, self._name, self._addresses = args, name, addresses
        s, part = args.settings, args.part
        self._network = docker.Network(
            f"{name}-net",
            name=f"{part.name}-net",
            driver="bridge",
            ipam_configs=[
                docker.NetworkIpamConfigArgs(
                    subnet=str(addresses.subnet), ip_range=addresses.dynamic_range, gateway=addresses.gateway
                )
            ],
            labels=[docker.NetworkLabelArgs(label=LABEL, value=s.name)],
            # A fixed name, like the containers: a new subnet (dockerSubnet) replaces it,
            # after the containers on it (they take its name as an input) are removed.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        started: dict[str, list[docker.Container]] = {}
        # The secret writers of each group: a group's writers run after those of the
        # groups it starts after, so a new password is accepted by the Redis nodes
        # before the Sentinels log in with it (and the exporters after both).
        writers: dict[str, list[docker.Container]] = {}
        for group in part.groups:
            containers: list[docker.Container] = []
            writers[group.kind] = []
            for node in group.nodes:
                depends = [c for kind in group.after for c in started[kind]]
                if group.one_at_a_time:
                    depends += containers[-1:]
                if group.kind == CLUSTER:
                    containers.append(self._node(group, node, depends))
                    continue
                writer = self._secrets_writer(group, node, [w for kind in group.after for w in writers[kind]])
                writers[group.kind].append(writer)
                containers.append(self._node(group, node, [*depends, writer]))
            started[group.kind] = containers
        for exporter in part.exporters:
            watched = next(g for g in part.groups if g.kind == exporter.watches)
            self._exporter(exporter, watched.image, started[exporter.watches][:1] + writers.get(exporter.watches, []))
        create_step = ""
        every_node = [c for containers in started.values() for c in containers]
        if part.job is not None:
            create_step = f"{part.name}-create"
            every_node.append(
                self._one_shot(part.job, create_step, [c for kind in part.job.after for c in started[kind]])
            )
        backup_at = {}
        if part.backup is not None:
            # After every node and every secrets writer: in phase 1 of a rotation the new
            # `backup` password is live before the worker logs in with it.
            every_writer = [w for group_writers in writers.values() for w in group_writers]
            self._backup(part.backup, every_node + every_writer)
            backup_at = {"testinfraHost": testinfra_host(part.backup.name)}
            if part.backup.host_port is not None:
                backup_at["metricsEndpoint"] = f"{s.host_bind_address}:{part.backup.host_port}"

        self.network_name = self._network.name
        self.deployment = pulumi.Output.from_input(
            part.describe(s, lambda n: testinfra_host(n.name), create_step, backup_at)
        )
        self.register_outputs({"network_name": self.network_name, "deployment": self.deployment})

    def _container(
        self,
        name: str,
        kind: str,
        depends_on: list[docker.Container],
        extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
        **inputs: Any,
    ) -> docker.Container:
        s = self._args.settings
        return docker.Container(
            name,
            name=name,
            labels=[
                docker.ContainerLabelArgs(label=LABEL, value=s.name),
                docker.ContainerLabelArgs(label=KIND_LABEL, value=kind),
                *(docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted((extra_labels or {}).items())),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on, delete_before_replace=True),
            **inputs,
        )

    def _service(
        self,
        node: Node,
        health: list[str],
        depends_on: list[docker.Container],
        stop_grace: int,
        extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
        **inputs: Any,
    ) -> Any:
        """A long-running container reachable by the node's hostname; stopped with
        SIGTERM and `stop_grace` seconds before SIGKILL, by `docker stop`, a daemon
        restart (stop_timeout) and the engine removing it (destroy_grace_seconds)."""
        s = self._args.settings
        ports = []
        if node.host_port is not None:
            ports = [docker.ContainerPortArgs(internal=node.port, external=node.host_port, ip=s.host_bind_address)]
        return self._container(
            node.name,
            node.kind,
            depends_on,
            extra_labels,
            hostname=node.name,
            networks_advanced=self._networks(node.hostname),
            hosts=self._hosts(),
            ports=ports,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=health, interval="2s", timeout="2s", retries=15, start_period="2s"
            ),
            restart="unless-stopped",
            # `pulumi up` returns only when every container reports healthy.
            wait=True,
            wait_timeout=60,
            stop_timeout=stop_grace,
            destroy_grace_seconds=stop_grace,
            **inputs,
        )

    def _networks(self, name: str | None) -> list[docker.ContainerNetworksAdvancedArgs]:
        """The part's network, with the fixed address and alias of `name` (None: an
        address from the dynamic range), and the program's own network if any."""
        own = docker.ContainerNetworksAdvancedArgs(
            name=self._network.name,
            aliases=[name] if name else None,
            ipv4_address=self._addresses.fixed[name] if name else None,
        )
        if self._args.network is None or name is None:
            return [own]
        return [own, docker.ContainerNetworksAdvancedArgs(name=self._args.network, aliases=[name])]

    def _hosts(self) -> list[docker.ContainerHostArgs]:
        """Every named container of the part in /etc/hosts (components/docker/addresses.py)."""
        return [docker.ContainerHostArgs(host=host, ip=ip) for host, ip in self._addresses.hosts()]

    def _volume(self, name: str) -> docker.Volume:
        return docker.Volume(
            name,
            name=name,
            labels=[docker.VolumeLabelArgs(label=LABEL, value=self._args.settings.name)],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _writer(
        self,
        consumer: str,
        image: str,
        names: tuple[str, ...],
        files: pulumi.Output[dict[str, str]],
        uid: str,
        depends_on: list[docker.Container],
        volume: pulumi.Input[str] | None = None,
    ) -> tuple[docker.Container, pulumi.Input[str], pulumi.Output[str]]:
        """The one-shot container that writes `consumer`'s secret files `names` and their
        version into `volume` (by default a new `<consumer>-secrets`), owned by `uid`
        (components/docker/secrets.py); replaced, so run again, whenever they change.
        Returns it, the volume and the version (secret): the label that replaces a
        consumer which does not apply its secrets live when they change."""
        name = writer_name(consumer)
        if volume is None:
            volume = self._volume(name).name
        files = versioned(files)
        writer = self._container(
            name,
            "secrets-writer",
            depends_on,
            image=image,
            volumes=[docker.ContainerVolumeArgs(volume_name=volume, container_path=WRITER_VOLUME_PATH)],
            **writer_inputs(files, names, uid),
        )

        # The provider records a one-shot container's exit code without failing on it
        # (kreuzwerker/terraform-provider-docker, resourceDockerContainerRead): a writer
        # whose node did not apply the secrets fails the update here.
        def check(code: int | None) -> None:
            check_writer(name, code)

        writer.exit_code.apply(check)
        return writer, volume, pulumi.Output.secret(files.apply(lambda f: f[VERSION_FILE]))

    def _secrets_writer(self, group: Group, node: Node, depends_on: list[docker.Container]) -> docker.Container:
        """A Redis or Sentinel node's writer: its node mounts the volume at SECRETS_DIR
        and applies what it finds there live."""
        names = (group.config_file, *group.shared_files)
        # The rendered files hold passwords: one secret Output, picked apart per file.
        files = with_passwords(self._args.passwords, lambda pw: group.files(node, pw))
        return self._writer(node.name, group.image, names, files, REDIS_UID, depends_on)[0]

    def _node(self, group: Group, node: Node, depends_on: list[docker.Container]) -> docker.Container:
        scripts_dir = LAYOUT.scripts_dir
        volumes = []
        labels: dict[str, Any] = {}
        data_volume = self._volume(f"{node.name}-data") if group.data_volume else None
        if group.kind == CLUSTER:
            # Cluster nodes get their files at start only (no live rotation), written
            # into the data volume the node reads its config from; a change replaces it.
            if data_volume is None or group.paths.conf_dir != group.paths.data_dir:
                raise ValueError("a cluster node reads its config from its data volume")
            names = (group.config_file, *group.shared_files)
            files = with_passwords(self._args.passwords, lambda pw: group.files(node, pw))
            writer, _, version = self._writer(
                node.name, group.image, names, files, REDIS_UID, depends_on, data_volume.name
            )
            depends_on = [*depends_on, writer]
            labels[SECRETS_VERSION_LABEL] = version
        else:
            volumes.append(docker.ContainerVolumeArgs(volume_name=writer_name(node.name), container_path=SECRETS_DIR))
            # Follows the settings, not the passwords: a settings change replaces the
            # container (a restart with the new files), a rotation does not.
            labels[CONFIG_CHECKSUM_LABEL] = digest(group.files(node, without_secrets(self._args.passwords)))
        uploads = [
            docker.ContainerUploadArgs(
                file=f"{scripts_dir}/{file_name}",
                content=content,
                executable=True,
            )
            for file_name, content in group.scripts_for(node).items()
        ]
        if data_volume is not None:
            volumes.insert(
                0, docker.ContainerVolumeArgs(volume_name=data_volume.name, container_path=group.paths.data_dir)
            )
        return self._service(
            node,
            ["CMD", "sh", f"{scripts_dir}/{HEALTHCHECK}", "ready"],
            depends_on,
            group.stop_grace_seconds,
            extra_labels=labels,
            image=group.image,
            command=list(group.command),
            user=REDIS_UID,
            uploads=uploads,
            volumes=volumes,
        )

    def _exporter(self, exporter: Exporter, image: str, depends_on: list[docker.Container]) -> docker.Container:
        """`image` runs its secrets writer (the exporter's own image may have no shell)."""
        node, first = exporter.node, exporter.targets[0]
        # A password file, not the environment (`docker inspect` shows that); one entry
        # per target so that /scrape?target= works for each.
        password_file = self._args.passwords[exporter.user].apply(
            lambda password: {
                EXPORTER_PASSWORD_NAME: json.dumps(
                    {f"redis://{n.hostname}:{n.port}": password for n in exporter.targets}
                )
            }
        )
        writer, volume, version = self._writer(
            node.name, image, (EXPORTER_PASSWORD_NAME,), password_file, EXPORTER_UID, depends_on
        )
        return self._service(
            node,
            ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{node.port}/health"],
            [*depends_on, writer],
            10,
            extra_labels={SECRETS_VERSION_LABEL: version},
            image=exporter.image,
            envs=[
                f"REDIS_ADDR=redis://{first.hostname}:{first.port}",
                f"REDIS_USER={exporter.user}",
                f"REDIS_PASSWORD_FILE={EXPORTER_PASSWORD_FILE}",
                f"REDIS_EXPORTER_WEB_LISTEN_ADDRESS=:{node.port}",
                *(f"{k}={v}" for k, v in exporter.environment),
            ],
            user=EXPORTER_UID,
            volumes=[docker.ContainerVolumeArgs(volume_name=volume, container_path=EXPORTER_SECRETS_DIR)],
        )

    def _one_shot(self, job: OneShot, name: str, depends_on: list[docker.Container]) -> docker.Container:
        """Runs once after its groups are healthy and exits; `pulumi up` waits for it."""
        secrets_dir, password_name = job.password_file.rsplit("/", 1)
        password: pulumi.Output[dict[str, str]] = self._args.passwords["admin"].apply(lambda p: {password_name: p})
        writer, volume, version = self._writer(name, job.image, (password_name,), password, REDIS_UID, depends_on)
        script = f"{JOB_SCRIPT_DIR}/{job.script_name}"
        return self._container(
            name,
            "cluster-create",
            [*depends_on, writer],
            {SECRETS_VERSION_LABEL: version},
            image=job.image,
            command=["sh", script],
            user=REDIS_UID,
            uploads=[
                docker.ContainerUploadArgs(file=f"{JOB_SCRIPT_DIR}/{file_name}", content=content, executable=True)
                for file_name, content in job.files.items()
            ],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume, container_path=secrets_dir)],
            networks_advanced=self._networks(None),
            hosts=self._hosts(),
            # One run, no restarts; attach waits until it has exited.
            restart="no",
            must_run=False,
            attach=True,
            logs=True,
        )

    def _backup(self, backup: Backup, depends_on: list[docker.Container]) -> docker.Container:
        """The backup worker: takes a backup on the schedule, prunes, and runs the
        on-demand `redis-ha backup/restore` (docker exec). Its volume is not a resource
        of the stack: Docker creates it on first use and `pulumi destroy` leaves it, so
        backups outlive the deployment and a new stack of the same settings finds them.
        Its config and secret files are delivered together, all 0600 and the worker's."""
        config = json.dumps(backup.config, indent=2, sort_keys=True) + "\n"
        names = (*backup.secret_files, backup_plan.CONFIG_FILE)
        files = with_passwords(self._args.passwords, lambda pw: {**backup.files(pw), backup_plan.CONFIG_FILE: config})
        writer, secrets, version = self._writer(backup.name, backup.image, names, files, REDIS_UID, depends_on)
        uploads = [
            docker.ContainerUploadArgs(file=f"{backup_plan.PROGRAM_DIR}/{path}", content=source)
            for path, source in backup_plan.program_files().items()
        ]
        volumes = [docker.ContainerVolumeArgs(volume_name=secrets, container_path=backup_plan.CONF_DIR)]
        if backup.volume:
            volumes.append(docker.ContainerVolumeArgs(volume_name=backup.volume, container_path=backup_plan.MOUNT_PATH))
        ports = []
        if backup.host_port is not None:
            s = self._args.settings
            ports = [
                docker.ContainerPortArgs(
                    internal=backup_plan.METRICS_PORT, external=backup.host_port, ip=s.host_bind_address
                )
            ]
        return self._container(
            backup.name,
            "backup",
            [*depends_on, writer],
            {SECRETS_VERSION_LABEL: version},
            hostname=backup.name,
            image=backup.image,
            command=list(backup.args("schedule")),
            user=REDIS_UID,
            uploads=uploads,
            volumes=volumes,
            networks_advanced=self._networks(backup.name)[:1],
            hosts=self._hosts(),
            ports=ports,
            restart="unless-stopped",
            # A snapshot in progress is abandoned on stop; its temp file is never a backup.
            stop_timeout=10,
            destroy_grace_seconds=10,
        )


class RedisHA(_DockerPart):
    """A Redis master, its replicas, the Sentinels and the exporter on one Docker host."""

    TYPE = "redis-ha:docker:RedisHA"


class RedisCluster(_DockerPart):
    """Redis Cluster shards (a master and its replicas each) on one Docker host."""

    TYPE = "redis-ha:docker:RedisCluster"


def check(settings: Settings, parts: tuple[Part, ...]) -> None:
    """A dockerSubnet that cannot hold the stack's containers fails here."""
    plan_addresses(settings, parts)


def deploy(
    settings: Settings, parts: tuple[Part, ...], passwords: Passwords, placement: Placement = DEFAULT_PLACEMENT
) -> Descriptions:
    """One component per part; returns their deployment descriptions."""
    addresses = plan_addresses(settings, parts)
    components: list[_DockerPart] = []
    for part in parts:
        component = RedisHA if part.kind == "sentinel" else RedisCluster
        args = PartArgs(settings, part, passwords, network=placement.network)
        components.append(component(part.name, args, placement.opts, addresses[part.name]))
    return [c.deployment for c in components]
