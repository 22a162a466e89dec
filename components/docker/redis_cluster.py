"""`RedisCluster` on Docker: a private network, one container and volume per cluster
node, the redis_exporter and a one-shot container that creates (or scales out) the
cluster, all children of one component.

Every node runs the common redis.conf template with its `cluster` branch; its
nodes.conf lives on its own volume, so a restarted node rejoins with its identity.
The one-shot container runs templates/cluster-create.sh.j2 once and exits: it reads
the cluster first and changes only what is missing, so running it again (or after
restarts) is safe. Its script lists the desired nodes, so raising clusterShards
changes it and the container is replaced, which runs it again: new nodes join and
slots are rebalanced onto them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components import rendering
from components.credentials import with_passwords
from components.docker.redis_ha import EXPORTER_PASSWORD_FILE, LABEL
from components.outputs import describe_cluster
from components.settings import Settings
from components.topology import ClusterTopology, Node

PATHS = rendering.DOCKER_PATHS
# Where the one-shot container finds its script and the admin password (a secret upload).
CREATE_DIR = "/etc/redis-ha"
CREATE_SCRIPT = f"{CREATE_DIR}/cluster-create.sh"
CREATE_PASSWORD_FILE = f"{CREATE_DIR}/{rendering.ADMIN_PASSWORD_FILE}"
KIND_LABEL = "redis-ha.kind"


@dataclass(frozen=True)
class RedisClusterArgs:
    settings: Settings
    cluster: ClusterTopology
    # user -> secret password (from components.credentials)
    passwords: Mapping[str, pulumi.Output[str]]


def _secret_files(args: RedisClusterArgs, node: Node) -> pulumi.Output[dict[str, str]]:
    """The node's rendered files, as one secret Output (they hold passwords)."""
    return with_passwords(
        args.passwords, lambda pw: rendering.render_cluster_node_files(args.settings, args.cluster, node, pw, PATHS)
    )


def _pick(files: pulumi.Output[dict[str, str]], name: str) -> pulumi.Output[str]:
    return files.apply(lambda f: f[name])


def create_step_name(settings: Settings) -> str:
    return f"{settings.name}-cluster-create"


class RedisCluster(pulumi.ComponentResource):
    """Redis Cluster shards (a master and its replicas each) on one Docker host."""

    network_name: pulumi.Output[str]
    """the private network every cluster node is attached to"""
    deployment: pulumi.Output[dict[str, Any]]
    """the stack-output description of the cluster (no secrets)"""

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("redis-ha:docker:RedisCluster", name, None, opts)
        s, cluster = args.settings, args.cluster
        self._args, self._name = args, name
        network = docker.Network(
            f"{name}-net",
            name=f"{s.name}-cluster-net",
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label=LABEL, value=s.name)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._network = network

        nodes: list[docker.Container] = []
        for node in cluster.nodes:
            volume = docker.Volume(
                f"{node.name}-data",
                name=f"{node.name}-data",
                labels=[docker.VolumeLabelArgs(label=LABEL, value=s.name)],
                opts=pulumi.ResourceOptions(parent=self),
            )
            nodes.append(self._node(node, volume))

        if cluster.exporter is not None:
            self._exporter(cluster.exporter, nodes[:1])
        self._create_step(nodes)

        self.network_name = network.name
        self.deployment = pulumi.Output.from_input(
            describe_cluster(
                s, cluster, lambda n: f"docker://{n.name}", PATHS.conf_dir, PATHS.data_dir, create_step_name(s)
            )
        )
        self.register_outputs({"network_name": self.network_name, "deployment": self.deployment})

    def _opts(self, depends_on: list[docker.Container]) -> pulumi.ResourceOptions:
        # Containers have fixed names: a replacement must remove the old one first.
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on, delete_before_replace=True)

    def _labels(self, kind: str) -> list[docker.ContainerLabelArgs]:
        return [
            docker.ContainerLabelArgs(label=LABEL, value=self._args.settings.name),
            docker.ContainerLabelArgs(label=KIND_LABEL, value=kind),
        ]

    def _network_attachment(self, node: Node | None) -> list[docker.ContainerNetworksAdvancedArgs]:
        aliases = [node.hostname] if node is not None else None
        return [docker.ContainerNetworksAdvancedArgs(name=self._network.name, aliases=aliases)]

    def _ports(self, node: Node) -> list[docker.ContainerPortArgs]:
        if node.host_port is None:
            return []
        s = self._args.settings
        return [docker.ContainerPortArgs(internal=node.port, external=node.host_port, ip=s.host_bind_address)]

    def _node(self, node: Node, volume: docker.Volume) -> docker.Container:
        args = self._args
        s = args.settings
        files = _secret_files(args, node)
        uploads = [
            docker.ContainerUploadArgs(file=f"{PATHS.conf_dir}/{file_name}", content=_pick(files, file_name))
            for file_name in ("redis.conf", "users.acl")
        ]
        uploads.append(
            docker.ContainerUploadArgs(
                file=f"{PATHS.conf_dir}/healthcheck.sh",
                content=rendering.render_healthcheck(node, PATHS),
                executable=True,
            )
        )
        return docker.Container(
            node.name,
            name=node.name,
            hostname=node.name,
            image=s.redis_image,
            command=["redis-server", f"{PATHS.conf_dir}/redis.conf"],
            uploads=uploads,
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=PATHS.data_dir)],
            networks_advanced=self._network_attachment(node),
            ports=self._ports(node),
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "sh", f"{PATHS.conf_dir}/healthcheck.sh"],
                interval="2s",
                timeout="2s",
                retries=15,
                start_period="2s",
            ),
            restart="unless-stopped",
            wait=True,
            wait_timeout=60,
            labels=self._labels(node.kind),
            opts=self._opts([]),
        )

    def _exporter(self, node: Node, depends_on: list[docker.Container]) -> docker.Container:
        s, cluster = self._args.settings, self._args.cluster
        first = cluster.nodes[0]
        # A password file, not the environment (`docker inspect` shows that); one entry
        # per node so that /scrape?target= works for each.
        password_file = self._args.passwords["exporter"].apply(
            lambda password: json.dumps({f"redis://{n.hostname}:{n.port}": password for n in cluster.nodes})
        )
        return docker.Container(
            node.name,
            name=node.name,
            hostname=node.name,
            image=s.exporter_image,
            envs=[
                f"REDIS_ADDR=redis://{first.hostname}:{first.port}",
                "REDIS_USER=exporter",
                f"REDIS_PASSWORD_FILE={EXPORTER_PASSWORD_FILE}",
                f"REDIS_EXPORTER_WEB_LISTEN_ADDRESS=:{node.port}",
            ],
            uploads=[docker.ContainerUploadArgs(file=EXPORTER_PASSWORD_FILE, content=password_file)],
            networks_advanced=self._network_attachment(node),
            ports=self._ports(node),
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{node.port}/health"],
                interval="2s",
                timeout="2s",
                retries=15,
                start_period="2s",
            ),
            restart="unless-stopped",
            wait=True,
            wait_timeout=60,
            labels=self._labels(node.kind),
            opts=self._opts(depends_on),
        )

    def _create_step(self, nodes: list[docker.Container]) -> docker.Container:
        """Runs once after every node is healthy and exits; `pulumi up` waits for it."""
        s = self._args.settings
        script = rendering.render_cluster_create_script(s, self._args.cluster, CREATE_PASSWORD_FILE)
        return docker.Container(
            f"{self._name}-create",
            name=create_step_name(s),
            image=s.redis_image,
            command=["sh", CREATE_SCRIPT],
            uploads=[
                docker.ContainerUploadArgs(file=CREATE_SCRIPT, content=script, executable=True),
                docker.ContainerUploadArgs(
                    file=CREATE_PASSWORD_FILE, content=pulumi.Output.secret(self._args.passwords["admin"])
                ),
            ],
            networks_advanced=self._network_attachment(None),
            # One run, no restarts; attach waits until it has exited.
            restart="no",
            must_run=False,
            attach=True,
            logs=True,
            labels=self._labels("cluster-create"),
            opts=self._opts(nodes),
        )
