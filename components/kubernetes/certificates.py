"""TLS for the prod backend: a private CA and one certificate every node presents.

One certificate for all pods (wildcards under the two headless Services) keeps the
Secret count at one and lets a rescheduled pod keep its identity. The CA key lives
only in the Pulumi state (a secret); the cluster gets the CA certificate and the node
key pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls
from redis_ha.components.settings import Settings

# The CA outlives node certificates so that renewing a node certificate never
# requires handing clients a new CA.
CA_VALIDITY_HOURS = 10 * 365 * 24
NODE_VALIDITY_HOURS = 365 * 24
NODE_EARLY_RENEWAL_HOURS = 30 * 24


@dataclass(frozen=True)
class NodeCertificate:
    """PEM material for the `<name>-tls` Secret."""

    ca_cert_pem: pulumi.Output[str]
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret


def service_dns_names(settings: Settings) -> list[str]:
    """Every name a client or peer uses to reach a Redis node or a Sentinel."""
    domain = f"{settings.namespace}.svc.cluster.local"
    names = [
        f"*.{settings.name}-redis-headless.{domain}",
        f"*.{settings.name}-sentinel-headless.{domain}",
    ]
    service = f"{settings.name}-sentinel"
    names += [service, f"{service}.{settings.namespace}", f"{service}.{settings.namespace}.svc", f"{service}.{domain}"]
    # In-pod clients (probes, the exporter sidecar, the preStop hook) use localhost.
    names.append("localhost")
    return names


def issue_node_certificate(name: str, settings: Settings, parent: pulumi.Resource) -> NodeCertificate:
    """Create the CA and the node certificate as children of `parent`."""
    child = pulumi.ResourceOptions(parent=parent)
    ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
    ca = tls.SelfSignedCert(
        f"{name}-ca",
        private_key_pem=ca_key.private_key_pem,
        is_ca_certificate=True,
        validity_period_hours=CA_VALIDITY_HOURS,
        allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
        subject=tls.SelfSignedCertSubjectArgs(common_name=f"{settings.name} CA", organization="redis-ha"),
        opts=child,
    )
    node_key = tls.PrivateKey(f"{name}-node-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
    request = tls.CertRequest(
        f"{name}-node-csr",
        private_key_pem=node_key.private_key_pem,
        dns_names=service_dns_names(settings),
        ip_addresses=["127.0.0.1"],
        subject=tls.CertRequestSubjectArgs(
            common_name=f"{settings.name}.{settings.namespace}", organization="redis-ha"
        ),
        opts=child,
    )
    node = tls.LocallySignedCert(
        f"{name}-node-cert",
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca_key.private_key_pem,
        ca_cert_pem=ca.cert_pem,
        validity_period_hours=NODE_VALIDITY_HOURS,
        early_renewal_hours=NODE_EARLY_RENEWAL_HOURS,
        # Sentinel and replicas present the same certificate as TLS clients.
        allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
        opts=child,
    )
    return NodeCertificate(
        ca_cert_pem=ca.cert_pem,
        cert_pem=node.cert_pem,
        key_pem=pulumi.Output.secret(node_key.private_key_pem),
    )
