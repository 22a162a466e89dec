"""The prod backend: every group of a plan part as a StatefulSet (pulumi-kubernetes).

Per part: the namespace (unless a part before it made one), a Secret per group with
every rendered file (they hold passwords or hashes), a ConfigMap with the plain
scripts, per group a headless Service (peers resolve pods that are not ready yet),
a client Service where applications connect, a StatefulSet, a PodDisruptionBudget
and a NetworkPolicy; each exporter as a sidecar of the group it watches (the Redis
nodes, the Sentinels, the cluster nodes), with its own Service; a one-shot step as
a Job; TLS material and monitoring resources when set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from redis_ha.components.backend import DEFAULT_PLACEMENT, Descriptions, PartArgs, Passwords, Placement, digest
from redis_ha.components.credentials import with_passwords
from redis_ha.components.kubernetes import monitoring, network, pods, workloads
from redis_ha.components.kubernetes.backup import deploy_backup
from redis_ha.components.kubernetes.certificates import issue_node_certificate
from redis_ha.components.kubernetes.layout import (
    CONFIG_CHECKSUM,
    EXPORTER_PASSWORD_FILE,
    POD_SECURITY,
    SCRIPTS_CHECKSUM,
    TLS_FILES,
    VERSION_FILE,
    headless_service,
    service_host,
    testinfra_host,
)
from redis_ha.components.plan import ADMIN_PASSWORD_FILE, Exporter, Group, Part, shared_keys
from redis_ha.components.security import SENTINEL_CLIENT, without_secrets
from redis_ha.components.settings import Settings
from redis_ha.components.topology import Node


def job_name(part: Part) -> str:
    """The one-shot step's name carries a digest of its files, whose node.env lists the
    desired nodes: a scale-out makes a new Job, an unchanged stack leaves the finished one alone.
    At most 40 + 16 + 7 = 63 characters: the Job's name is also a label value."""
    assert part.job is not None
    return f"{part.name}-create-{digest(dict(part.job.files))[:7]}"


class _KubernetesPart(pulumi.ComponentResource):
    TYPE = ""
    namespace: pulumi.Output[str]
    """the namespace every resource lives in"""
    client_service: pulumi.Output[str]
    """host:port of the Service applications connect to (Sentinels, cluster seeds)"""
    deployment: pulumi.Output[dict[str, Any]]
    """the stack-output description of the part (no secrets)"""
    role_secrets: dict[str, k8s.core.v1.Secret]
    """application role -> its Secret `<name>-<role>` (empty unless PartArgs.role_secrets)"""

    def __init__(self, name: str, args: PartArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        self._name, self._args = name, args
        s, part = args.settings, args.part
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
                opts=self._child(),
            )
            self._ns: pulumi.Output[str] = ns.metadata.name
        else:
            self._ns = pulumi.Output.from_input(args.namespace)
        self._meta = network.Metadata(s, self._ns)

        tls: list[pulumi.Output[str]] = []
        # With tlsSecret the user's Secret is mounted as it is (workloads.py): no
        # certificate is generated, and none is in the state.
        if s.tls and part.kind == "sentinel" and not s.tls_secret:
            certificate = issue_node_certificate(name, s, self)
            self._tls_secrets(certificate.ca_cert_pem, certificate.cert_pem, certificate.key_pem)
            tls = [certificate.ca_cert_pem, certificate.cert_pem]

        for group in part.groups:
            self._config_secret(group)
        for exporter in part.exporters:
            self._exporter_secret(exporter)
        scripts: dict[str, str] = {}
        for group in part.groups:
            scripts.update(shared_keys(group.scripts(), group.env_key))
        if part.job is not None:
            scripts.update(shared_keys(part.job.files, part.job.env_key))
        k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata=self._meta(workloads.scripts_config_map(part), part.groups[0].kind),
            data=scripts,
            opts=self._child(),
        )

        sets: dict[str, k8s.apps.v1.StatefulSet] = {}
        for group in part.groups:
            network.group_services(self._meta, s, part, group, self._child)
            sets[group.kind] = self._statefulset(group, tls, [sets[k] for k in group.after])
            network.disruption_budget(self._meta, s, group, self._child())
            network.network_policy(self._meta, s, part, group, self._child())
        create_step = ""
        if part.job is not None:
            create_step = job_name(part)
            component = f"{part.kind}-create"
            k8s.batch.v1.Job(
                f"{name}-create",
                metadata=self._meta(create_step, component),
                spec=workloads.job_spec(s, part, part.job, component, digest(scripts), SCRIPTS_CHECKSUM),
                opts=self._child([sets[k] for k in part.job.after]),
            )
        backup_at = {}
        if part.backup is not None:
            deploy_backup(self._meta, s, part, part.backup, args.passwords, self._child)
            backup_at = {"cronJob": part.backup.name, "namespace": s.namespace}
        if s.monitoring and part.exporters:
            monitoring.deploy_monitoring(name, s, self._ns, self, part.exporters, with_files=args.monitoring_files)

        self.role_secrets = self._role_secrets() if args.role_secrets else {}

        client = next(g for g in part.groups if g.client_service)
        self.namespace = self._ns
        self.client_service = pulumi.Output.from_input(
            f"{service_host(s, network.client_service_name(s, client))}:{client.ports[0][1]}"
        )
        self.deployment = pulumi.Output.from_input(part.describe(s, self._testinfra_host, create_step, backup_at))
        self.register_outputs(
            {"namespace": self.namespace, "client_service": self.client_service, "deployment": self.deployment}
        )

    def _child(self, depends_on: list[pulumi.Resource] | None = None, **extra: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on or [], **extra)

    def _testinfra_host(self, node: Node) -> str:
        """`kubectl://` URL of the container that runs `node`; the exporter runs beside
        every node of its group, the first pod stands for it."""
        part, s = self._args.part, self._args.settings
        for exporter in part.exporters:
            if node == exporter.node:
                return testinfra_host(s, exporter.targets[0].name, "exporter")
        return testinfra_host(s, node.name, part.group_of(node).process)

    def _exporter_secret(self, exporter: Exporter) -> None:
        """The password file of the exporter sidecars: one entry, their own pod's node."""
        part = self._args.part
        port = part.group(exporter.watches).ports[0][1]
        files = self._args.passwords[exporter.user].apply(
            lambda p: {EXPORTER_PASSWORD_FILE: json.dumps({f"redis://localhost:{port}": p})}
        )
        # The Redis (or cluster) exporter's resource kept its name from before the
        # Sentinels had one.
        resource = f"{self._name}-exporter-auth"
        if exporter.watches == "sentinel":
            resource = f"{self._name}-sentinel-exporter-auth"
        self._secret(resource, workloads.exporter_secret(exporter), exporter.watches, files)

    def _secret(
        self,
        resource: str,
        secret_name: str,
        component: str,
        data: pulumi.Input[Mapping[str, pulumi.Input[str]]],
        kind: str = "Opaque",
    ) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            resource,
            metadata=self._meta(secret_name, component),
            type=kind,
            string_data=pulumi.Output.secret(data),
            opts=self._child(),
        )

    def _role_secrets(self) -> dict[str, k8s.core.v1.Secret]:
        """Per application role a Secret `<name>-<role>` for its application pods to mount
        or read into their environment: where to connect and as whom. With the Sentinel
        group: the Sentinel client Service, the master name and the sentinel-client user
        to discover the master with, and the Redis nodes' headless Service (every Redis
        pod, a replica too: for reads, or to seed a client that asks ROLE); with a Redis
        Cluster only: the cluster's client Service as a seed. The passwords are secret."""
        s, part = self._args.settings, self._args.part
        passwords = self._args.passwords
        sentinel = part.kind == "sentinel"
        if sentinel:
            where: dict[str, pulumi.Input[str]] = {
                "host": service_host(s, headless_service(s, "redis")),
                "port": str(s.port),
                "sentinelHost": service_host(s, network.client_service_name(s, part.group("sentinel"))),
                "sentinelPort": str(s.sentinel_port),
                "masterName": s.master_name,
                "sentinelUser": SENTINEL_CLIENT.name,
                "sentinelPassword": passwords[SENTINEL_CLIENT.name],
            }
        else:
            seeds = next(g for g in part.groups if g.client_service)
            where = {"host": service_host(s, network.client_service_name(s, seeds)), "port": str(s.port)}
        if s.tls:
            # The CA certificate is in the Secret `<name>-ca` or the user's tlsSecret (key ca.crt).
            where["tls"] = "true"
            where["caSecret"] = workloads.ca_secret_name(s)
        secrets = {}
        for role in s.roles:
            data: dict[str, pulumi.Input[str]] = {**where, "user": role.name, "password": passwords[role.name]}
            secrets[role.name] = self._secret(
                f"{self._name}-{role.name}-credentials", f"{s.name}-{role.name}", "credentials", data
            )
        return secrets

    def _config_secret(self, group: Group) -> None:
        """Every pod's own `<pod>.<config file>` and the files the group shares."""
        s, part = self._args.settings, self._args.part
        job_reads_it = part.job is not None and group.kind in part.job.after

        def data(passwords: dict[str, str]) -> dict[str, str]:
            stored: dict[str, str] = {}
            for node in group.nodes:
                files = group.files(node, passwords)
                stored[f"{node.name}.{group.config_file}"] = files[group.config_file]
                stored.update({f: files[f] for f in group.shared_files})
            if job_reads_it:
                stored[ADMIN_PASSWORD_FILE] = passwords["admin"]
            # The start scripts apply the files live when this changes (the kubelet
            # updates the mounted Secret in place): docs/redis-notes.md#rotating-passwords.
            if group.paths.secrets_dir:
                stored[VERSION_FILE] = digest(stored)
            return stored

        self._secret(
            f"{s.name}-{group.kind}-config",
            workloads.config_secret(s, group),
            group.kind,
            with_passwords(self._args.passwords, data),
        )

    def _tls_secrets(self, ca: pulumi.Output[str], cert: pulumi.Output[str], key: pulumi.Output[str]) -> None:
        s = self._args.settings
        pems = pulumi.Output.all(ca, cert, key).apply(lambda values: dict(zip(TLS_FILES, values, strict=True)))
        self._secret(f"{self._name}-tls", f"{s.name}-tls", "redis", pems, kind="kubernetes.io/tls")
        # The CA certificate alone, for application pods to mount.
        k8s.core.v1.Secret(
            f"{self._name}-ca",
            metadata=self._meta(f"{s.name}-ca", "redis"),
            type="Opaque",
            string_data={"ca.crt": ca},
            opts=self._child(),
        )

    def _statefulset(
        self, group: Group, tls: list[pulumi.Output[str]], depends_on: list[k8s.apps.v1.StatefulSet]
    ) -> k8s.apps.v1.StatefulSet:
        s, part = self._args.settings, self._args.part
        # What every pod's files depend on (the first pod's files stand for the group):
        # a settings change rolls the pods, adding nodes (new `<pod>.` keys) does not.
        # Rendered with stand-in passwords: a rotation changes the Secret only, which
        # the kubelet updates in the running pods, never the pod template
        # (docs/redis-notes.md#rotating-passwords).
        files = group.files(group.nodes[0], without_secrets(self._args.passwords))
        config_checksum: pulumi.Output[str] = pulumi.Output.all(*tls).apply(lambda pems: digest([files, *pems]))
        annotations: dict[str, pulumi.Input[str]] = {
            CONFIG_CHECKSUM: config_checksum,
            SCRIPTS_CHECKSUM: digest(group.scripts()),
        }
        resource = f"{s.name}-{group.kind}"
        # Named `<part>-statefulset` before the shared plan: the alias keeps its URN.
        aliases = [pulumi.Alias(name=f"{part.name}-statefulset")] if part.kind == "cluster" else []
        return k8s.apps.v1.StatefulSet(
            resource,
            metadata=self._meta(resource, group.kind),
            spec=workloads.statefulset_spec(s, part, group, annotations),
            opts=self._child(list(depends_on), aliases=aliases),
        )


class RedisHA(_KubernetesPart):
    """A Redis master, its replicas, the Sentinels and the exporter on Kubernetes."""

    TYPE = "redis-ha:kubernetes:RedisHA"


class RedisCluster(_KubernetesPart):
    """Redis Cluster shards (a master and its replicas each) on Kubernetes."""

    TYPE = "redis-ha:kubernetes:RedisCluster"


def check(settings: Settings, parts: tuple[Part, ...]) -> None:
    """Nothing beyond the settings' own checks: the cluster places and addresses pods."""


def deploy(
    settings: Settings, parts: tuple[Part, ...], passwords: Passwords, placement: Placement = DEFAULT_PLACEMENT
) -> Descriptions:
    """One component per part, all in the placement's namespace, else in the one the
    first part creates."""
    components: list[_KubernetesPart] = []
    for part in parts:
        component = RedisHA if part.kind == "sentinel" else RedisCluster
        namespace = components[0].namespace if components else placement.namespace
        args = PartArgs(
            settings, part, passwords, namespace, monitoring_files=not components, role_secrets=part is parts[0]
        )
        components.append(component(part.name, args, placement.opts))
    return [c.deployment for c in components]


__all__ = ["RedisCluster", "RedisHA", "check", "deploy", "pods"]
