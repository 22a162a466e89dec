"""`RedisCluster` on Kubernetes: a StatefulSet of cluster nodes (one pod each, with the
redis_exporter as a sidecar), a headless Service carrying the client and bus ports,
a client Service, the metrics Service, the Secrets with every rendered file, a PDB, a
NetworkPolicy and a Job that creates (or scales out) the cluster, all children of
one component.

Each pod gets its own redis.conf (cluster-announce-hostname names the pod), stored as
`<pod>.redis.conf` in the Secret and copied by an init container into a writable
memory-backed emptyDir; the cluster's own state (nodes.conf) is on the pod's
PersistentVolumeClaim, so a rescheduled pod rejoins with its identity.

The Job runs templates/cluster-create.sh.j2: it reads the cluster first and changes
only what is missing. Its name carries a digest of the script, which lists the
desired nodes: raising clusterShards makes a new Job (new pods join, slots are
rebalanced onto them), while an unchanged stack leaves the finished Job alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import rendering
from components.credentials import with_passwords
from components.kubernetes import pods
from components.kubernetes.redis_ha import (
    CONF_DIR,
    CONFIG_CHECKSUM,
    CONFIG_SOURCE_DIR,
    DATA_DIR,
    PATHS,
    POD_SECURITY,
    SCRIPTS_CHECKSUM,
    SCRIPTS_DIR,
)
from components.outputs import describe_cluster
from components.settings import Settings
from components.topology import CLUSTER, ClusterTopology, Node

CREATE = "cluster-create"
HEALTHCHECK = "cluster-healthcheck.sh"
CREATE_SCRIPT = "cluster-create.sh"
# The Job sees only the admin password, from the cluster Secret.
AUTH_DIR = "/run/redis-ha/auth"
EXPORTER_AUTH_DIR = "/run/redis-ha/exporter"
EXPORTER_PASSWORD_FILE = "passwords.json"


@dataclass(frozen=True)
class RedisClusterArgs:
    settings: Settings
    cluster: ClusterTopology
    # user -> secret password (from components.credentials)
    passwords: Mapping[str, pulumi.Output[str]]
    # the namespace of a Sentinel group deployed beside it (topology both); None
    # creates the namespace
    namespace: pulumi.Input[str] | None = None


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def testinfra_host(settings: Settings, cluster: ClusterTopology, node: Node) -> str:
    """`kubectl://` URL of the container that runs `node`; the exporter runs beside
    every node, the first pod stands for it."""
    if node.kind == CLUSTER:
        return f"kubectl://{node.name}?namespace={settings.namespace}&container=redis"
    return f"kubectl://{cluster.nodes[0].name}?namespace={settings.namespace}&container=exporter"


def create_job_name(settings: Settings, script: str) -> str:
    # At most 40 + 16 + 7 = 63 characters: the Job's name is also a label value.
    return f"{settings.name}-{CREATE}-{_digest(script)[:7]}"


class RedisCluster(pulumi.ComponentResource):
    """Redis Cluster shards (a master and its replicas each) on Kubernetes."""

    namespace: pulumi.Output[str]
    """the namespace every resource lives in"""
    service: pulumi.Output[str]
    """host:port of the client Service, a seed address for cluster-aware clients"""
    deployment: pulumi.Output[dict[str, Any]]
    """the stack-output description of the cluster (no secrets)"""

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("redis-ha:kubernetes:RedisCluster", name, None, opts)
        s, cluster = args.settings, args.cluster
        self._name, self._args = name, args

        if args.namespace is None:
            ns = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=s.namespace,
                    labels={
                        "app.kubernetes.io/part-of": "redis-ha",
                        "app.kubernetes.io/managed-by": "pulumi",
                        "pod-security.kubernetes.io/enforce": POD_SECURITY,
                        "pod-security.kubernetes.io/warn": POD_SECURITY,
                    },
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self._ns: pulumi.Output[str] = ns.metadata.name
        else:
            self._ns = pulumi.Output.from_input(args.namespace)

        self._secret(f"{name}-config", self._config_secret, self._with_passwords(self._secret_data))
        if s.exporter:
            self._secret(
                f"{name}-exporter-auth",
                f"{s.name}-cluster-exporter",
                pulumi.Output.secret(
                    args.passwords["exporter"].apply(
                        lambda p: {EXPORTER_PASSWORD_FILE: json.dumps({f"redis://localhost:{s.port}": p})}
                    )
                ),
            )
        script = rendering.render_cluster_create_script(s, cluster, f"{AUTH_DIR}/{rendering.ADMIN_PASSWORD_FILE}")
        scripts = {
            HEALTHCHECK: rendering.render_healthcheck(cluster.nodes[0], PATHS),
            CREATE_SCRIPT: script,
        }
        k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata=self._meta(f"{s.name}-cluster-scripts", CLUSTER),
            data=scripts,
            opts=self._child(),
        )

        self._services()
        statefulset = self._statefulset(self._config_checksum(), _digest(scripts[HEALTHCHECK]))
        job_name = create_job_name(s, script)
        self._create_job(job_name, _digest(scripts), statefulset)
        self._disruption_budget()
        self._network_policy()

        self.namespace = self._ns
        self.service = pulumi.Output.from_input(f"{s.name}-cluster.{s.namespace}.svc.cluster.local:{s.port}")
        self.deployment = pulumi.Output.from_input(
            describe_cluster(s, cluster, lambda n: testinfra_host(s, cluster, n), CONF_DIR, DATA_DIR, job_name)
        )
        self.register_outputs({"namespace": self.namespace, "service": self.service, "deployment": self.deployment})

    # --- metadata and files ------------------------------------------------------

    @property
    def _s(self) -> Settings:
        return self._args.settings

    @property
    def _config_secret(self) -> str:
        return f"{self._s.name}-cluster"

    def _meta(self, resource_name: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=resource_name, namespace=self._ns, labels=pods.labels(self._s, component)
        )

    def _child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on or [])

    def _secret_data(self, passwords: dict[str, str]) -> dict[str, str]:
        s, cluster = self._s, self._args.cluster
        data = {rendering.ADMIN_PASSWORD_FILE: passwords["admin"]}
        for node in cluster.nodes:
            files = rendering.render_cluster_node_files(s, cluster, node, passwords, PATHS)
            data[f"{node.name}.redis.conf"] = files["redis.conf"]
            data["users.acl"] = files["users.acl"]  # the same on every node
        return data

    def _with_passwords(self, render: Any) -> pulumi.Output[Any]:
        """`render(passwords)` inside an apply, as a secret Output."""
        return with_passwords(self._args.passwords, render)

    def _config_checksum(self) -> pulumi.Output[str]:
        """A digest of what every pod's files depend on (the first pod's redis.conf,
        users.acl): a settings change rolls the pods, a scale-out (new `<pod>.redis.conf`
        keys only) does not."""
        s, cluster = self._s, self._args.cluster
        return self._with_passwords(
            lambda passwords: _digest(
                rendering.render_cluster_node_files(s, cluster, cluster.nodes[0], passwords, PATHS)
            )
        )

    def _secret(self, resource: str, secret_name: str, data: pulumi.Output[dict[str, str]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            resource,
            metadata=self._meta(secret_name, CLUSTER),
            type="Opaque",
            string_data=data,
            opts=self._child(),
        )

    # --- Services ------------------------------------------------------------------

    def _service(
        self, resource: str, service_name: str, ports: list[tuple[str, int]], headless: bool
    ) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            resource,
            metadata=self._meta(service_name, CLUSTER),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                cluster_ip="None" if headless else None,
                # Peers must resolve a node that is not ready yet (loading its AOF).
                publish_not_ready_addresses=True if headless else None,
                selector=pods.selector_labels(self._s, CLUSTER),
                ports=[
                    k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=port_name, protocol="TCP")
                    for port_name, port in ports
                ],
            ),
            opts=self._child(),
        )

    def _services(self) -> None:
        s = self._s
        self._service(
            f"{self._name}-headless",
            f"{s.name}-cluster-headless",
            [("redis", s.port), ("cluster-bus", s.bus_port)],
            headless=True,
        )
        # A seed address for cluster-aware clients; they follow the slot map from there.
        self._service(f"{self._name}-client", f"{s.name}-cluster", [("redis", s.port)], headless=False)
        if s.exporter:
            # Named like the topology's exporter node, so its hostname resolves in the namespace.
            self._service(
                f"{self._name}-exporter", f"{s.name}-cluster-exporter", [("metrics", s.exporter_port)], headless=False
            )

    # --- pods --------------------------------------------------------------------

    def _statefulset(self, config_checksum: pulumi.Output[str], scripts_checksum: str) -> k8s.apps.v1.StatefulSet:
        s = self._s
        healthcheck = f"{SCRIPTS_DIR}/{HEALTHCHECK}"
        redis = k8s.core.v1.ContainerArgs(
            name="redis",
            image=s.redis_image,
            # No role decision at start: the cluster keeps roles in nodes.conf.
            command=["redis-server", f"{CONF_DIR}/redis.conf"],
            ports=[
                k8s.core.v1.ContainerPortArgs(name="redis", container_port=s.port, protocol="TCP"),
                k8s.core.v1.ContainerPortArgs(name="cluster-bus", container_port=s.bus_port, protocol="TCP"),
            ],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="conf", mount_path=CONF_DIR),
                k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_DIR),
                k8s.core.v1.VolumeMountArgs(name="scripts", mount_path=SCRIPTS_DIR, read_only=True),
            ],
            # Loading a large AOF can take minutes; liveness starts only once started.
            startup_probe=pods.exec_probe(healthcheck, period=5, timeout=3, failures=120),
            readiness_probe=pods.exec_probe(healthcheck, period=5, timeout=3, failures=3),
            liveness_probe=pods.exec_probe(healthcheck, period=10, timeout=5, failures=6),
            resources=pods.redis_resources(s),
            security_context=pods.container_security_context(),
        )
        containers = [redis]
        volumes = [
            k8s.core.v1.VolumeArgs(
                name="config-source",
                secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=self._config_secret, default_mode=0o440),
            ),
            k8s.core.v1.VolumeArgs(
                name="scripts",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=f"{s.name}-cluster-scripts", default_mode=0o555),
            ),
            # Memory-backed: the copied files hold passwords and never touch the node's disk.
            k8s.core.v1.VolumeArgs(
                name="conf", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="16Mi")
            ),
        ]
        if s.exporter:
            containers.append(self._exporter())
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name="exporter-auth",
                    secret=k8s.core.v1.SecretVolumeSourceArgs(
                        secret_name=f"{s.name}-cluster-exporter", default_mode=0o440
                    ),
                )
            )
        init = k8s.core.v1.ContainerArgs(
            name="config",
            image=s.redis_image,
            command=[
                "sh",
                "-c",
                "; ".join(
                    [
                        "set -eu",
                        "umask 077",
                        f'cp "{CONFIG_SOURCE_DIR}/$POD_NAME.redis.conf" {CONF_DIR}/redis.conf',
                        f"cp {CONFIG_SOURCE_DIR}/users.acl {CONF_DIR}/users.acl",
                    ]
                ),
            ],
            env=[pods.pod_name_env()],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="config-source", mount_path=CONFIG_SOURCE_DIR, read_only=True),
                k8s.core.v1.VolumeMountArgs(name="conf", mount_path=CONF_DIR),
            ],
            resources=pods.small_resources(),
            security_context=pods.container_security_context(),
        )
        claim = k8s.core.v1.PersistentVolumeClaimArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=pods.labels(s, CLUSTER)),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=s.storage_class or None,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": s.storage_size}),
            ),
        )
        return k8s.apps.v1.StatefulSet(
            f"{self._name}-statefulset",
            metadata=self._meta(f"{s.name}-cluster", CLUSTER),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=f"{s.name}-cluster-headless",
                replicas=len(self._args.cluster.nodes),
                # Cluster nodes need no start-up order; all must run before the Job.
                pod_management_policy="Parallel",
                update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
                selector=pods.selector(s, CLUSTER),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=pods.labels(s, CLUSTER),
                        annotations={CONFIG_CHECKSUM: config_checksum, SCRIPTS_CHECKSUM: scripts_checksum},
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        enable_service_links=False,
                        termination_grace_period_seconds=30,
                        security_context=pods.pod_security_context(),
                        affinity=self._affinity(),
                        init_containers=[init],
                        containers=containers,
                        volumes=volumes,
                    ),
                ),
                volume_claim_templates=[claim],
            ),
            opts=self._child(),
        )

    def _affinity(self) -> k8s.core.v1.AffinityArgs:
        """Spread the nodes over Kubernetes nodes. Preferred, not required: six or more
        cluster pods would otherwise need as many Kubernetes nodes to schedule at all."""
        return k8s.core.v1.AffinityArgs(
            pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
                preferred_during_scheduling_ignored_during_execution=[
                    k8s.core.v1.WeightedPodAffinityTermArgs(
                        weight=100,
                        pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                            label_selector=pods.selector(self._s, CLUSTER),
                            topology_key=pods.HOSTNAME_TOPOLOGY_KEY,
                        ),
                    )
                ]
            )
        )

    def _exporter(self) -> k8s.core.v1.ContainerArgs:
        s = self._s
        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="metrics")
        return k8s.core.v1.ContainerArgs(
            name="exporter",
            image=s.exporter_image,
            env=[
                # Each sidecar watches its own pod's node, whatever its role.
                k8s.core.v1.EnvVarArgs(name="REDIS_ADDR", value=f"redis://localhost:{s.port}"),
                k8s.core.v1.EnvVarArgs(name="REDIS_USER", value="exporter"),
                # A file, not an environment variable: `kubectl describe` shows neither.
                k8s.core.v1.EnvVarArgs(
                    name="REDIS_PASSWORD_FILE", value=f"{EXPORTER_AUTH_DIR}/{EXPORTER_PASSWORD_FILE}"
                ),
                k8s.core.v1.EnvVarArgs(name="REDIS_EXPORTER_WEB_LISTEN_ADDRESS", value=f":{s.exporter_port}"),
            ],
            ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=s.exporter_port, protocol="TCP")],
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=10, timeout_seconds=3),
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=15, timeout_seconds=5, failure_threshold=4
            ),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="exporter-auth", mount_path=EXPORTER_AUTH_DIR, read_only=True)
            ],
            resources=pods.small_resources(cpu_limit="200m", memory="64Mi"),
            security_context=pods.container_security_context(),
        )

    def _create_job(
        self, job_name: str, scripts_checksum: str, statefulset: k8s.apps.v1.StatefulSet
    ) -> k8s.batch.v1.Job:
        """Runs the creation script once the StatefulSet is ready (Pulumi waits for
        both); `pulumi up` fails when the Job does."""
        s = self._s
        wait = rendering.cluster_create_wait_seconds(s)
        job = k8s.core.v1.ContainerArgs(
            name=CREATE,
            image=s.redis_image,
            command=["sh", f"{SCRIPTS_DIR}/{CREATE_SCRIPT}"],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="scripts", mount_path=SCRIPTS_DIR, read_only=True),
                k8s.core.v1.VolumeMountArgs(name="auth", mount_path=AUTH_DIR, read_only=True),
            ],
            resources=pods.small_resources(),
            security_context=pods.container_security_context(),
        )
        return k8s.batch.v1.Job(
            f"{self._name}-create",
            metadata=self._meta(job_name, CREATE),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=3,
                # The script gives up on its own after `wait`; a stuck pod is stopped here.
                active_deadline_seconds=4 * (wait + 60),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=pods.labels(s, CREATE), annotations={SCRIPTS_CHECKSUM: scripts_checksum}
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        automount_service_account_token=False,
                        # Service links would inject REDIS_HA_CLUSTER_* variables, which
                        # the script reads as overrides.
                        enable_service_links=False,
                        security_context=pods.pod_security_context(),
                        containers=[job],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="scripts",
                                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                    name=f"{s.name}-cluster-scripts", default_mode=0o555
                                ),
                            ),
                            k8s.core.v1.VolumeArgs(
                                name="auth",
                                secret=k8s.core.v1.SecretVolumeSourceArgs(
                                    secret_name=self._config_secret,
                                    default_mode=0o440,
                                    items=[
                                        k8s.core.v1.KeyToPathArgs(
                                            key=rendering.ADMIN_PASSWORD_FILE, path=rendering.ADMIN_PASSWORD_FILE
                                        )
                                    ],
                                ),
                            ),
                        ],
                    ),
                ),
            ),
            opts=self._child([statefulset]),
        )

    # --- PDB, NetworkPolicy ------------------------------------------------------------

    def _disruption_budget(self) -> None:
        s = self._s
        # One node at a time: a drained master's replica takes over before the next goes.
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-pdb",
            metadata=self._meta(f"{s.name}-cluster", CLUSTER),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(max_unavailable=1, selector=pods.selector(s, CLUSTER)),
            opts=self._child(),
        )

    def _network_policy(self) -> None:
        s = self._s
        nodes = k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=pods.selector(s, CLUSTER))

        def tcp(port: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
            return [k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)]

        rules = [
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    nodes,
                    k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=pods.selector(s, CREATE)),
                    # Application pods opt in with the client label, in any namespace.
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods.client_label(s)),
                    ),
                ],
                ports=tcp(s.port),
            ),
            # The cluster bus: gossip and failover votes between the nodes only.
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[nodes], ports=tcp(s.bus_port)),
        ]
        if s.exporter:
            rules.append(
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[
                        k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
                        k8s.networking.v1.NetworkPolicyPeerArgs(
                            namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                            pod_selector=k8s.meta.v1.LabelSelectorArgs(
                                match_labels={"app.kubernetes.io/name": "prometheus"}
                            ),
                        ),
                    ],
                    ports=tcp(s.exporter_port),
                )
            )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-ingress",
            metadata=self._meta(f"{s.name}-cluster", CLUSTER),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=pods.selector(s, CLUSTER), policy_types=["Ingress"], ingress=rules
            ),
            opts=self._child(),
        )
