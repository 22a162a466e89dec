"""The prod stack's program under Pulumi's mocks: NetworkPolicies (evaluated, not only
read), where secret material may appear, TLS, and strict validation of every manifest
against the Kubernetes OpenAPI schema shipped with kubernetes-validate (offline).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.support.prod_program import (
    CONFIGMAP,
    NETWORKPOLICY,
    SECRET,
    STATEFULSET,
    all_containers,
    container,
    k8s_resources,
    label_selector,
    manifest,
    named,
    pod_spec,
    secret_values,
    selects,
)
from tests.support.program import ProgramRun, is_secret, plain_strings
from tests.support.program import mock_pem as _pem

# The newest Kubernetes whose schemas the installed kubernetes-validate ships.
KUBERNETES_VERSION = latest_version()


def _peer_admits(peer: dict[str, Any], labels: dict[str, str], same_namespace: bool) -> bool:
    # Only matchLabels are used; an empty selector matches everything.
    if "namespaceSelector" not in peer and not same_namespace:
        return False
    if "namespaceSelector" in peer:
        assert peer["namespaceSelector"] == {}, peer  # any namespace
    pod_selector = peer.get("podSelector", {}).get("matchLabels", {})
    return all(labels.get(k) == v for k, v in pod_selector.items())


def admitted(run: ProgramRun, target: dict[str, str], port: int, labels: dict[str, str], same_ns: bool) -> bool:
    """Does any NetworkPolicy selecting `target` pods let this source in on `port`?"""
    policies = [m for m in named(run, NETWORKPOLICY).values() if selects(label_selector(NETWORKPOLICY, m), target)]
    assert policies, target
    return any(
        any(p["port"] == port for p in rule["ports"]) and any(_peer_admits(f, labels, same_ns) for f in rule["from"])
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
    )


@pytest.mark.parametrize(
    ("source", "same_namespace", "redis_port", "sentinel_port", "metrics_port"),
    [
        ("sentinel", True, True, True, True),
        ("redis", True, True, True, True),
        ("client", True, True, True, True),
        ("client", False, True, True, False),
        ("unlabelled", True, False, False, True),
        ("unlabelled", False, False, False, False),
        ("prometheus", False, False, False, True),
    ],
)
def test_network_policies_admit_only_the_intended_peers(
    prod: ProgramRun, source: str, same_namespace: bool, redis_port: bool, sentinel_port: bool, metrics_port: bool
) -> None:
    statefulsets = named(prod, STATEFULSET)
    redis_pods = statefulsets["redis-ha-redis"]["spec"]["template"]["metadata"]["labels"]
    sentinel_pods = statefulsets["redis-ha-sentinel"]["spec"]["template"]["metadata"]["labels"]
    sources = {
        "sentinel": sentinel_pods,
        "redis": redis_pods,
        "client": {"app": "web", "redis-ha-client": "true"},
        "unlabelled": {"app": "web"},
        "prometheus": {"app.kubernetes.io/name": "prometheus"},
    }
    labels = sources[source]
    assert admitted(prod, redis_pods, 6379, labels, same_namespace) is redis_port
    assert admitted(prod, sentinel_pods, 26379, labels, same_namespace) is sentinel_port
    assert admitted(prod, redis_pods, 9121, labels, same_namespace) is metrics_port
    # A port that belongs to the other kind of pod is never opened.
    assert admitted(prod, sentinel_pods, 6379, labels, same_namespace) is False
    for policy in named(prod, NETWORKPOLICY).values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_no_configmap_holds_a_password_or_hash(any_run: ProgramRun) -> None:
    values = secret_values(any_run)
    assert len(any_run.passwords) == 13
    configmaps = any_run.of_type(CONFIGMAP)
    assert configmaps
    for configmap in configmaps:
        text = " ".join(plain_strings(configmap.inputs))  # inputs: secret or not, nothing may be here
        assert not [v for v in values if v in text], configmap.name


def test_secret_material_appears_only_inside_secret_inputs(any_run: ProgramRun) -> None:
    values = secret_values(any_run)
    for resource in any_run.resources:
        text = " ".join(plain_strings(resource.wire))
        assert not [v for v in values if v in text], f"{resource.type} {resource.name}"
    # Every file that holds a password is a Secret whose data is registered as secret.
    for resource in any_run.of_type(SECRET):
        assert is_secret(resource.wire["stringData"]), resource.name
    # No password reaches a container through a literal environment value.
    for resource in any_run.of_type(STATEFULSET):
        for c in all_containers(manifest(resource)):
            literal = " ".join(str(e.get("value", "")) for e in c.get("env", []))
            assert not [v for v in values if v in literal], (resource.name, c["name"])


def test_tls_issues_a_ca_and_a_node_certificate(prod_tls: ProgramRun) -> None:
    types = sorted(r.type for r in prod_tls.resources if r.type.startswith("tls:"))
    assert types == [
        "tls:index/certRequest:CertRequest",
        "tls:index/locallySignedCert:LocallySignedCert",
        "tls:index/privateKey:PrivateKey",
        "tls:index/privateKey:PrivateKey",
        "tls:index/selfSignedCert:SelfSignedCert",
    ]
    [ca] = prod_tls.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True
    [request] = prod_tls.of_type("tls:index/certRequest:CertRequest")
    names = request.inputs["dnsNames"]
    assert "*.redis-ha-redis-headless.redis.svc.cluster.local" in names
    assert "*.redis-ha-sentinel-headless.redis.svc.cluster.local" in names
    assert "redis-ha-sentinel.redis.svc.cluster.local" in names
    assert "localhost" in names  # the exporter sidecar, probes and the preStop hook
    [cert] = prod_tls.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert {"server_auth", "client_auth"} <= set(cert.inputs["allowedUses"])


def test_tls_key_pair_is_in_secrets(prod_tls: ProgramRun) -> None:
    secrets = {r.inputs["metadata"]["name"]: r for r in prod_tls.of_type(SECRET)}
    tls = secrets["redis-ha-tls"]
    assert tls.inputs["type"] == "kubernetes.io/tls"
    assert sorted(tls.inputs["stringData"]) == ["ca.crt", "tls.crt", "tls.key"]
    assert tls.inputs["stringData"]["tls.key"] == _pem("PRIVATE KEY", "redis-ha-node-key")
    assert is_secret(tls.wire["stringData"])
    assert secrets["redis-ha-ca"].inputs["stringData"] == {"ca.crt": _pem("CERTIFICATE", "redis-ha-ca")}
    for run in (prod_tls,):
        for configmap in run.of_type(CONFIGMAP):
            assert "PRIVATE KEY" not in " ".join(plain_strings(configmap.inputs))


def test_tls_closes_the_plain_ports(prod_tls: ProgramRun, prod: ProgramRun) -> None:
    for run, tls in ((prod_tls, True), (prod, False)):
        secrets = named(run, SECRET)
        for key, conf in secrets["redis-ha-redis"]["stringData"].items():
            if key.endswith(".redis.conf"):
                assert ("\ntls-port 6379\n" in conf and "\nport 0\n" in conf) is tls, key
                assert ("\ntls-replication yes\n" in conf) is tls
                assert ("\nport 6379\n" in conf) is not tls
                if tls:
                    assert "tls-cert-file /etc/redis-ha/tls.crt" in conf
                    assert "tls-key-file /etc/redis-ha/tls.key" in conf
                    assert "tls-ca-cert-file /etc/redis-ha/ca.crt" in conf
        sentinel_files = secrets["redis-ha-sentinel"]["stringData"]
        shared = sorted(k for k in sentinel_files if not k.endswith(".sentinel.conf"))
        assert shared == ["admin.password", "secrets.version", "sentinel-client.password"]
        for key, conf in sentinel_files.items():
            if not key.endswith(".sentinel.conf"):
                continue
            assert ("\ntls-port 26379\n" in conf and "\nport 0\n" in conf) is tls, key
            assert ("\ntls-replication yes\n" in conf) is tls


def test_tls_pods_get_the_key_pair_and_the_exporter_speaks_tls(prod_tls: ProgramRun) -> None:
    statefulsets = named(prod_tls, STATEFULSET)
    for statefulset in statefulsets.values():
        volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "redis-ha-tls"
        [init] = pod_spec(statefulset)["initContainers"]
        for file_name in ("ca.crt", "tls.crt", "tls.key"):
            assert f"cp /run/redis-ha/tls/{file_name} /etc/redis-ha/{file_name}" in init["command"][-1]
    exporter = container(statefulsets["redis-ha-redis"], "exporter")
    env = {e["name"]: e.get("value") for e in exporter["env"]}
    assert env["REDIS_ADDR"] == "rediss://localhost:6379"
    assert exporter["args"] == ["--tls-ca-cert-file=/run/redis-ha/tls/ca.crt"]
    assert {"name": "tls", "mountPath": "/run/redis-ha/tls", "readOnly": True} in exporter["volumeMounts"]


def test_validation_is_strict() -> None:
    # The check below means something only if an unknown field is an error.
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}, "extra": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    bad_nested = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1, "targetport": "a"}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad_nested, KUBERNETES_VERSION, strict=True)


def test_every_manifest_validates_against_the_kubernetes_schema(any_run: ProgramRun) -> None:
    resources = k8s_resources(any_run)
    assert len(resources) >= 14
    for resource in resources:
        m = manifest(resource)
        assert m["apiVersion"] and m["kind"], resource.name
        try:
            validated = kubernetes_validate.validate(m, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{resource.type} {resource.name}: {path}: {error.message}")
        assert validated == ".".join(KUBERNETES_VERSION.split(".")[:2])
