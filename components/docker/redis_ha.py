"""`RedisHA` on Docker: a private network, a volume per data node, the Redis nodes,
the Sentinels and the redis_exporter, all children of one component."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components import rendering
from components.credentials import with_passwords
from components.outputs import describe_deployment
from components.settings import Settings
from components.topology import Node, SentinelTopology

PATHS = rendering.DOCKER_PATHS
LABEL = "redis-ha.deployment"
EXPORTER_PASSWORD_FILE = "/etc/redis-ha/exporter-passwords.json"


@dataclass(frozen=True)
class RedisHAArgs:
    settings: Settings
    topology: SentinelTopology
    # user -> secret password (from components.credentials)
    passwords: Mapping[str, pulumi.Output[str]]


def _secret_files(args: RedisHAArgs, node: Node) -> pulumi.Output[dict[str, str]]:
    """The node's rendered files, as one secret Output (they hold passwords)."""
    return with_passwords(
        args.passwords, lambda pw: rendering.render_node_files(args.settings, args.topology, node, pw, PATHS)
    )


def _pick(files: pulumi.Output[dict[str, str]], name: str) -> pulumi.Output[str]:
    return files.apply(lambda f: f[name])


class RedisHA(pulumi.ComponentResource):
    """A Redis master, its replicas, the Sentinels and the exporter on one Docker host."""

    network_name: pulumi.Output[str]
    """the private network every node is attached to"""
    deployment: pulumi.Output[dict[str, Any]]
    """the stack-output description of the deployment (no secrets)"""

    def __init__(self, name: str, args: RedisHAArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("redis-ha:docker:RedisHA", name, None, opts)
        s, topo = args.settings, args.topology
        labels = [docker.NetworkLabelArgs(label=LABEL, value=s.name)]
        child = pulumi.ResourceOptions(parent=self)

        network = docker.Network(
            f"{name}-net",
            name=f"{s.name}-net",
            driver="bridge",
            labels=labels,
            opts=child,
        )

        redis_containers: list[docker.Container] = []
        for node in topo.redis_nodes:
            volume = docker.Volume(
                f"{node.name}-data",
                name=f"{node.name}-data",
                labels=[docker.VolumeLabelArgs(label=LABEL, value=s.name)],
                opts=child,
            )
            # Replicas start after the master so that `replicaof <hostname>` resolves.
            depends = redis_containers[:1]
            redis_containers.append(
                self._node_container(
                    args,
                    node,
                    network,
                    ["redis-server", f"{PATHS.conf_dir}/redis.conf"],
                    volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=PATHS.data_dir)],
                    depends_on=depends,
                )
            )

        # Sentinel refuses to start when the monitored hostname does not resolve yet.
        for node in topo.sentinels:
            self._node_container(
                args,
                node,
                network,
                # `redis-server <conf> --sentinel` (not redis-sentinel) so the official
                # image's entrypoint drops root and chowns /data for the rewrite.
                ["redis-server", f"{PATHS.conf_dir}/sentinel.conf", "--sentinel"],
                volumes=[],
                depends_on=redis_containers,
            )

        if topo.exporter is not None:
            self._exporter(args, topo.exporter, network, redis_containers[:1])

        self.network_name = network.name
        self.deployment = pulumi.Output.from_input(
            describe_deployment(s, topo, lambda n: f"docker://{n.name}", PATHS.conf_dir)
        )
        self.register_outputs({"network_name": self.network_name, "deployment": self.deployment})

    def _ports(self, s: Settings, node: Node) -> list[docker.ContainerPortArgs]:
        if node.host_port is None:
            return []
        return [docker.ContainerPortArgs(internal=node.port, external=node.host_port, ip=s.host_bind_address)]

    def _node_container(
        self,
        args: RedisHAArgs,
        node: Node,
        network: docker.Network,
        command: list[str],
        volumes: list[docker.ContainerVolumeArgs],
        depends_on: list[docker.Container],
    ) -> docker.Container:
        s = args.settings
        files = _secret_files(args, node)
        uploads = [
            docker.ContainerUploadArgs(file=f"{PATHS.conf_dir}/{file_name}", content=_pick(files, file_name))
            for file_name in (["sentinel.conf"] if node.kind == "sentinel" else ["redis.conf", "users.acl"])
        ]
        uploads.append(
            docker.ContainerUploadArgs(
                file=f"{PATHS.conf_dir}/healthcheck.sh",
                content=rendering.render_healthcheck(node, PATHS),
                executable=True,
            )
        )
        return self._container(
            s,
            node,
            network,
            s.redis_image,
            health=["CMD", "sh", f"{PATHS.conf_dir}/healthcheck.sh"],
            depends_on=depends_on,
            command=command,
            uploads=uploads,
            volumes=volumes,
        )

    def _container(
        self,
        s: Settings,
        node: Node,
        network: docker.Network,
        image: str,
        health: list[str],
        depends_on: list[docker.Container],
        **inputs: Any,
    ) -> docker.Container:
        return docker.Container(
            node.name,
            name=node.name,
            hostname=node.name,
            image=image,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[node.hostname])],
            ports=self._ports(s, node),
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=health, interval="2s", timeout="2s", retries=15, start_period="2s"
            ),
            restart="unless-stopped",
            # `pulumi up` returns only when every container reports healthy.
            wait=True,
            wait_timeout=60,
            labels=[
                docker.ContainerLabelArgs(label=LABEL, value=s.name),
                docker.ContainerLabelArgs(label="redis-ha.kind", value=node.kind),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
            **inputs,
        )

    def _exporter(
        self, args: RedisHAArgs, node: Node, network: docker.Network, depends_on: list[docker.Container]
    ) -> docker.Container:
        s, topo = args.settings, args.topology
        # The password goes in a secret file, not the environment, where `docker
        # inspect` would show it. One entry per node, so /scrape?target= works for each.
        # (apply on a secret Output gives a secret Output)
        password_file = args.passwords["exporter"].apply(
            lambda password: json.dumps({f"redis://{n.hostname}:{n.port}": password for n in topo.redis_nodes})
        )
        envs = [
            f"REDIS_ADDR=redis://{topo.master.hostname}:{topo.master.port}",
            "REDIS_USER=exporter",
            f"REDIS_PASSWORD_FILE={EXPORTER_PASSWORD_FILE}",
            f"REDIS_EXPORTER_WEB_LISTEN_ADDRESS=:{node.port}",
        ]
        return self._container(
            s,
            node,
            network,
            s.exporter_image,
            health=["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{node.port}/health"],
            depends_on=depends_on,
            envs=envs,
            uploads=[docker.ContainerUploadArgs(file=EXPORTER_PASSWORD_FILE, content=password_file)],
        )
