"""Services, PodDisruptionBudgets and NetworkPolicies of a plan group."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from redis_ha.components.kubernetes import pods
from redis_ha.components.kubernetes.layout import headless_service
from redis_ha.components.plan import Group, Part
from redis_ha.components.settings import Settings

_NP = k8s.networking.v1


@dataclass(frozen=True)
class Metadata:
    """ObjectMeta in the deployment's namespace with the component's labels."""

    settings: Settings
    namespace: pulumi.Input[str]

    def __call__(self, name: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=self.namespace, labels=pods.labels(self.settings, component)
        )


def client_service_name(settings: Settings, group: Group) -> str:
    return f"{settings.name}-{group.kind}"


def _service(
    meta: Metadata,
    resource: str,
    name: str,
    component: str,
    ports: tuple[tuple[str, int], ...],
    headless: bool,
    opts: pulumi.ResourceOptions,
    not_ready: bool = False,
) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        resource,
        metadata=meta(name, component),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            cluster_ip="None" if headless else None,
            # Peers must resolve a node that is not ready yet (loading its data); Prometheus
            # must scrape it (a replica out of sync is not ready, and that is worth an alert).
            publish_not_ready_addresses=True if headless or not_ready else None,
            selector=pods.selector_labels(meta.settings, component),
            ports=[
                k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=port_name, protocol="TCP")
                for port_name, port in ports
            ],
        ),
        opts=opts,
    )


def group_services(
    meta: Metadata,
    settings: Settings,
    part: Part,
    group: Group,
    child: Callable[..., pulumi.ResourceOptions],
) -> None:
    """The headless Service behind the pods' stable names, the client Service where
    applications connect, and the exporter's metrics Service (named like the exporter
    node, so its hostname resolves in the namespace)."""
    s = settings
    headless = headless_service(s, group.kind)
    _service(meta, headless, headless, group.kind, group.ports, True, child())
    if group.client_service:
        name = client_service_name(s, group)
        # The cluster's client Service was `<part>-client` before the shared plan.
        aliases = [pulumi.Alias(name=f"{part.name}-client")] if part.kind == "cluster" else []
        _service(meta, name, name, group.kind, group.ports[:1], False, child(aliases=aliases))
    exporter = part.exporter_of(group.kind)
    if exporter is not None:
        name = exporter.node.name
        ports = (("metrics", exporter.node.port),)
        _service(meta, name, name, group.kind, ports, False, child(), not_ready=True)


def disruption_budget(meta: Metadata, settings: Settings, group: Group, opts: pulumi.ResourceOptions) -> None:
    field, count = group.disruption
    max_unavailable = count if field == "maxUnavailable" else None
    min_available = count if field == "minAvailable" else None
    k8s.policy.v1.PodDisruptionBudget(
        f"{settings.name}-{group.kind}-pdb",
        metadata=meta(f"{settings.name}-{group.kind}", group.kind),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            selector=pods.selector(settings, group.kind), max_unavailable=max_unavailable, min_available=min_available
        ),
        opts=opts,
    )


def _tcp(port: int) -> list[_NP.NetworkPolicyPortArgs]:
    return [_NP.NetworkPolicyPortArgs(protocol="TCP", port=port)]


def network_policy(meta: Metadata, settings: Settings, part: Part, group: Group, opts: pulumi.ResourceOptions) -> None:
    """Ingress to the group's pods: its client port from the part's own pods and from
    application pods that carry the client label (in any namespace; the ACL users still
    decide what they may do); further ports (the cluster bus) from the group's pods
    only; the exporter's port from this namespace and any Prometheus."""
    s = settings
    kinds = [g.kind for g in part.groups] + ([f"{part.kind}-create"] if part.job is not None else [])
    if part.backup is not None:
        kinds.append(f"{part.kind}-backup")
    peers = [_NP.NetworkPolicyPeerArgs(pod_selector=pods.selector(s, kind)) for kind in kinds]
    peers.append(
        _NP.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods.client_label(s)),
        )
    )
    own = [_NP.NetworkPolicyPeerArgs(pod_selector=pods.selector(s, group.kind))]
    rules = [_NP.NetworkPolicyIngressRuleArgs(from_=peers, ports=_tcp(group.ports[0][1]))]
    rules += [_NP.NetworkPolicyIngressRuleArgs(from_=own, ports=_tcp(port)) for _, port in group.ports[1:]]
    exporter = part.exporter_of(group.kind)
    if exporter is not None:
        rules.append(
            _NP.NetworkPolicyIngressRuleArgs(
                from_=[
                    _NP.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
                    _NP.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"app.kubernetes.io/name": "prometheus"}
                        ),
                    ),
                ],
                ports=_tcp(exporter.node.port),
            )
        )
    _NP.NetworkPolicy(
        f"{s.name}-{group.kind}-ingress",
        metadata=meta(f"{s.name}-{group.kind}", group.kind),
        spec=_NP.NetworkPolicySpecArgs(
            pod_selector=pods.selector(s, group.kind), policy_types=["Ingress"], ingress=rules
        ),
        opts=opts,
    )
