"""The Redis Cluster topology under Pulumi's mocks, on Kubernetes: the manifests no
cluster here can run, checked for what a cluster would enforce and validated, strictly,
against the Kubernetes OpenAPI schema (kubernetes-validate, offline), and a scale-out
that leaves the existing pods untouched.
"""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version
from redis_ha.components import node_files, rendering, security
from redis_ha.components.kubernetes import deployment as k8s_deployment
from redis_ha.components.program import build_plan, naming_for
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_cluster_topology

from tests.support.cluster_program import (
    BOTH,
    CLUSTER,
    CONFIGMAP,
    JOB,
    NAMESPACE,
    NETWORKPOLICY,
    PDB,
    SECRET,
    SERVICE,
    STATEFULSET,
    named,
    pod_spec,
    prod_config,
    secret_values,
    selects,
    user_passwords,
)
from tests.support.node_scripts import parse_env
from tests.support.program import ProgramRun, is_secret, manifest, plain_strings
from tests.support.updates import run_update

KUBERNETES_VERSION = latest_version()


@pytest.fixture(scope="module", params=["prod_cluster", "prod_both"])
def k8s_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


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
