"""The whole program for the prod stack (Kubernetes) under Pulumi's mocks: the component,
its children and how they fit together.

No cluster can run here: the resource graph is checked for what a cluster would
enforce or what would only show on the first failover (selectors that select nothing,
mounts of undeclared volumes, a password in a ConfigMap), and every generated manifest
is validated, strictly, against the Kubernetes OpenAPI schema shipped with
kubernetes-validate (offline: tests/program/test_prod_security.py). The other parts:
tests/program/test_prod_pods.py, tests/program/test_prod_credentials.py.
"""

from __future__ import annotations

from redis_ha.components import rendering
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.program import build_plan, naming_for
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_sentinel_topology

from tests.support.prod_program import (
    COMPONENT,
    CONFIGMAP,
    NAMESPACE,
    NETWORKPOLICY,
    PDB,
    SECRET,
    SERVICE,
    STATEFULSET,
    all_containers,
    container,
    k8s_resources,
    label_selector,
    manifest,
    named,
    pod_spec,
    selects,
    settings_of,
    user_passwords,
)
from tests.support.program import ProgramRun, stack_config


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
