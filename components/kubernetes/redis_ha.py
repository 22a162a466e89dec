"""`RedisHA` on Kubernetes: a namespace, a StatefulSet of Redis nodes (each with the
redis_exporter as a sidecar), a StatefulSet of Sentinels, their Services, PDBs and
NetworkPolicies, and the Secrets holding every rendered file, all children of one
component.

Every file with a password or a password hash is a Secret. Each pod gets its own
rendered files (replica-announce-ip and sentinel announce-ip name the pod), stored as
`<pod>.<file>` keys; an init container copies the pod's files into a writable
memory-backed emptyDir, because Redis and Sentinel rewrite their config through a
temp file in the same directory (REDIS_NOTES 5). The Redis container runs
redis-start.sh, which asks the Sentinels for the current master before starting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import rendering
from components.credentials import with_passwords
from components.kubernetes import monitoring, pods
from components.kubernetes.certificates import NodeCertificate, issue_node_certificate
from components.outputs import describe_deployment
from components.settings import Settings
from components.topology import REDIS, SENTINEL, Node, SentinelTopology

CONF_DIR = "/etc/redis-ha"
DATA_DIR = "/data"
PATHS = rendering.Paths(conf_dir=CONF_DIR, data_dir=DATA_DIR)
# Sentinel keeps no data of its own; its working directory is its config directory.
SENTINEL_PATHS = rendering.Paths(conf_dir=CONF_DIR, data_dir=CONF_DIR)
SCRIPTS_DIR = "/opt/redis-ha"
# Where the init containers see the Secrets they copy from.
CONFIG_SOURCE_DIR = "/run/redis-ha/config"
TLS_SOURCE_DIR = "/run/redis-ha/tls"
# The exporter sidecar reads the CA certificate straight from the TLS Secret.
EXPORTER_TLS_DIR = "/run/redis-ha/tls"
TLS_FILES = ("ca.crt", "tls.crt", "tls.key")
START_SCRIPT = "redis-start.sh"
REDIS_HEALTHCHECK = "redis-healthcheck.sh"
SENTINEL_HEALTHCHECK = "sentinel-healthcheck.sh"
# Annotations that change, and so roll the pods, when their files change.
CONFIG_CHECKSUM = "redis-ha/config-checksum"
SCRIPTS_CHECKSUM = "redis-ha/scripts-checksum"
# Pod Security Standard the namespace enforces; every pod here meets it.
POD_SECURITY = "restricted"


@dataclass(frozen=True)
class RedisHAArgs:
    settings: Settings
    topology: SentinelTopology
    # user -> secret password (from components.credentials)
    passwords: Mapping[str, pulumi.Output[str]]


def _with_passwords(args: RedisHAArgs, render: Any) -> pulumi.Output[Any]:
    """`render(passwords)` inside an apply, as a secret Output."""
    return with_passwords(args.passwords, render)


def _checksum(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def testinfra_host(settings: Settings, topology: SentinelTopology, node: Node) -> str:
    """`kubectl://` URL of the container that runs `node`; the exporter runs beside
    every Redis node, the first one stands for it."""
    pod, container = node.name, node.kind
    if node.kind not in (REDIS, SENTINEL):
        pod = topology.redis_nodes[0].name
    return f"kubectl://{pod}?namespace={settings.namespace}&container={container}"


class RedisHA(pulumi.ComponentResource):
    """A Redis master, its replicas, the Sentinels and the exporter on Kubernetes."""

    namespace: pulumi.Output[str]
    """the namespace every resource lives in"""
    sentinel_service: pulumi.Output[str]
    """host:port of the Sentinel client Service, for master discovery"""
    deployment: pulumi.Output[dict[str, Any]]
    """the stack-output description of the deployment (no secrets)"""

    def __init__(self, name: str, args: RedisHAArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("redis-ha:kubernetes:RedisHA", name, None, opts)
        s, topo = args.settings, args.topology
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self)

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
            opts=child,
        )
        self._ns = ns.metadata.name

        certificate = issue_node_certificate(name, s, self) if s.tls else None
        if certificate is not None:
            self._tls_secrets(certificate)

        redis_files = _with_passwords(args, self._redis_secret_data)
        sentinel_files = _with_passwords(args, self._sentinel_secret_data)
        self._secret(f"{name}-redis-config", f"{s.name}-redis", REDIS, redis_files)
        self._secret(f"{name}-sentinel-config", f"{s.name}-sentinel", SENTINEL, sentinel_files)
        if s.exporter:
            self._secret(
                f"{name}-exporter-auth",
                f"{s.name}-exporter",
                REDIS,
                pulumi.Output.secret(args.passwords["exporter"].apply(lambda p: {"password": p})),
            )

        scripts = self._scripts()
        k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata=self._meta(f"{s.name}-scripts", REDIS),
            data=scripts,
            opts=child,
        )

        tls_checksum: list[pulumi.Output[str]] = []
        if certificate is not None:
            tls_checksum = [certificate.ca_cert_pem, certificate.cert_pem]

        def config_checksum(files: pulumi.Output[dict[str, str]]) -> pulumi.Output[str]:
            return pulumi.Output.secret(pulumi.Output.all(files, *tls_checksum).apply(_checksum))

        # Redis pods are named from 0 and are reached by their stable hostnames under
        # a headless Service that publishes them before they are ready: replicas and
        # Sentinels must resolve a master that is still loading its data.
        self._service(f"{name}-redis-headless", f"{s.name}-redis-headless", REDIS, s.port, headless=True)
        redis_set = self._redis_statefulset(config_checksum(redis_files), _checksum(scripts))
        self._service(
            f"{name}-sentinel-headless", f"{s.name}-sentinel-headless", SENTINEL, s.sentinel_port, headless=True
        )
        self._service(f"{name}-sentinel", f"{s.name}-sentinel", SENTINEL, s.sentinel_port, headless=False)
        # Sentinel refuses to start while the monitored hostname does not resolve.
        self._sentinel_statefulset(config_checksum(sentinel_files), _checksum(scripts), redis_set)
        if s.exporter:
            # Named like the topology's exporter node, so its hostname resolves in the namespace.
            self._service(
                f"{name}-exporter", f"{s.name}-exporter", REDIS, s.exporter_port, headless=False, port_name="metrics"
            )

        self._disruption_budgets()
        self._network_policies()
        if s.monitoring:
            monitoring.deploy_monitoring(name, s, self._ns, self)

        self.namespace = self._ns
        self.sentinel_service = pulumi.Output.from_input(
            f"{s.name}-sentinel.{s.namespace}.svc.cluster.local:{s.sentinel_port}"
        )
        self.deployment = pulumi.Output.from_input(
            describe_deployment(s, topo, lambda n: testinfra_host(s, topo, n), PATHS.conf_dir)
        )
        self.register_outputs(
            {"namespace": self.namespace, "sentinel_service": self.sentinel_service, "deployment": self.deployment}
        )

    # --- metadata and files ------------------------------------------------------

    @property
    def _s(self) -> Settings:
        return self._args.settings

    def _meta(self, resource_name: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=resource_name, namespace=self._ns, labels=pods.labels(self._s, component)
        )

    def _child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on or [])

    def _redis_secret_data(self, passwords: dict[str, str]) -> dict[str, str]:
        s, topo = self._s, self._args.topology
        data = {
            rendering.ADMIN_PASSWORD_FILE: passwords["admin"],
            rendering.SENTINEL_CLIENT_PASSWORD_FILE: passwords["sentinel-client"],
        }
        for node in topo.redis_nodes:
            files = rendering.render_node_files(s, topo, node, passwords, PATHS)
            data[f"{node.name}.redis.conf"] = files["redis.conf"]
            data["users.acl"] = files["users.acl"]  # the same on every node
        return data

    def _sentinel_secret_data(self, passwords: dict[str, str]) -> dict[str, str]:
        s, topo = self._s, self._args.topology
        return {
            f"{node.name}.sentinel.conf": rendering.render_sentinel_conf(s, topo, node, passwords, SENTINEL_PATHS)
            for node in topo.sentinels
        }

    def _secret(
        self, resource: str, secret_name: str, component: str, data: pulumi.Output[dict[str, str]]
    ) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            resource,
            metadata=self._meta(secret_name, component),
            type="Opaque",
            string_data=data,
            opts=self._child(),
        )

    def _tls_secrets(self, certificate: NodeCertificate) -> None:
        s = self._s
        pems: pulumi.Output[Any] = pulumi.Output.all(
            certificate.ca_cert_pem, certificate.cert_pem, certificate.key_pem
        ).apply(lambda values: dict(zip(TLS_FILES, values, strict=True)))
        k8s.core.v1.Secret(
            f"{self._name}-tls",
            metadata=self._meta(f"{s.name}-tls", REDIS),
            type="kubernetes.io/tls",
            string_data=pulumi.Output.secret(pems),
            opts=self._child(),
        )
        # The CA certificate alone, for application pods to mount.
        k8s.core.v1.Secret(
            f"{self._name}-ca",
            metadata=self._meta(f"{s.name}-ca", REDIS),
            type="Opaque",
            string_data={"ca.crt": certificate.ca_cert_pem},
            opts=self._child(),
        )

    def _scripts(self) -> dict[str, str]:
        """Scripts hold no secret: passwords are read from the copied files at run time."""
        s, topo = self._s, self._args.topology

        def any_pod(node: Node) -> Node:
            return dataclasses.replace(node, name=f"{s.name}-{node.kind}-*")

        return {
            START_SCRIPT: rendering.render_start_script(s, topo, PATHS),
            REDIS_HEALTHCHECK: rendering.render_healthcheck(any_pod(topo.redis_nodes[0]), PATHS, s.tls),
            SENTINEL_HEALTHCHECK: rendering.render_healthcheck(any_pod(topo.sentinels[0]), SENTINEL_PATHS, s.tls),
        }

    # --- pods --------------------------------------------------------------------

    def _init_config(self, files: list[str], per_pod: str) -> k8s.core.v1.ContainerArgs:
        """Copies this pod's rendered files (and the TLS key pair) into the writable
        config directory; a container restart keeps what Redis/Sentinel rewrote."""
        copies = [f'cp "{CONFIG_SOURCE_DIR}/$POD_NAME.{per_pod}" {CONF_DIR}/{per_pod}']
        copies += [f"cp {CONFIG_SOURCE_DIR}/{f} {CONF_DIR}/{f}" for f in files]
        mounts = [
            k8s.core.v1.VolumeMountArgs(name="config-source", mount_path=CONFIG_SOURCE_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="conf", mount_path=CONF_DIR),
        ]
        if self._s.tls:
            copies += [f"cp {TLS_SOURCE_DIR}/{f} {CONF_DIR}/{f}" for f in TLS_FILES]
            mounts.append(k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_SOURCE_DIR, read_only=True))
        return k8s.core.v1.ContainerArgs(
            name="config",
            image=self._s.redis_image,
            command=["sh", "-c", "; ".join(["set -eu", "umask 077", *copies])],
            env=[pods.pod_name_env()],
            volume_mounts=mounts,
            resources=pods.small_resources(),
            security_context=pods.container_security_context(),
        )

    def _volumes(self, config_secret: str) -> list[k8s.core.v1.VolumeArgs]:
        s = self._s
        volumes = [
            k8s.core.v1.VolumeArgs(
                name="config-source",
                secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=config_secret, default_mode=0o440),
            ),
            k8s.core.v1.VolumeArgs(
                name="scripts",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=f"{s.name}-scripts", default_mode=0o555),
            ),
            # Memory-backed: the copied files hold passwords and never touch the node's disk.
            k8s.core.v1.VolumeArgs(
                name="conf", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="16Mi")
            ),
        ]
        if s.tls:
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name="tls",
                    secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=f"{s.name}-tls", default_mode=0o440),
                )
            )
        return volumes

    def _statefulset(
        self,
        component: str,
        other: str,
        replicas: int,
        containers: list[k8s.core.v1.ContainerArgs],
        init: k8s.core.v1.ContainerArgs,
        volumes: list[k8s.core.v1.VolumeArgs],
        annotations: Mapping[str, pulumi.Input[str]],
        depends_on: list[pulumi.Resource],
        grace_seconds: int,
        claims: list[k8s.core.v1.PersistentVolumeClaimArgs] | None = None,
    ) -> k8s.apps.v1.StatefulSet:
        s = self._s
        return k8s.apps.v1.StatefulSet(
            f"{self._name}-{component}",
            metadata=self._meta(f"{s.name}-{component}", component),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=f"{s.name}-{component}-headless",
                replicas=replicas,
                # Each pod decides its own role (or is a Sentinel): no start-up ordering needed,
                # and a pod that cannot become ready does not block its siblings.
                pod_management_policy="Parallel",
                update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
                selector=pods.selector(s, component),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pods.labels(s, component), annotations=annotations),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        # Service links would inject REDIS_HA_*-style variables that the
                        # start script reads as overrides.
                        enable_service_links=False,
                        termination_grace_period_seconds=grace_seconds,
                        security_context=pods.pod_security_context(),
                        affinity=pods.anti_affinity(s, component, other),
                        init_containers=[init],
                        containers=containers,
                        volumes=volumes,
                    ),
                ),
                volume_claim_templates=claims,
            ),
            opts=self._child(depends_on),
        )

    def _redis_statefulset(self, config_checksum: pulumi.Output[str], scripts_checksum: str) -> k8s.apps.v1.StatefulSet:
        s = self._s
        healthcheck = f"{SCRIPTS_DIR}/{REDIS_HEALTHCHECK}"
        redis = k8s.core.v1.ContainerArgs(
            name="redis",
            image=s.redis_image,
            command=["sh", f"{SCRIPTS_DIR}/{START_SCRIPT}"],
            env=[pods.pod_name_env(), pods.pod_ip_env()],
            ports=[k8s.core.v1.ContainerPortArgs(name="redis", container_port=s.port, protocol="TCP")],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="conf", mount_path=CONF_DIR),
                k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_DIR),
                k8s.core.v1.VolumeMountArgs(name="scripts", mount_path=SCRIPTS_DIR, read_only=True),
            ],
            # Loading a large AOF can take minutes; liveness starts only once started.
            startup_probe=pods.exec_probe(healthcheck, period=5, timeout=3, failures=120),
            readiness_probe=pods.exec_probe(healthcheck, period=5, timeout=3, failures=3),
            liveness_probe=pods.exec_probe(healthcheck, period=10, timeout=5, failures=6),
            lifecycle=k8s.core.v1.LifecycleArgs(
                pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                    exec_=k8s.core.v1.ExecActionArgs(command=["sh", f"{SCRIPTS_DIR}/{START_SCRIPT}", "prestop"])
                )
            ),
            resources=pods.redis_resources(s),
            security_context=pods.container_security_context(),
        )
        containers = [redis]
        volumes = self._volumes(f"{s.name}-redis")
        if s.exporter:
            containers.append(self._exporter())
        claim = k8s.core.v1.PersistentVolumeClaimArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=pods.labels(s, REDIS)),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=s.storage_class or None,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": s.storage_size}),
            ),
        )
        return self._statefulset(
            REDIS,
            SENTINEL,
            len(self._args.topology.redis_nodes),
            containers,
            self._init_config(
                ["users.acl", rendering.ADMIN_PASSWORD_FILE, rendering.SENTINEL_CLIENT_PASSWORD_FILE], "redis.conf"
            ),
            volumes,
            {CONFIG_CHECKSUM: config_checksum, SCRIPTS_CHECKSUM: scripts_checksum},
            depends_on=[],
            # preStop waits for the hand-over, then Redis writes its AOF/RDB on SIGTERM.
            grace_seconds=rendering.failover_wait_seconds(s) + 30,
            claims=[claim],
        )

    def _exporter(self) -> k8s.core.v1.ContainerArgs:
        s = self._s
        scheme: str = "redis"
        args: list[str] | None = None
        mounts: list[k8s.core.v1.VolumeMountArgs] | None = None
        if s.tls:
            scheme = "rediss"
            args = [f"--tls-ca-cert-file={EXPORTER_TLS_DIR}/ca.crt"]
            mounts = [k8s.core.v1.VolumeMountArgs(name="tls", mount_path=EXPORTER_TLS_DIR, read_only=True)]
        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="metrics")
        return k8s.core.v1.ContainerArgs(
            name="exporter",
            image=s.exporter_image,
            args=args,
            env=[
                # Each sidecar watches its own pod's Redis, whatever its role.
                k8s.core.v1.EnvVarArgs(name="REDIS_ADDR", value=f"{scheme}://localhost:{s.port}"),
                k8s.core.v1.EnvVarArgs(name="REDIS_USER", value="exporter"),
                k8s.core.v1.EnvVarArgs(
                    name="REDIS_PASSWORD",
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=f"{s.name}-exporter", key="password")
                    ),
                ),
                k8s.core.v1.EnvVarArgs(name="REDIS_EXPORTER_WEB_LISTEN_ADDRESS", value=f":{s.exporter_port}"),
            ],
            ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=s.exporter_port, protocol="TCP")],
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=10, timeout_seconds=3),
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=15, timeout_seconds=5, failure_threshold=4
            ),
            volume_mounts=mounts,
            resources=pods.small_resources(cpu_limit="200m", memory="64Mi"),
            security_context=pods.container_security_context(),
        )

    def _sentinel_statefulset(
        self, config_checksum: pulumi.Output[str], scripts_checksum: str, redis_set: k8s.apps.v1.StatefulSet
    ) -> k8s.apps.v1.StatefulSet:
        s = self._s
        healthcheck = f"{SCRIPTS_DIR}/{SENTINEL_HEALTHCHECK}"
        sentinel = k8s.core.v1.ContainerArgs(
            name="sentinel",
            image=s.redis_image,
            command=["redis-server", f"{CONF_DIR}/sentinel.conf", "--sentinel"],
            ports=[k8s.core.v1.ContainerPortArgs(name="sentinel", container_port=s.sentinel_port, protocol="TCP")],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="conf", mount_path=CONF_DIR),
                k8s.core.v1.VolumeMountArgs(name="scripts", mount_path=SCRIPTS_DIR, read_only=True),
            ],
            readiness_probe=pods.exec_probe(healthcheck, period=5, timeout=3, failures=3),
            liveness_probe=pods.exec_probe(healthcheck, period=10, timeout=5, failures=6, initial_delay=10),
            resources=pods.small_resources(cpu_limit="250m", memory="128Mi"),
            security_context=pods.container_security_context(),
        )
        return self._statefulset(
            SENTINEL,
            REDIS,
            len(self._args.topology.sentinels),
            [sentinel],
            self._init_config([], "sentinel.conf"),
            self._volumes(f"{s.name}-sentinel"),
            {CONFIG_CHECKSUM: config_checksum, SCRIPTS_CHECKSUM: scripts_checksum},
            depends_on=[redis_set],
            grace_seconds=30,
        )

    # --- Services, PDBs, NetworkPolicies -------------------------------------------

    def _service(
        self, resource: str, service_name: str, component: str, port: int, headless: bool, port_name: str = ""
    ) -> k8s.core.v1.Service:
        port_name = port_name or component
        return k8s.core.v1.Service(
            resource,
            metadata=self._meta(service_name, component),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                cluster_ip="None" if headless else None,
                publish_not_ready_addresses=True if headless else None,
                selector=pods.selector_labels(self._s, component),
                ports=[k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=port_name, protocol="TCP")],
            ),
            opts=self._child(),
        )

    def _disruption_budgets(self) -> None:
        s = self._s
        # One Redis node at a time: a drained master hands over in preStop first.
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-redis-pdb",
            metadata=self._meta(f"{s.name}-redis", REDIS),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(max_unavailable=1, selector=pods.selector(s, REDIS)),
            opts=self._child(),
        )
        # Voluntary disruptions never take the Sentinels below quorum.
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-sentinel-pdb",
            metadata=self._meta(f"{s.name}-sentinel", SENTINEL),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(min_available=s.quorum, selector=pods.selector(s, SENTINEL)),
            opts=self._child(),
        )

    def _network_policies(self) -> None:
        s = self._s
        peers = [
            k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=pods.selector(s, SENTINEL)),
            k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=pods.selector(s, REDIS)),
            # Application pods opt in with the client label, in this or any namespace;
            # the ACL users still decide what they may do.
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods.client_label(s)),
            ),
        ]

        def tcp(port: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
            return [k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)]

        redis_rules = [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=peers, ports=tcp(s.port))]
        if s.exporter:
            redis_rules.append(
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[
                        # Anything in this namespace, or a Prometheus anywhere.
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
        for component, rules in (
            (REDIS, redis_rules),
            (SENTINEL, [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=peers, ports=tcp(s.sentinel_port))]),
        ):
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{component}-ingress",
                metadata=self._meta(f"{s.name}-{component}", component),
                spec=k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=pods.selector(s, component),
                    policy_types=["Ingress"],
                    ingress=rules,
                ),
                opts=self._child(),
            )
