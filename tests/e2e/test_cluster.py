"""The Redis Cluster topology on the real Docker engine: six nodes created by the
program (under mocks) and the applier, checked by redis-ha-verify (non-destructive and
destructive cluster cases), scaled out from 3 to 4 shards with an update, removed.

The scale-out is `pulumi up` after `clusterShards: 4`: the program runs again (with
the generated passwords kept, as the engine keeps them) and the applier applies the
difference: two new nodes and volumes, the replaced one-shot creation step (its
script lists the new nodes, so it runs again) and the exporter (its password file
lists every node). The six existing nodes must be left alone.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from redis_ha.components.outputs import stack_passwords

from tests.e2e.day2 import Stack
from tests.support.applier import DockerApplier
from tests.support.e2e_stack import e2e_config, verify
from tests.support.program import run_program
from tests.support.updates import run_update
from tests.verify.cluster_access import cluster_client, healthy_cluster, nodes_view, wait_healthy_cluster


@pytest.fixture(scope="module")
def cluster(
    test_images: None, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    name = f"rhce2e-{secrets.token_hex(3)}"
    config = e2e_config(name, topology="cluster")
    run = run_program(config, stack="dev")
    applier = DockerApplier(docker_client)
    deployment = Stack(name, config, run, applier, tmp_path_factory.mktemp("cluster") / "outputs.json")
    try:
        applier.apply(run, deployment.applied)
        deployment.write_outputs()
        yield deployment
    finally:
        errors = applier.destroy(deployment.applied)
        assert not errors, f"teardown left resources behind: {errors}"
        label = f"redis-ha.deployment={name}"
        assert docker_client.containers.list(all=True, filters={"label": label}) == []
        assert docker_client.volumes.list(filters={"label": label}) == []


def _containers(client: docker.DockerClient, name: str, kind: str) -> list[Any]:
    filters = {"label": [f"redis-ha.deployment={name}", f"redis-ha.kind={kind}"]}
    return client.containers.list(all=True, filters=filters)


def test_six_nodes_are_deployed_and_the_cluster_is_created(cluster: Stack, docker_client: docker.DockerClient) -> None:
    nodes = _containers(docker_client, cluster.name, "cluster")
    assert len(nodes) == 6 and all(c.status == "running" for c in nodes)
    assert _containers(docker_client, cluster.name, "sentinel") == []
    [step] = _containers(docker_client, cluster.name, "cluster-create")
    assert step.attrs["State"]["ExitCode"] == 0
    logs = cluster.applied.logs[f"{cluster.name}-cluster-create"]
    assert "creating it from the masters" in logs and "done: 6 nodes" in logs, logs[-2000:]
    state = healthy_cluster(cluster.outputs, cluster.nodes("cluster"))
    # The deploy-time roles in the outputs are the live ones: creation kept the shards.
    deployed_masters = sorted(n["name"] for n in cluster.outputs.nodes("cluster") if n["role"] == "master")
    assert sorted(state.masters) == deployed_masters


def test_verification_suite_passes_on_the_cluster(cluster: Stack) -> None:
    result = verify(cluster.outputs_path)
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("redis-ha-verify: ") and summary.endswith(", 0 do not"), summary
    # 6 nodes checked 8 ways each, the cluster-wide cases and 6 roles: a run that
    # checked far fewer collected the wrong thing (or Sentinel cases that would fail).
    assert int(summary.split()[1]) >= 55, summary


def test_no_password_in_container_definitions(cluster: Stack, docker_client: docker.DockerClient) -> None:
    passwords = stack_passwords(cluster.run.outputs).values()
    for name in cluster.applied.containers:
        definition = str(docker_client.api.inspect_container(name)["Config"])
        assert not [p for p in passwords if p in definition], f"{name}: a password is in the container definition"
    logs = "\n".join(cluster.applied.logs.values())
    assert not [p for p in passwords if p in logs], "a password is in the creation step's output"


def test_creation_step_run_again_changes_nothing(cluster: Stack, docker_client: docker.DockerClient) -> None:
    name = f"{cluster.name}-cluster-create"
    before = sorted((line.id, line.is_master, line.slots) for line in nodes_view(cluster.nodes("cluster")[0]))
    docker_client.api.start(name)
    status = docker_client.api.wait(name, timeout=300)
    logs = docker_client.api.logs(name, tail=5).decode()
    assert status["StatusCode"] == 0, logs
    assert "nothing to change: 6 nodes" in logs, logs
    after = sorted((line.id, line.is_master, line.slots) for line in nodes_view(cluster.nodes("cluster")[0]))
    assert after == before


def test_cluster_drills_pass(cluster: Stack) -> None:
    result = verify(cluster.outputs_path, "--destructive", "--", "-m", "destructive")
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    # Exactly the cluster drills: the Sentinel drills are deselected, not skipped.
    assert summary == "redis-ha-verify: 2 properties hold, 0 do not", summary


def test_scale_out_from_three_to_four_shards(cluster: Stack) -> None:
    outputs = cluster.outputs
    client = cluster_client(outputs)
    keys = [f"redis-ha:e2e:scale:{uuid.uuid4().hex}:{i}" for i in range(200)]
    for key in keys:
        client.set(key, key, ex=3600)
    client.close()

    previous = cluster.run
    update = run_update({**cluster.config, "clusterShards": 4}, previous, stack="dev")
    actions = cluster.applier.update(update, cluster.applied, previous)
    n = cluster.name
    assert sorted(actions) == sorted(
        [
            f"created {n}-cluster-7-data",
            f"created {n}-cluster-8-data",
            f"created {n}-cluster-7",
            f"created {n}-cluster-8",
            # each new node's secrets writer (into its data volume); the exporter's
            # password file names the new nodes too (components/docker/secrets.py)
            f"created {n}-cluster-7-secrets",
            f"created {n}-cluster-8-secrets",
            f"replaced {n}-cluster-exporter-secrets",
            f"replaced {n}-cluster-exporter",
            f"replaced {n}-cluster-create",
        ]
    ), actions
    cluster.run = update
    cluster.write_outputs()
    logs = cluster.applied.logs[f"{n}-cluster-create"]
    assert "adding master" in logs and "rebalancing slots" in logs and "done: 8 nodes" in logs, logs[-3000:]

    outputs = cluster.outputs
    nodes = cluster.nodes("cluster")
    assert len(nodes) == 8
    state = wait_healthy_cluster(outputs, nodes, timeout=60)
    assert len(state.masters) == 4
    masters = [line for line in nodes_view(nodes[0]) if line.is_master]
    assert len(masters) == 4 and all(line.slots for line in masters), masters
    client = cluster_client(outputs)
    assert [client.get(k) for k in keys] == keys
    # Keys moved onto the new shard with its slots.
    new_master = next(node for node in nodes if node.name == f"{n}-cluster-7")
    owners = {client.get_node_from_key(k).name for k in keys}
    assert new_master.spec["hostEndpoint"] in owners
    client.close()


def test_verification_suite_passes_after_the_scale_out(cluster: Stack) -> None:
    assert len(cluster.outputs.nodes("cluster")) == 8
    result = verify(cluster.outputs_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
