"""The whole program for the prod stack (Kubernetes) under Pulumi's mocks.

No cluster can run here: the resource graph is checked for what a cluster would
enforce or what would only show on the first failover (selectors that select nothing,
mounts of undeclared volumes, a password in a ConfigMap), and every generated manifest
is validated, strictly, against the Kubernetes OpenAPI schema shipped with
kubernetes-validate (offline).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pulumi
import pytest
from kubernetes_validate.utils import latest_version
from redis_ha.components import node_files, program, rendering
from redis_ha.components.kubernetes import deployment as k8s_deployment
from redis_ha.components.kubernetes import pods
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.outputs import stack_passwords
from redis_ha.components.program import build_plan, naming_for
from redis_ha.components.settings import Settings
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_sentinel_topology

from tests.support import program as support
from tests.support.node_scripts import parse_env
from tests.support.program import ProgramRun, is_secret, plain_strings, run_program, stack_config, use_mocks

COMPONENT = "redis-ha:kubernetes:RedisHA"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAMESPACE = "kubernetes:core/v1:Namespace"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORKPOLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
# The newest Kubernetes whose schemas the installed kubernetes-validate ships.
KUBERNETES_VERSION = latest_version()
TLS_OVERRIDES = {"tls": "true", "storageClass": "fast-ssd"}
USERS = ("admin", "replica", "sentinel", "exporter", "backup", "sentinel-client", "sentinel-exporter")
MIB = 1024**2


_pem = support.mock_pem


@pytest.fixture(scope="module")
def tls_provider_outputs() -> Iterator[None]:
    with support.mocked_tls_outputs():
        yield


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return run_program(stack_config("prod"), stack="prod")


@pytest.fixture(scope="module")
def prod_tls(tls_provider_outputs: None) -> ProgramRun:
    return run_program({**stack_config("prod"), **TLS_OVERRIDES}, stack="prod")


@pytest.fixture(scope="module", params=["prod", "prod_tls"])
def any_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


def settings_of(overrides: dict[str, str] | None = None) -> Settings:
    return load_settings({**stack_config("prod"), **(overrides or {})})


# --- helpers over the recorded registrations ------------------------------------------


manifest = support.manifest


def k8s_resources(run: ProgramRun) -> list[support.Registered]:
    return [r for r in run.resources if r.type.startswith("kubernetes:")]


def named(run: ProgramRun, token: str) -> dict[str, dict[str, Any]]:
    """metadata.name -> manifest, for every resource of one type."""
    return {m["metadata"]["name"]: m for m in (manifest(r) for r in run.of_type(token))}


def pod_spec(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]["spec"]


def all_containers(statefulset: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(statefulset)
    return spec.get("initContainers", []) + spec["containers"]


def container(statefulset: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in pod_spec(statefulset)["containers"] if c["name"] == name]
    assert len(matches) == 1, name
    return matches[0]


def label_selector(token: str, m: dict[str, Any]) -> dict[str, str]:
    """The labels a Service, PDB or NetworkPolicy selects pods by (only matchLabels is used)."""
    if token == SERVICE:
        return m["spec"]["selector"]
    selector = m["spec"]["podSelector" if token == NETWORKPOLICY else "selector"]
    assert set(selector) == {"matchLabels"}, m["metadata"]["name"]
    return selector["matchLabels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def user_passwords(run: ProgramRun) -> dict[str, str]:
    """user -> generated password (the mocks record them by resource name)."""
    prefix = "redis-ha-credentials-"
    return {name.removeprefix(prefix): password for name, password in run.passwords.items()}


def secret_values(run: ProgramRun) -> set[str]:
    """Every password, its sha256 as an ACL file stores it, and every private key."""
    values = set(run.passwords.values())
    values |= {hashlib.sha256(p.encode()).hexdigest() for p in run.passwords.values()}
    values |= {_pem("PRIVATE KEY", r.name) for r in run.of_type("tls:index/privateKey:PrivateKey")}
    return values


# --- the component and its children ---------------------------------------------------


def test_every_child_is_parented_to_the_component(any_run: ProgramRun) -> None:
    component = any_run.by_name("redis-ha")
    assert component.type == COMPONENT
    assert component.inputs == {}  # no args or secrets as props: they would land in state
    children = [r for r in any_run.resources if r.type.startswith(("kubernetes:", "tls:"))]
    assert children
    assert all(r.parent == component.urn for r in children), [r.name for r in children if r.parent != component.urn]
    assert all(r.name.startswith("redis-ha-") for r in children)


def test_resource_counts(prod: ProgramRun) -> None:
    assert len(prod.of_type(NAMESPACE)) == 1
    statefulsets = named(prod, STATEFULSET)
    assert sorted(statefulsets) == ["redis-ha-redis", "redis-ha-sentinel"]
    assert all(s["spec"]["replicas"] == 3 for s in statefulsets.values())
    assert sorted(named(prod, SERVICE)) == [
        "redis-ha-exporter",
        "redis-ha-redis-headless",
        "redis-ha-sentinel",
        "redis-ha-sentinel-exporter",
        "redis-ha-sentinel-headless",
    ]
    assert len(prod.of_type(PDB)) == 2
    assert len(prod.of_type(NETWORKPOLICY)) == 2
    roles = [r.name for r in load_settings(stack_config("prod")).roles]
    # The groups' config, the exporters' password files, and one Secret per application role.
    assert sorted(named(prod, SECRET)) == sorted(
        [
            "redis-ha-exporter",
            "redis-ha-sentinel-exporter",
            "redis-ha-redis",
            "redis-ha-sentinel",
            *(f"redis-ha-{r}" for r in roles),
        ]
    )
    assert sorted(named(prod, CONFIGMAP)) == ["redis-ha-scripts"]
    assert not [r for r in prod.resources if r.type.startswith("tls:")]


def test_everything_lives_in_the_configured_namespace(any_run: ProgramRun) -> None:
    namespace = manifest(any_run.of_type(NAMESPACE)[0])
    assert namespace["metadata"]["name"] == "redis"
    # Every pod below meets the restricted Pod Security Standard, so it is enforced.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [manifest(r) for r in k8s_resources(any_run) if r.type != NAMESPACE]
    assert {m["metadata"]["namespace"] for m in namespaced} == {"redis"}


def test_statefulsets_use_their_headless_services(prod: ProgramRun) -> None:
    services = named(prod, SERVICE)
    for kind, port in (("redis", 6379), ("sentinel", 26379)):
        statefulset = named(prod, STATEFULSET)[f"redis-ha-{kind}"]
        headless = services[statefulset["spec"]["serviceName"]]
        assert headless["metadata"]["name"] == f"redis-ha-{kind}-headless"
        assert headless["spec"]["clusterIP"] == "None"
        # Peers must resolve a pod that is not ready yet (a master loading its AOF).
        assert headless["spec"]["publishNotReadyAddresses"] is True
        assert [p["port"] for p in headless["spec"]["ports"]] == [port]
    client = services["redis-ha-sentinel"]
    assert "clusterIP" not in client["spec"] and client["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in client["spec"]["ports"]] == [26379]
    assert [p["port"] for p in services["redis-ha-exporter"]["spec"]["ports"]] == [9121]


def test_every_selector_selects_the_intended_pods(any_run: ProgramRun) -> None:
    statefulsets = named(any_run, STATEFULSET)
    pod_labels = {name: s["spec"]["template"]["metadata"]["labels"] for name, s in statefulsets.items()}
    for name, statefulset in statefulsets.items():
        assert selects(statefulset["spec"]["selector"]["matchLabels"], pod_labels[name]), name

    def selected(selector: dict[str, str]) -> list[str]:
        return sorted(name for name, labels in pod_labels.items() if selects(selector, labels))

    intended = {
        (SERVICE, "redis-ha-redis-headless"): "redis-ha-redis",
        (SERVICE, "redis-ha-exporter"): "redis-ha-redis",
        (SERVICE, "redis-ha-sentinel-headless"): "redis-ha-sentinel",
        (SERVICE, "redis-ha-sentinel"): "redis-ha-sentinel",
        (SERVICE, "redis-ha-sentinel-exporter"): "redis-ha-sentinel",
        (PDB, "redis-ha-redis"): "redis-ha-redis",
        (PDB, "redis-ha-sentinel"): "redis-ha-sentinel",
        (NETWORKPOLICY, "redis-ha-redis"): "redis-ha-redis",
        (NETWORKPOLICY, "redis-ha-sentinel"): "redis-ha-sentinel",
    }
    seen = set()
    for token in (SERVICE, PDB, NETWORKPOLICY):
        for name, m in named(any_run, token).items():
            assert selected(label_selector(token, m)) == [intended[(token, name)]], (token, name)
            seen.add((token, name))
    assert seen == set(intended)


def test_service_ports_target_named_container_ports(any_run: ProgramRun) -> None:
    statefulsets = named(any_run, STATEFULSET)
    for name, service in named(any_run, SERVICE).items():
        labels = {n: s["spec"]["template"]["metadata"]["labels"] for n, s in statefulsets.items()}
        [target] = [statefulsets[n] for n, pod in labels.items() if selects(service["spec"]["selector"], pod)]
        ports = {(p["name"], p["containerPort"]) for c in pod_spec(target)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert (port["targetPort"], port["port"]) in ports, (name, port)


def test_every_volume_mount_names_a_declared_volume(any_run: ProgramRun) -> None:
    secrets = named(any_run, SECRET)
    configmaps = named(any_run, CONFIGMAP)
    for name, statefulset in named(any_run, STATEFULSET).items():
        volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
        claims = {c["metadata"]["name"] for c in statefulset["spec"].get("volumeClaimTemplates", [])}
        assert not set(volumes) & claims
        for c in all_containers(statefulset):
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in set(volumes) | claims, (name, c["name"], mount["name"])
                # Redis and Sentinel rewrite their files through a temp file: never a
                # single-file subPath mount (docs/redis-notes.md#sentinel-rewrites-its-config).
                assert "subPath" not in mount, (name, c["name"], mount)
        for volume in volumes.values():
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, (name, volume)
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, (name, volume)
        # Every mounted volume is used, every declared one is mounted somewhere.
        mounted = {m["name"] for c in all_containers(statefulset) for m in c.get("volumeMounts", [])}
        assert mounted == set(volumes) | claims, name


def test_config_directories_are_writable_memory_volumes(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
        kind = name.removeprefix("redis-ha-")
        mount = next(m for m in container(statefulset, kind)["volumeMounts"] if m["mountPath"] == "/etc/redis-ha")
        assert not mount.get("readOnly", False)
        # Copied files hold passwords: tmpfs, never the node's disk.
        assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"


def test_redis_data_is_a_persistent_volume_claim(prod: ProgramRun, prod_tls: ProgramRun) -> None:
    for run, storage_class in ((prod, None), (prod_tls, "fast-ssd")):
        redis = named(run, STATEFULSET)["redis-ha-redis"]
        [claim] = redis["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        # An empty storageClass means the cluster default: the field is left out.
        assert claim["spec"].get("storageClassName") == storage_class
        data = next(m for m in container(redis, "redis")["volumeMounts"] if m["name"] == claim["metadata"]["name"])
        assert data["mountPath"] == "/data"


def test_each_pod_gets_its_own_rendered_files(prod: ProgramRun) -> None:
    settings = settings_of()
    topology = build_sentinel_topology(settings, naming_for(settings))
    redis_group = build_plan(settings).parts[0].group("redis")
    passwords = user_passwords(prod)
    secrets = named(prod, SECRET)
    redis_files = secrets["redis-ha-redis"]["stringData"]
    sentinel_files = secrets["redis-ha-sentinel"]["stringData"]
    for node in topology.redis_nodes:
        expected = redis_group.files(node, passwords)
        assert redis_files[f"{node.name}.redis.conf"] == expected["redis.conf"]
        assert redis_files["users.acl"] == expected["users.acl"]
        assert f"replica-announce-ip {node.hostname}\n" in expected["redis.conf"]
        assert "aclfile /etc/redis-ha/users.acl" in expected["redis.conf"]
    for node in topology.sentinels:
        conf = sentinel_files[f"{node.name}.sentinel.conf"]
        assert conf == rendering.render_sentinel_conf(settings, node, topology.master, passwords, K8S_LAYOUT.sentinel)
        assert f"sentinel announce-ip {node.hostname}\n" in conf
        assert f"sentinel monitor redis-ha {topology.master.hostname} 6379 2\n" in conf
    assert redis_files[rendering.ADMIN_PASSWORD_FILE] == passwords["admin"]
    assert redis_files[rendering.SENTINEL_CLIENT_PASSWORD_FILE] == passwords["sentinel-client"]
    # The init containers copy the pod's own file into the writable directory.
    statefulsets = named(prod, STATEFULSET)
    for kind, conf in (("redis", "redis.conf"), ("sentinel", "sentinel.conf")):
        [init] = pod_spec(statefulsets[f"redis-ha-{kind}"])["initContainers"]
        script = init["command"][-1]
        assert f'cp "/run/redis-ha/config/$POD_NAME.{conf}" /etc/redis-ha/{conf}' in script
        assert init["env"] == [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


def test_scripts_configmap_carries_the_node_scripts_and_each_groups_env(any_run: ProgramRun) -> None:
    tls = any_run.outputs["redisHa"]["tls"]
    settings = settings_of(TLS_OVERRIDES if tls else None)
    topology = build_sentinel_topology(settings, naming_for(settings))
    scripts = named(any_run, CONFIGMAP)["redis-ha-scripts"]["data"]
    # The plain files of components/node, as they are in the package.
    for name in ("lib.sh", "healthcheck.sh", "redis-start.sh", "sentinel-start.sh", "fence.sh"):
        assert scripts[name] == node_files.script(name), name
    assert sorted(scripts) == [
        "fence.sh",
        "healthcheck.sh",
        "lib.sh",
        "redis-start.sh",
        "redis.env",
        "sentinel-start.sh",
        "sentinel.env",
    ]
    redis_env, sentinel_env = parse_env(scripts["redis.env"]), parse_env(scripts["sentinel.env"])
    assert redis_env == {
        k: str(v)
        for k, v in {
            **rendering.probe_env(topology.redis_nodes[0], K8S_LAYOUT.redis, tls),
            **rendering.start_env(settings, topology, K8S_LAYOUT.redis),
        }.items()
    }
    assert redis_env["REDIS_HA_KIND"] == "redis" and sentinel_env["REDIS_HA_KIND"] == "sentinel"
    assert redis_env["REDIS_HA_ADMIN_PASSWORD_FILE"] == "/etc/redis-ha/admin.password"
    assert sentinel_env["REDIS_HA_SENTINEL_PASSWORD_FILE"] == "/etc/redis-ha/sentinel-client.password"
    assert sentinel_env["REDIS_HA_SENTINEL_STATE"] == "/data/sentinel.conf"
    assert sentinel_env["REDIS_HA_SENTINEL_SEED"] == "/etc/redis-ha/sentinel.conf"
    assert redis_env["REDIS_HA_PER_NODE_FILES"] == sentinel_env["REDIS_HA_PER_NODE_FILES"] == "1"
    for env in (redis_env, sentinel_env):
        assert (env["REDIS_HA_TLS_ARGS"] == "--tls --cacert /etc/redis-ha/ca.crt") == tls
        assert (env["REDIS_HA_TLS_ARGS"] == "") == (not tls)
    # No secret in a ConfigMap.
    for text in scripts.values():
        assert not [p for p in any_run.passwords.values() if p and p in text]
    # Each group's pods see the scripts and their own env file as node.env.
    for kind in ("redis", "sentinel"):
        [volume] = [
            v for v in pod_spec(named(any_run, STATEFULSET)[f"redis-ha-{kind}"])["volumes"] if v["name"] == "scripts"
        ]
        items = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
        start = "redis-start.sh" if kind == "redis" else "sentinel-start.sh"
        fence = {"fence.sh": "fence.sh"} if kind == "redis" else {}
        assert items == {
            "healthcheck.sh": "healthcheck.sh",
            "lib.sh": "lib.sh",
            start: start,
            f"{kind}.env": "node.env",
            **fence,
        }


def test_redis_starts_through_the_role_script_and_hands_over_on_stop(any_run: ProgramRun) -> None:
    redis = container(named(any_run, STATEFULSET)["redis-ha-redis"], "redis")
    assert redis["command"] == ["sh", "/opt/redis-ha/redis-start.sh"]
    assert redis["lifecycle"]["preStop"]["exec"]["command"] == ["sh", "/opt/redis-ha/redis-start.sh", "prestop"]
    env = {e["name"]: e for e in redis["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    spec = pod_spec(named(any_run, STATEFULSET)["redis-ha-redis"])
    # Service links would inject REDIS_HA_* variables the script takes as overrides.
    assert spec["enableServiceLinks"] is False
    # The grace period covers the preStop wait for the hand-over, then a final save.
    assert spec["terminationGracePeriodSeconds"] >= rendering.failover_wait_seconds(settings_of()) + 10


def test_probes_exec_the_rendered_healthchecks(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        kind = name.removeprefix("redis-ha-")
        c = container(statefulset, kind)
        # One probe script for every kind: the pod's node.env names the kind.
        script = "/opt/redis-ha/healthcheck.sh"
        # Ready: in sync (a replica), cluster_state ok, a Sentinel that knows its master;
        # alive: answers at all, -LOADING included.
        for probe, mode in (("readinessProbe", "ready"), ("livenessProbe", "live")):
            assert c[probe]["exec"]["command"] == ["sh", script, mode], (name, probe)
        if "startupProbe" in c:
            assert c["startupProbe"]["exec"]["command"] == ["sh", script, "live"], name


def test_sentinels_run_from_their_writable_config(any_run: ProgramRun) -> None:
    statefulset = named(any_run, STATEFULSET)["redis-ha-sentinel"]
    sentinel = container(statefulset, "sentinel")
    assert sentinel["command"] == ["sh", "/opt/redis-ha/sentinel-start.sh"]
    # Its state (the config it rewrites) on a claim of its own; the rendered file seeds it.
    assert {"name": "data", "mountPath": "/data"} in sentinel["volumeMounts"]
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert claims[0]["spec"]["resources"]["requests"] == {"storage": "64Mi"}
    redis_urn = next(r.urn for r in any_run.of_type(STATEFULSET) if r.name == "redis-ha-redis")
    sentinel_resource = next(r for r in any_run.of_type(STATEFULSET) if r.name == "redis-ha-sentinel")
    # Sentinel refuses to start while the monitored hostname does not resolve.
    assert redis_urn in sentinel_resource.dependencies


def test_exporter_is_a_sidecar_with_its_password_from_a_secret_file(prod: ProgramRun) -> None:
    redis = named(prod, STATEFULSET)["redis-ha-redis"]
    exporter = container(redis, "exporter")
    env = {e["name"]: e for e in exporter["env"]}
    assert env["REDIS_ADDR"] == {"name": "REDIS_ADDR", "value": "redis://localhost:6379"}
    assert env["REDIS_USER"] == {"name": "REDIS_USER", "value": "exporter"}
    # A file from the Secret, not an environment variable (`kubectl describe`, /proc/<pid>/environ).
    assert "REDIS_PASSWORD" not in env
    assert env["REDIS_PASSWORD_FILE"] == {
        "name": "REDIS_PASSWORD_FILE",
        "value": "/run/redis-ha/exporter/passwords.json",
    }
    mount = next(m for m in exporter["volumeMounts"] if m["name"] == "exporter-auth")
    assert mount == {"name": "exporter-auth", "mountPath": "/run/redis-ha/exporter", "readOnly": True}
    volume = next(v for v in pod_spec(redis)["volumes"] if v["name"] == "exporter-auth")
    assert volume["secret"]["secretName"] == "redis-ha-exporter"
    secret = named(prod, SECRET)["redis-ha-exporter"]
    password = user_passwords(prod)["exporter"]
    assert secret["stringData"] == {"passwords.json": json.dumps({"redis://localhost:6379": password})}
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9121, "protocol": "TCP"}]
    # The Sentinels' sidecar: its own pod's Sentinel, as sentinel-exporter, with its own Secret.
    sentinel = named(prod, STATEFULSET)["redis-ha-sentinel"]
    sidecar = container(sentinel, "exporter")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["REDIS_ADDR"] == "redis://localhost:26379" and env["REDIS_USER"] == "sentinel-exporter"
    assert env["REDIS_EXPORTER_CONFIG_COMMAND"] == "-"
    volume = next(v for v in pod_spec(sentinel)["volumes"] if v["name"] == "exporter-auth")
    assert volume["secret"]["secretName"] == "redis-ha-sentinel-exporter"
    password = user_passwords(prod)["sentinel-exporter"]
    assert named(prod, SECRET)["redis-ha-sentinel-exporter"]["stringData"] == {
        "passwords.json": json.dumps({"redis://localhost:26379": password})
    }


def test_disruption_budgets_keep_quorum(any_run: ProgramRun) -> None:
    budgets = named(any_run, PDB)
    assert budgets["redis-ha-redis"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budgets["redis-ha-redis"]["spec"]
    assert budgets["redis-ha-sentinel"]["spec"]["minAvailable"] == settings_of().quorum == 2


# --- NetworkPolicy: evaluated, not only read ---------------------------------------


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


# --- pods: scheduling, security, resources ----------------------------------------


def test_pods_of_one_kind_never_share_a_node(any_run: ProgramRun) -> None:
    for statefulset in named(any_run, STATEFULSET).values():
        affinity = pod_spec(statefulset)["affinity"]["podAntiAffinity"]
        [required] = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
        assert required["topologyKey"] == "kubernetes.io/hostname"
        assert required["labelSelector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]


def test_every_container_is_locked_down(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        spec = pod_spec(statefulset)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 999 and pod["fsGroup"] == 999
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in all_containers(statefulset):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 999, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, (name, c["name"])


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)?", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Mi": MIB, "Gi": 1024 * MIB, None: 1}[unit]


def test_every_container_has_requests_and_limits(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        for c in all_containers(statefulset):
            resources = c["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, (name, c["name"])
    redis = container(named(any_run, STATEFULSET)["redis-ha-redis"], "redis")
    maxmemory = settings_of().maxmemory
    # maxmemory does not count buffers or the fork's copy-on-write pages.
    assert _bytes(redis["resources"]["limits"]["memory"]) >= maxmemory * 1.5
    assert redis["resources"]["requests"]["memory"] == redis["resources"]["limits"]["memory"]


# --- secrets ---------------------------------------------------------------------------


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


def test_bad_role_password_registers_nothing() -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError) as caught:
        run_program({**stack_config("prod"), "analyticsPassword": "analytics secret 1!"}, stack="prod", run=run)
    assert run.resources == []
    assert str(caught.value).startswith("redis-ha:analyticsPassword: invalid value <secret>; allowed: ")
    assert "analytics secret 1!" not in str(caught.value)


def test_configured_role_password_reaches_the_acl_secrets_only() -> None:
    password = "Analytics-Role-Secret-1"
    run = run_program({**stack_config("prod"), "analyticsPassword": password}, stack="prod")
    assert run.outputs["analyticsPassword"] == password
    assert "analytics" not in run.outputs["passwords"]
    digest = hashlib.sha256(password.encode()).hexdigest()
    holders = [r.name for r in run.resources if digest in " ".join(plain_strings(r.inputs))]
    assert holders and all(r.type == SECRET for r in run.resources if r.name in holders), holders


def test_pods_roll_on_a_settings_change_only(any_run: ProgramRun) -> None:
    """The config checksum follows the settings, never a password (a rotation leaves
    the pod templates alone: tests/program/test_rotation_program.py)."""
    for resource in any_run.of_type(STATEFULSET):
        annotations = resource.wire["spec"]["template"]["metadata"]["annotations"]
        checksum = annotations["redis-ha/config-checksum"]
        assert isinstance(checksum, str) and len(checksum) == 64, resource.name


# --- stack outputs -------------------------------------------------------------------


def test_outputs_name_kubectl_hosts_and_the_k8s_conf_dir(prod: ProgramRun) -> None:
    deployment = prod.outputs["redisHa"]
    role_outputs = {r["passwordOutput"] for r in prod.outputs["redisHa"]["roles"]}
    assert len(role_outputs) == 6 and prod.secret_outputs == {"passwords", *role_outputs}
    assert deployment["backend"] == "kubernetes" and deployment["confDir"] == "/etc/redis-ha"
    nodes = {n["name"]: n for n in deployment["nodes"]}
    for i in range(3):
        assert (
            nodes[f"redis-ha-redis-{i}"]["testinfraHost"]
            == f"kubectl://redis-ha-redis-{i}?namespace=redis&container=redis"
        )
        assert nodes[f"redis-ha-sentinel-{i}"]["testinfraHost"] == (
            f"kubectl://redis-ha-sentinel-{i}?namespace=redis&container=sentinel"
        )
    assert nodes["redis-ha-redis-0"]["host"] == "redis-ha-redis-0.redis-ha-redis-headless.redis.svc.cluster.local"
    assert (
        nodes["redis-ha-exporter"]["testinfraHost"] == "kubectl://redis-ha-redis-0?namespace=redis&container=exporter"
    )
    # The exporter node's host is the metrics Service's name.
    assert nodes["redis-ha-exporter"]["host"] in named(prod, SERVICE)
    assert not set(stack_passwords(prod.outputs).values()) & set(str(deployment).split("'"))


@pytest.fixture
def mocks() -> ProgramRun:
    return use_mocks(stack="prod")


@pulumi.runtime.test
def test_component_outputs_the_sentinel_service(mocks: ProgramRun) -> pulumi.Output:
    settings = load_settings({"backend": "kubernetes", "name": "unit", "namespace": "cache"})
    passwords = {u: pulumi.Output.secret(f"pw-{u}") for u in USERS}
    passwords |= {r.name: pulumi.Output.secret(f"pw-{r.name}") for r in settings.roles}
    ha = k8s_deployment.RedisHA("unit", k8s_deployment.PartArgs(settings, build_plan(settings).parts[0], passwords))

    def check(values: list[Any]) -> None:
        namespace, service, deployment = values
        assert namespace == "cache"
        assert service == "unit-sentinel.cache.svc.cluster.local:26379"
        assert deployment["nodes"][0]["testinfraHost"] == "kubectl://unit-redis-0?namespace=cache&container=redis"

    return pulumi.Output.all(ha.namespace, ha.client_service, ha.deployment).apply(check)


# --- the applications' credentials -------------------------------------------------

ROLE_SECRET_KEYS = {
    "host",
    "port",
    "sentinelHost",
    "sentinelPort",
    "masterName",
    "sentinelUser",
    "sentinelPassword",
    "user",
    "password",
}


def _role_secret_args(tls: bool) -> tuple[Settings, dict[str, pulumi.Output[str]], k8s_deployment.PartArgs]:
    settings = load_settings({"backend": "kubernetes", "name": "unit", "namespace": "apps", "tls": tls})
    passwords = {u: pulumi.Output.secret(f"pw-{u}") for u in USERS}
    passwords |= {r.name: pulumi.Output.secret(f"pw-{r.name}") for r in settings.roles}
    return settings, passwords, k8s_deployment.PartArgs(settings, build_plan(settings).parts[0], passwords)


@pulumi.runtime.test
def test_every_role_gets_a_secret_with_where_and_as_whom_to_connect(mocks: ProgramRun) -> pulumi.Output:
    settings, _, args = _role_secret_args(tls=False)
    ha = k8s_deployment.RedisHA("unit", args)
    roles = [r.name for r in settings.roles]
    assert sorted(ha.role_secrets) == sorted(roles)
    secrets = [ha.role_secrets[r] for r in roles]

    async def secret_flags() -> list[bool]:
        return [await s.string_data.is_secret() for s in secrets]

    def check(values: list[Any]) -> None:
        namespace, flags, *contents = values
        assert flags == [True] * len(roles), "a role's Secret data is registered in the clear"
        for role, (metadata, data, kind) in zip(roles, contents, strict=True):
            assert metadata["name"] == f"unit-{role}" and metadata["namespace"] == namespace == "apps"
            # Labelled like every other resource of the deployment, as component `credentials`.
            assert metadata["labels"] == pods.labels(settings, "credentials")
            assert metadata["labels"]["app.kubernetes.io/instance"] == "unit"
            assert kind == "Opaque"
            assert set(data) == ROLE_SECRET_KEYS, role
            assert data["user"] == role and data["password"] == f"pw-{role}"
            assert data["sentinelHost"] == "unit-sentinel.apps.svc.cluster.local"
            assert data["sentinelPort"] == "26379" and data["masterName"] == "redis-ha"
            assert data["sentinelUser"] == "sentinel-client" and data["sentinelPassword"] == "pw-sentinel-client"
            assert data["host"] == "unit-redis-headless.apps.svc.cluster.local" and data["port"] == "6379"
            # Nothing of another role.
            assert not [r for r in roles if r != role and f"pw-{r}" in data.values()]

    fields = [pulumi.Output.all(s.metadata, s.string_data, s.type) for s in secrets]
    return pulumi.Output.all(ha.namespace, pulumi.Output.from_input(secret_flags()), *fields).apply(check)


@pulumi.runtime.test
def test_role_secrets_say_tls_when_it_is_on(mocks: ProgramRun, tls_provider_outputs: None) -> pulumi.Output:
    _, _, args = _role_secret_args(tls=True)
    ha = k8s_deployment.RedisHA("unit", args)

    def check(data: dict[str, str]) -> None:
        assert set(data) == ROLE_SECRET_KEYS | {"tls", "caSecret"} and data["tls"] == "true"
        # where applications find the CA certificate (key ca.crt)
        assert data["caSecret"] == "unit-ca"

    return ha.role_secrets["cache"].string_data.apply(check)


@pulumi.runtime.test
def test_role_passwords_are_secret_stack_outputs_of_their_own(mocks: ProgramRun) -> pulumi.Output:
    settings = load_settings({"backend": "kubernetes", "name": "unit"})
    stack_outputs = program.deploy_settings(settings, {"cache": pulumi.Output.secret("Cache-Configured-Secret-1")})
    roles = [r.name for r in settings.roles]
    role_outputs = [f"{r}Password" for r in roles]
    assert sorted(stack_outputs) == sorted(["redisHa", "passwords", *role_outputs])

    async def flags() -> dict[str, bool]:
        return {name: await output.is_secret() for name, output in stack_outputs.items()}

    def check(values: list[Any]) -> None:
        secret, system, cache, *others = values
        assert secret == {"redisHa": False, "passwords": True, **{o: True for o in role_outputs}}
        # The system users only; each role's password is in its own output.
        assert sorted(system) == sorted(USERS)
        assert cache == "Cache-Configured-Secret-1"
        assert all(isinstance(p, str) and len(p) == 32 for p in others)
        assert not set(system.values()) & {cache, *others}

    outputs_in_order = [stack_outputs["passwords"], *(stack_outputs[o] for o in role_outputs)]
    return pulumi.Output.all(pulumi.Output.from_input(flags()), *outputs_in_order).apply(check)


def test_the_program_makes_one_role_secret_per_stack(prod: ProgramRun) -> None:
    both = run_program({**stack_config("prod"), "topology": "both"}, stack="prod")
    cluster = run_program({**stack_config("prod"), "topology": "cluster"}, stack="prod")
    roles = [r.name for r in load_settings(stack_config("prod")).roles]
    for run in (prod, both, cluster):
        credentials = [
            m for m in named(run, SECRET).values() if m["metadata"]["labels"].get(COMPONENT_LABEL) == "credentials"
        ]
        assert sorted(m["metadata"]["name"] for m in credentials) == sorted(f"redis-ha-{r}" for r in roles)
        for resource in run.of_type(SECRET):
            assert is_secret(resource.wire["stringData"]), resource.name
    # With a Redis Cluster only, the seed Service is where to connect; no Sentinel keys.
    cache = next(r for r in cluster.of_type(SECRET) if r.name == "redis-ha-cluster-cache-credentials")
    assert cache.inputs["stringData"]["host"] == "redis-ha-cluster.redis.svc.cluster.local"
    assert "sentinelHost" not in cache.inputs["stringData"]


# --- TLS ---------------------------------------------------------------------------------


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


# --- schema validation -------------------------------------------------------------


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
