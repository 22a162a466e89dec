"""The Redis Cluster topology under Pulumi's mocks, on both backends.

Docker: the resource graph the e2e applier creates (nodes, volumes, exporter, the
one-shot creation step and what it waits for). Kubernetes: the manifests no cluster
here can run, checked for what a cluster would enforce and validated, strictly,
against the Kubernetes OpenAPI schema (kubernetes-validate, offline). Both: secrets
only inside secret inputs, `topology: both` side by side, and a scale-out that leaves
the existing nodes untouched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version
from redis_ha.components import node_files, rendering, security
from redis_ha.components.kubernetes import deployment as k8s_deployment
from redis_ha.components.outputs import stack_passwords
from redis_ha.components.program import build_plan, naming_for
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_cluster_topology

from tests.support.node_scripts import parse_env
from tests.support.program import (
    ProgramRun,
    Registered,
    is_secret,
    manifest,
    plain_strings,
    run_program,
    stack_config,
)
from tests.support.updates import run_update

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
JOB = "kubernetes:batch/v1:Job"
NAMESPACE = "kubernetes:core/v1:Namespace"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORKPOLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
KUBERNETES_VERSION = latest_version()
CLUSTER = {"topology": "cluster"}
BOTH = {"topology": "both"}


def dev_config(**overrides: Any) -> dict[str, Any]:
    return {**stack_config("dev"), **overrides}


def prod_config(**overrides: Any) -> dict[str, Any]:
    return {**stack_config("prod"), **overrides}


@pytest.fixture(scope="module")
def dev_cluster() -> ProgramRun:
    return run_program(dev_config(**CLUSTER), stack="dev")


@pytest.fixture(scope="module")
def dev_both() -> ProgramRun:
    return run_program(dev_config(**BOTH), stack="dev")


@pytest.fixture(scope="module")
def prod_cluster() -> ProgramRun:
    return run_program(prod_config(**CLUSTER), stack="prod")


@pytest.fixture(scope="module")
def prod_both() -> ProgramRun:
    return run_program(prod_config(**BOTH), stack="prod")


@pytest.fixture(scope="module", params=["dev_cluster", "dev_both", "prod_cluster", "prod_both"])
def any_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module", params=["prod_cluster", "prod_both"])
def k8s_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


# --- helpers ------------------------------------------------------------------------


def named(run: ProgramRun, token: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in (manifest(r) for r in run.of_type(token))}


def containers_of_kind(run: ProgramRun, kind: str) -> list[Registered]:
    return [c for c in run.of_type(CONTAINER) if {"label": "redis-ha.kind", "value": kind} in c.inputs["labels"]]


def delivered(run: ProgramRun, consumer: str, file_name: str) -> str:
    """A file as `consumer`'s secrets writer delivers it."""
    [writer] = [c for c in run.of_type(CONTAINER) if c.name == f"{consumer}-secrets"]
    return next(u["content"] for u in writer.inputs["uploads"] if u["file"] == f"/run/redis-ha/incoming/{file_name}")


def upload(container: Registered, path: str) -> str:
    return next(u["content"] for u in container.inputs["uploads"] if u["file"] == path)


def user_passwords(run: ProgramRun) -> dict[str, str]:
    return {name.removeprefix("redis-ha-credentials-"): password for name, password in run.passwords.items()}


def secret_values(run: ProgramRun) -> set[str]:
    values = set(run.passwords.values())
    return values | {hashlib.sha256(p.encode()).hexdigest() for p in run.passwords.values()}


def pod_spec(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]["spec"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- both backends ------------------------------------------------------------------


def test_cluster_children_are_parented_to_their_component(any_run: ProgramRun) -> None:
    # The StatefulSet and the client Service are named like the component.
    [component] = [r for r in any_run.resources if r.name == "redis-ha-cluster" and r.type.startswith("redis-ha:")]
    backend = "docker" if any_run.outputs["redisHa"]["backend"] == "docker" else "kubernetes"
    assert component.type == f"redis-ha:{backend}:RedisCluster"
    assert component.inputs == {}  # no args or secrets as props: they would land in state
    children = [r for r in any_run.resources if r.parent == component.urn]
    assert len(children) >= 7
    assert all(r.name.startswith("redis-ha-cluster") for r in children), [r.name for r in children]
    sentinel = [r for r in any_run.resources if r.type == f"redis-ha:{backend}:RedisHA"]
    assert len(sentinel) == (1 if any_run.outputs["redisHa"]["topology"] == "both" else 0)
    # Every provider resource belongs to one of the two components.
    parents = {component.urn, *(r.urn for r in sentinel)}
    providers = [r for r in any_run.resources if r.type.startswith(("docker:", "kubernetes:"))]
    assert all(r.parent in parents for r in providers)


def test_secret_material_appears_only_inside_secret_inputs(any_run: ProgramRun) -> None:
    assert len(any_run.passwords) == 13
    values = secret_values(any_run)
    for resource in any_run.resources:
        text = " ".join(plain_strings(resource.wire))
        assert not [v for v in values if v in text], f"{resource.type} {resource.name}"


def test_outputs_describe_the_cluster_nodes(any_run: ProgramRun) -> None:
    deployment = any_run.outputs["redisHa"]
    role_outputs = {r["passwordOutput"] for r in any_run.outputs["redisHa"]["roles"]}
    assert len(role_outputs) == 6 and any_run.secret_outputs == {"passwords", *role_outputs}
    nodes = [n for n in deployment["nodes"] if n["kind"] == "cluster"]
    assert len(nodes) == 6
    assert [n["role"] for n in nodes] == ["master", "replica"] * 3
    assert [n["shard"] for n in nodes] == [1, 1, 2, 2, 3, 3]
    section = deployment["cluster"]
    assert (section["shards"], section["replicasPerShard"], section["nodeTimeout"]) == (3, 1, 5000)
    assert section["busPort"] == 16379 and section["dataDir"] == "/data"
    assert section["settings"]["cluster-config-file"] == "/data/nodes.conf"
    assert section["settings"]["cluster-preferred-endpoint-type"] == "hostname"
    [exporter] = [n for n in deployment["nodes"] if n["kind"] == "cluster-exporter"]
    assert exporter["role"] == "exporter"
    has_sentinel = deployment["topology"] == "both"
    assert bool([n for n in deployment["nodes"] if n["kind"] == "sentinel"]) is has_sentinel
    assert ("masterName" in deployment) is has_sentinel
    assert not set(stack_passwords(any_run.outputs).values()) & set(json.dumps(deployment).split('"'))


def test_cluster_users_have_no_sentinel_user_and_roles_read_the_slot_map(any_run: ProgramRun) -> None:
    settings = load_settings(dev_config(**CLUSTER))
    names = [u.name for u in security.cluster_redis_users(settings)]
    assert "sentinel" not in names and {"admin", "replica", "exporter"} <= set(names)
    for user in security.cluster_redis_users(settings):
        if user.name in {r.name for r in settings.roles}:
            # The discovery commands come after -@dangerous and stay read-only.
            assert user.rules.endswith(security.CLUSTER_DISCOVERY), user.name
            assert "cluster|reset" not in user.rules and "+cluster " not in f"{user.rules} "


# --- Docker ---------------------------------------------------------------------------


def test_docker_resource_counts(dev_cluster: ProgramRun, dev_both: ProgramRun) -> None:
    assert len(dev_cluster.of_type(NETWORK)) == 1
    # the nodes' data, the exporter's and the creation step's secrets
    assert len(dev_cluster.of_type(VOLUME)) == 8
    assert len(containers_of_kind(dev_cluster, "cluster")) == 6
    assert len(containers_of_kind(dev_cluster, "cluster-exporter")) == 1
    assert len(containers_of_kind(dev_cluster, "cluster-create")) == 1
    # a secrets writer for each node, the exporter and the creation step
    assert len(containers_of_kind(dev_cluster, "secrets-writer")) == 8
    assert len(dev_cluster.of_type(CONTAINER)) == 16
    # both: the Sentinel group's 16 containers (8 and a secrets writer each), its
    # volumes and network beside the cluster's
    assert len(dev_both.of_type(CONTAINER)) == 32
    # the cluster's 8, 3 Redis nodes, 3 Sentinel states, and a secrets volume per Redis
    # node, Sentinel and exporter
    assert len(dev_both.of_type(VOLUME)) == 22
    assert len(dev_both.of_type(NETWORK)) == 2


def test_both_topologies_use_distinct_names_ports_and_volumes(dev_both: ProgramRun) -> None:
    containers = dev_both.of_type(CONTAINER)
    names = [c.inputs["name"] for c in containers]
    assert len(names) == len(set(names))
    ports = [(p["ip"], p["external"]) for c in containers for p in c.inputs.get("ports", [])]
    assert len(ports) == len(set(ports)) == 15  # 3 Redis, 3 Sentinels, 6 cluster nodes, 3 exporters
    volumes = [v.inputs["name"] for v in dev_both.of_type(VOLUME)]
    assert len(volumes) == len(set(volumes))
    networks = {n.inputs["name"] for n in dev_both.of_type(NETWORK)}
    assert networks == {"redis-ha-net", "redis-ha-cluster-net"}
    for c in containers_of_kind(dev_both, "cluster"):
        assert [n["name"] for n in c.inputs["networksAdvanced"]] == ["redis-ha-cluster-net"]
    # The Sentinel group is exactly what the sentinel topology deploys, but for the host
    # port of the Sentinels' exporter: the last of the exporters' range, after the
    # cluster's (which kept exporterHostPort + 1 from before the Sentinels had one).
    sentinel_only = run_program(dev_config(), stack="dev")

    def sentinel_group(run: ProgramRun) -> list[dict]:
        nodes = [n for n in run.outputs["redisHa"]["nodes"] if not n["kind"].startswith("cluster")]
        return [{k: v for k, v in n.items() if n["kind"] != "sentinel-exporter" or k != "hostEndpoint"} for n in nodes]

    assert sentinel_group(dev_both) == sentinel_group(sentinel_only)
    ports = {n["kind"]: n["hostEndpoint"] for n in dev_both.outputs["redisHa"]["nodes"] if "exporter" in n["kind"]}
    assert ports == {
        "exporter": "127.0.0.1:19121",
        "cluster-exporter": "127.0.0.1:19122",
        "sentinel-exporter": "127.0.0.1:19123",
    }


def test_docker_cluster_nodes_run_the_cluster_branch_of_redis_conf(dev_cluster: ProgramRun) -> None:
    volumes = {v.inputs["name"] for v in dev_cluster.of_type(VOLUME)}
    for c in containers_of_kind(dev_cluster, "cluster"):
        i = c.inputs
        assert i["command"] == ["redis-server", "/data/redis.conf"]
        assert sorted(u["file"] for u in i["uploads"]) == [
            "/data/healthcheck.sh",
            "/data/lib.sh",
            "/data/node.env",
        ]
        probe_env = parse_env(upload(c, "/data/node.env"))
        assert probe_env["REDIS_HA_KIND"] == "cluster"
        assert probe_env["REDIS_HA_ADMIN_PASSWORD_FILE"] == "/data/admin.password"
        # Nothing that depends on the number of shards: a scale-out leaves the node alone.
        assert "REDIS_HA_CLUSTER_MASTERS" not in probe_env
        assert i["volumes"] == [{"volumeName": f"{i['name']}-data", "containerPath": "/data"}]
        assert i["volumes"][0]["volumeName"] in volumes
        # The files come from its writer, into the data volume, before it starts; their
        # version (secret) is a label, so a change replaces the node.
        writer = next(w for w in containers_of_kind(dev_cluster, "secrets-writer") if w.name == f"{i['name']}-secrets")
        assert writer.inputs["volumes"] == [{"volumeName": f"{i['name']}-data", "containerPath": "/data"}]
        assert writer.urn in c.dependencies
        assert sorted(u["file"].rsplit("/", 1)[1] for u in writer.inputs["uploads"]) == [
            "admin.password",  # the readiness probe reads CLUSTER INFO as admin
            "lib.sh",
            "node.env",
            "redis.conf",
            "secrets-writer.sh",
            "secrets.version",
            "users.acl",
        ]
        [version] = [lab for lab in c.wire["labels"] if lab["label"] == "redis-ha.secrets-version"]
        assert is_secret(version["value"])
        assert i["restart"] == "unless-stopped" and i["wait"] is True
        conf = delivered(dev_cluster, i["name"], "redis.conf")
        for line in (
            "cluster-enabled yes",
            "cluster-config-file /data/nodes.conf",
            "cluster-node-timeout 5000",
            "cluster-port 16379",
            f"cluster-announce-hostname {i['name']}",
            "cluster-preferred-endpoint-type hostname",
            "masteruser replica",
            "appendonly yes",
            "aclfile /data/users.acl",
        ):
            assert f"\n{line}\n" in conf, (i["name"], line)
        assert "\nreplicaof " not in conf  # a cluster node refuses it
        acl = delivered(dev_cluster, i["name"], "users.acl")
        assert "user sentinel " not in acl and "+cluster|slots" in acl


def test_docker_create_step_runs_once_after_every_node(dev_cluster: ProgramRun) -> None:
    [step] = containers_of_kind(dev_cluster, "cluster-create")
    i = step.inputs
    assert (i["restart"], i["mustRun"], i["attach"], i["logs"]) == ("no", False, True, True)
    assert "wait" not in i and "healthcheck" not in i and "ports" not in i
    assert i["command"] == ["sh", "/run/redis-ha/job/cluster-create.sh"]
    assert i["volumes"] == [{"volumeName": "redis-ha-cluster-create-secrets", "containerPath": "/etc/redis-ha"}]
    nodes = {c.urn for c in containers_of_kind(dev_cluster, "cluster")}
    assert nodes <= set(step.dependencies)
    assert upload(step, "/run/redis-ha/job/cluster-create.sh") == node_files.script("cluster-create.sh")
    assert upload(step, "/run/redis-ha/job/lib.sh") == node_files.script("lib.sh")
    env = parse_env(upload(step, "/run/redis-ha/job/node.env"))
    settings = load_settings(dev_config(**CLUSTER))
    expected = rendering.cluster_create_env(
        settings, build_cluster_topology(settings, naming_for(settings)), "/etc/redis-ha/admin.password"
    )
    assert env == {k: str(v) for k, v in expected.items()}
    assert env["REDIS_HA_CLUSTER_MASTERS"].startswith("redis-ha-cluster-1:6379 redis-ha-cluster-3:6379 ")
    assert "redis-ha-cluster-2:6379,redis-ha-cluster-1:6379" in env["REDIS_HA_CLUSTER_REPLICAS"]
    # The scripts and env file are plain; the password file is a secret upload of the step's writer.
    for plain in step.wire["uploads"]:
        assert not is_secret(plain["content"]), plain["file"]
    [writer] = [w for w in dev_cluster.of_type(CONTAINER) if w.name == "redis-ha-cluster-create-secrets"]
    uploads = {u["file"]: u["content"] for u in writer.wire["uploads"]}
    assert is_secret(uploads["/run/redis-ha/incoming/admin.password"])
    assert delivered(dev_cluster, "redis-ha-cluster-create", "admin.password") == user_passwords(dev_cluster)["admin"]


def test_docker_cluster_exporter_reads_a_password_file(dev_cluster: ProgramRun) -> None:
    [exporter] = containers_of_kind(dev_cluster, "cluster-exporter")
    envs = exporter.inputs["envs"]
    assert "REDIS_ADDR=redis://redis-ha-cluster-1:6379" in envs
    assert not [e for e in envs if e.startswith("REDIS_PASSWORD=")]
    passwords = json.loads(delivered(dev_cluster, "redis-ha-cluster-exporter", "exporter-passwords.json"))
    assert sorted(passwords) == sorted(f"redis://redis-ha-cluster-{i}:6379" for i in range(1, 7))
    assert exporter.inputs["ports"] == [{"internal": 9121, "external": 19121, "ip": "127.0.0.1"}]


def test_docker_scale_out_replaces_only_the_step_and_the_exporter(dev_cluster: ProgramRun) -> None:
    update = run_update(dev_config(**CLUSTER, clusterShards=4), dev_cluster, stack="dev")
    before = {c.name: c.inputs for c in dev_cluster.of_type(CONTAINER)}
    after = {c.name: c.inputs for c in update.of_type(CONTAINER)}
    assert sorted(set(after) - set(before)) == [
        "redis-ha-cluster-7",
        "redis-ha-cluster-7-secrets",
        "redis-ha-cluster-8",
        "redis-ha-cluster-8-secrets",
    ]
    changed = sorted(name for name in before if before[name] != after[name])
    # (with their writers: the exporter's password file and the step's script change)
    assert changed == [
        "redis-ha-cluster-create",
        "redis-ha-cluster-exporter",
        "redis-ha-cluster-exporter-secrets",
    ]
    assert after["redis-ha-cluster-8"]["ports"][0]["external"] == 17386


# --- Kubernetes ------------------------------------------------------------------------


def test_every_k8s_manifest_validates_against_the_schema(k8s_run: ProgramRun) -> None:
    resources = [r for r in k8s_run.resources if r.type.startswith("kubernetes:")]
    assert len(resources) >= 10
    assert [r.type for r in resources].count(JOB) == 1
    for resource in resources:
        try:
            kubernetes_validate.validate(manifest(resource), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{resource.type} {resource.name}: {path}: {error.message}")


def test_k8s_cluster_shares_the_namespace(prod_cluster: ProgramRun, prod_both: ProgramRun) -> None:
    for run in (prod_cluster, prod_both):
        [namespace] = run.of_type(NAMESPACE)
        assert manifest(namespace)["metadata"]["name"] == "redis"
        namespaced = [manifest(r) for r in run.resources if r.type.startswith("kubernetes:") and r.type != NAMESPACE]
        assert {m["metadata"]["namespace"] for m in namespaced} == {"redis"}
    # Beside a Sentinel group, the cluster uses the namespace that group created.
    owner = next(r for r in prod_both.resources if r.urn == prod_both.of_type(NAMESPACE)[0].parent)
    assert owner.type == "redis-ha:kubernetes:RedisHA"


def test_k8s_statefulset_runs_one_cluster_node_per_pod(k8s_run: ProgramRun) -> None:
    statefulset = named(k8s_run, STATEFULSET)["redis-ha-cluster"]
    spec = statefulset["spec"]
    assert spec["replicas"] == 6 and spec["serviceName"] == "redis-ha-cluster-headless"
    assert spec["podManagementPolicy"] == "Parallel"
    [claim] = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    pod = pod_spec(statefulset)
    assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False
    redis = next(c for c in pod["containers"] if c["name"] == "redis")
    assert redis["command"] == ["redis-server", "/etc/redis-ha/redis.conf"]
    assert {(p["name"], p["containerPort"]) for p in redis["ports"]} == {("redis", 6379), ("cluster-bus", 16379)}
    assert {m["mountPath"]: m["name"] for m in redis["volumeMounts"]}["/data"] == "data"
    [init] = pod["initContainers"]
    assert 'cp "/run/redis-ha/config/$POD_NAME.redis.conf" /etc/redis-ha/redis.conf' in init["command"][-1]
    volumes = {v["name"] for v in pod["volumes"]}
    mounted = {m["name"] for c in [*pod["containers"], init] for m in c.get("volumeMounts", [])}
    assert mounted == volumes | {"data"}
    for c in [*pod["containers"], init]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True, c["name"]
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}, c["name"]
    # Spread over Kubernetes nodes without requiring six of them.
    affinity = pod["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100


def test_k8s_each_pod_gets_its_own_cluster_config(k8s_run: ProgramRun) -> None:
    config = prod_config(**(CLUSTER if k8s_run.outputs["redisHa"]["topology"] == "cluster" else BOTH))
    settings = load_settings(config)
    cluster = build_cluster_topology(settings, naming_for(settings))
    group = build_plan(settings).parts[-1].group("cluster")
    passwords = user_passwords(k8s_run)
    [secret] = [r for r in k8s_run.of_type(SECRET) if r.inputs["metadata"]["name"] == "redis-ha-cluster"]
    assert is_secret(secret.wire["stringData"])
    data = secret.inputs["stringData"]
    assert sorted(data) == sorted(
        [f"{n.name}.redis.conf" for n in cluster.nodes] + ["users.acl", rendering.ADMIN_PASSWORD_FILE]
    )
    for node in cluster.nodes:
        expected = group.files(node, passwords)
        assert data[f"{node.name}.redis.conf"] == expected["redis.conf"]
        hostname = f"{node.name}.redis-ha-cluster-headless.redis.svc.cluster.local"
        assert f"\ncluster-announce-hostname {hostname}\n" in expected["redis.conf"]
        assert "\ncluster-config-file /data/nodes.conf\n" in expected["redis.conf"]
    assert data["users.acl"] == rendering.render_users_acl(security.cluster_redis_users(settings), passwords)


def test_k8s_no_configmap_holds_a_password_or_hash(k8s_run: ProgramRun) -> None:
    values = secret_values(k8s_run)
    configmaps = k8s_run.of_type(CONFIGMAP)
    assert "redis-ha-cluster-scripts" in named(k8s_run, CONFIGMAP)
    for configmap in configmaps:
        text = " ".join(plain_strings(configmap.inputs))
        assert not [v for v in values if v in text], configmap.name
    for resource in k8s_run.of_type(STATEFULSET) + k8s_run.of_type(JOB):
        m = manifest(resource)
        for c in [*pod_spec(m)["containers"], *pod_spec(m).get("initContainers", [])]:
            literal = " ".join(str(e.get("value", "")) for e in c.get("env", []))
            assert not [v for v in values if v in literal], (resource.name, c["name"])


def test_k8s_create_job_runs_the_rendered_script_after_the_statefulset(k8s_run: ProgramRun) -> None:
    [job_resource] = k8s_run.of_type(JOB)
    job = manifest(job_resource)
    statefulset = next(r for r in k8s_run.of_type(STATEFULSET) if r.name == "redis-ha-cluster")
    assert statefulset.urn in job_resource.dependencies
    scripts = named(k8s_run, CONFIGMAP)["redis-ha-cluster-scripts"]["data"]
    assert scripts["cluster-create.sh"] == node_files.script("cluster-create.sh")
    assert job["metadata"]["name"] == k8s_deployment.job_name(
        build_plan(load_settings(prod_config(**CLUSTER))).parts[0]
    )
    assert len(job["metadata"]["name"]) <= 63
    settings = load_settings(prod_config(**CLUSTER))
    expected = rendering.cluster_create_env(
        settings, build_cluster_topology(settings, naming_for(settings)), "/run/redis-ha/auth/admin.password"
    )
    assert parse_env(scripts["create.env"]) == {k: str(v) for k, v in expected.items()}
    pod = pod_spec(job)
    # The Job sees its own env file as node.env beside the script and the library.
    [volume] = [v for v in pod["volumes"] if v["name"] == "scripts"]
    assert {i["key"]: i["path"] for i in volume["configMap"]["items"]} == {
        "cluster-create.sh": "cluster-create.sh",
        "create.env": "node.env",
        "lib.sh": "lib.sh",
    }
    assert pod["restartPolicy"] == "Never" and pod["enableServiceLinks"] is False
    [container] = pod["containers"]
    assert container["command"] == ["sh", "/opt/redis-ha/cluster-create.sh"]
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")
    # Only the admin password reaches the Job, not the node configs.
    assert auth["secret"]["items"] == [{"key": "admin.password", "path": "admin.password"}]
    assert auth["secret"]["secretName"] == "redis-ha-cluster"
    assert job["spec"]["backoffLimit"] >= 1


def test_k8s_services_and_policies_select_the_intended_pods(k8s_run: ProgramRun) -> None:
    statefulsets = named(k8s_run, STATEFULSET)
    pod_labels = {name: s["spec"]["template"]["metadata"]["labels"] for name, s in statefulsets.items()}
    job_labels = manifest(k8s_run.of_type(JOB)[0])["spec"]["template"]["metadata"]["labels"]
    services = named(k8s_run, SERVICE)
    for name in ("redis-ha-cluster-headless", "redis-ha-cluster", "redis-ha-cluster-exporter"):
        selected = [n for n, labels in pod_labels.items() if selects(services[name]["spec"]["selector"], labels)]
        assert selected == ["redis-ha-cluster"], name
    headless = services["redis-ha-cluster-headless"]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert [(p["name"], p["port"]) for p in headless["ports"]] == [("redis", 6379), ("cluster-bus", 16379)]
    # Sentinel-group Services and PDBs never select cluster pods, nor the other way round.
    for name, service in services.items():
        if not name.startswith("redis-ha-cluster"):
            assert not selects(service["spec"]["selector"], pod_labels["redis-ha-cluster"]), name
    policy = named(k8s_run, NETWORKPOLICY)["redis-ha-cluster"]
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels["redis-ha-cluster"])
    rules = {r["ports"][0]["port"]: r["from"] for r in policy["spec"]["ingress"]}
    # The bus only between cluster nodes; the client port for the Job and labelled clients.
    [bus_peer] = rules[16379]
    assert selects(bus_peer["podSelector"]["matchLabels"], pod_labels["redis-ha-cluster"])
    assert not selects(bus_peer["podSelector"]["matchLabels"], job_labels)
    assert any(
        "namespaceSelector" not in p and selects(p["podSelector"]["matchLabels"], job_labels) for p in rules[6379]
    )
    assert any(p.get("podSelector", {}).get("matchLabels") == {"redis-ha-client": "true"} for p in rules[6379])
    budgets = named(k8s_run, PDB)
    assert budgets["redis-ha-cluster"]["spec"]["maxUnavailable"] == 1


def test_k8s_exporter_sidecar_reads_a_password_file(k8s_run: ProgramRun) -> None:
    pod = pod_spec(named(k8s_run, STATEFULSET)["redis-ha-cluster"])
    exporter = next(c for c in pod["containers"] if c["name"] == "exporter")
    env = {e["name"]: e.get("value") for e in exporter["env"]}
    assert env["REDIS_ADDR"] == "redis://localhost:6379"
    assert env["REDIS_PASSWORD_FILE"] == "/run/redis-ha/exporter/passwords.json"
    assert "REDIS_PASSWORD" not in env
    [secret] = [r for r in k8s_run.of_type(SECRET) if r.inputs["metadata"]["name"] == "redis-ha-cluster-exporter"]
    assert is_secret(secret.wire["stringData"])
    assert json.loads(secret.inputs["stringData"]["passwords.json"]) == {
        "redis://localhost:6379": user_passwords(k8s_run)["exporter"]
    }


def test_k8s_outputs_name_kubectl_hosts(prod_cluster: ProgramRun) -> None:
    deployment = prod_cluster.outputs["redisHa"]
    nodes = {n["name"]: n for n in deployment["nodes"]}
    assert (
        nodes["redis-ha-cluster-0"]["testinfraHost"] == "kubectl://redis-ha-cluster-0?namespace=redis&container=redis"
    )
    assert nodes["redis-ha-cluster-0"]["host"] == "redis-ha-cluster-0.redis-ha-cluster-headless.redis.svc.cluster.local"
    assert nodes["redis-ha-cluster-0"]["hostEndpoint"] is None
    exporter = nodes["redis-ha-cluster-exporter"]
    assert exporter["testinfraHost"] == "kubectl://redis-ha-cluster-0?namespace=redis&container=exporter"
    assert deployment["cluster"]["createStep"] == manifest(prod_cluster.of_type(JOB)[0])["metadata"]["name"]
    assert deployment["confDir"] == "/etc/redis-ha"


def test_k8s_scale_out_adds_pods_without_rolling_the_existing_ones(prod_cluster: ProgramRun) -> None:
    update = run_update(prod_config(**CLUSTER, clusterShards=4), prod_cluster, stack="prod")
    before = named(prod_cluster, STATEFULSET)["redis-ha-cluster"]
    after = named(update, STATEFULSET)["redis-ha-cluster"]
    assert (before["spec"]["replicas"], after["spec"]["replicas"]) == (6, 8)
    # Same pod template: the six running pods are not restarted.
    assert after["spec"]["template"] == before["spec"]["template"]
    # A new Job (its name carries the script's digest) runs the scale-out.
    old_job, new_job = (manifest(r.of_type(JOB)[0])["metadata"]["name"] for r in (prod_cluster, update))
    assert old_job != new_job
    env = parse_env(named(update, CONFIGMAP)["redis-ha-cluster-scripts"]["data"]["create.env"])
    assert (
        "redis-ha-cluster-6.redis-ha-cluster-headless.redis.svc.cluster.local:6379" in env["REDIS_HA_CLUSTER_MASTERS"]
    )
    # The pods' own files do not list the shards: the running pods keep theirs.
    before_scripts = named(prod_cluster, CONFIGMAP)["redis-ha-cluster-scripts"]["data"]
    after_scripts = named(update, CONFIGMAP)["redis-ha-cluster-scripts"]["data"]
    assert before_scripts["cluster.env"] == after_scripts["cluster.env"]
