"""The Redis Cluster topology under Pulumi's mocks, on both backends.

Docker: the resource graph the e2e applier creates (nodes, volumes, exporter, the
one-shot creation step and what it waits for). Both: secrets only inside secret
inputs, `topology: both` side by side, and a scale-out that leaves the existing nodes
untouched. Kubernetes: tests/program/test_cluster_k8s_program.py.
"""

from __future__ import annotations

import json

import pytest
from redis_ha.components import node_files, rendering, security
from redis_ha.components.outputs import stack_passwords
from redis_ha.components.program import naming_for
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_cluster_topology

from tests.support.cluster_program import (
    CLUSTER,
    CONTAINER,
    NETWORK,
    VOLUME,
    containers_of_kind,
    delivered,
    dev_config,
    secret_values,
    upload,
    user_passwords,
)
from tests.support.node_scripts import parse_env
from tests.support.program import ProgramRun, is_secret, plain_strings, run_program
from tests.support.updates import run_update


@pytest.fixture(scope="module", params=["dev_cluster", "dev_both", "prod_cluster", "prod_both"])
def any_run(request: pytest.FixtureRequest) -> ProgramRun:
    return request.getfixturevalue(request.param)


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
