"""The whole program for the dev stack under Pulumi's mocks: the resource graph."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi
import pytest
from redis_ha.components import node_files
from redis_ha.components.outputs import stack_passwords

from tests.support.node_scripts import parse_env
from tests.support.program import ProgramRun, is_secret, plain_strings, run_program, stack_config, use_mocks

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program(stack_config("dev"), stack="dev")


def _containers(run: ProgramRun, kind: str) -> list:
    return [
        c for c in run.of_type(CONTAINER) if {"label": "redis-ha.kind", "value": kind} in c.inputs.get("labels", [])
    ]


def _upload(container: Any, path: str) -> str:
    """The content of one upload of a container."""
    return next(u["content"] for u in container.inputs["uploads"] if u["file"] == path)


def _plain_file(path: str) -> bool:
    """A node script or its env file (components/node_files.py): no secret in it."""
    return path.endswith(".sh") or path.endswith(f"/{node_files.ENV_FILE}")


def _delivered(run: ProgramRun, node: str, file_name: str) -> str:
    """A secret file as the node's secrets writer delivers it."""
    [writer] = [c for c in run.of_type(CONTAINER) if c.name == f"{node}-secrets"]
    return next(u["content"] for u in writer.inputs["uploads"] if u["file"] == f"/run/redis-ha/incoming/{file_name}")


def test_resource_counts(dev: ProgramRun) -> None:
    assert len(dev.of_type(NETWORK)) == 1
    # Redis data, each Sentinel's state, and the secrets of every node and exporter
    assert len(dev.of_type(VOLUME)) == 14
    assert len(_containers(dev, "redis")) == 3
    assert len(_containers(dev, "sentinel")) == 3
    assert len(_containers(dev, "exporter")) == 1
    assert len(_containers(dev, "sentinel-exporter")) == 1
    assert len(_containers(dev, "secrets-writer")) == 8
    assert len(dev.of_type(CONTAINER)) == 16


def test_every_docker_resource_is_a_child_of_the_component(dev: ProgramRun) -> None:
    component = dev.by_name("redis-ha")
    assert component.type == "redis-ha:docker:RedisHA"
    docker_resources = [r for r in dev.resources if r.type.startswith("docker:")]
    assert docker_resources
    assert all(r.parent == component.urn for r in docker_resources), [r.name for r in docker_resources]


def test_component_receives_no_props(dev: ProgramRun) -> None:
    # Args and secrets passed as component props would land in state.
    assert dev.by_name("redis-ha").inputs == {}
    assert dev.by_name("redis-ha-credentials").inputs == {}


def test_redis_nodes_run_their_rendered_config_from_a_volume(dev: ProgramRun) -> None:
    volumes = {v.inputs["name"] for v in dev.of_type(VOLUME)}
    for c in _containers(dev, "redis"):
        i = c.inputs
        # The role comes from the Sentinels at every start (deploy-time role only on a fresh deployment).
        assert i["command"] == ["sh", "/data/redis-start.sh"]
        # Only plain scripts: the secret files come through the node's secrets volume.
        assert sorted(u["file"] for u in i["uploads"]) == [
            "/data/fence.sh",
            "/data/healthcheck.sh",
            "/data/lib.sh",
            "/data/node.env",
            "/data/redis-start.sh",
        ]
        env = parse_env(_upload(c, "/data/node.env"))
        assert env["REDIS_HA_KIND"] == "redis" and env["REDIS_HA_SECRETS_DIR"] == "/run/redis-ha/config"
        sentinels = "redis-ha-sentinel-1:26379 redis-ha-sentinel-2:26379 redis-ha-sentinel-3:26379"
        assert env["REDIS_HA_SENTINELS"] == sentinels
        assert env["REDIS_HA_CONF"] == "/data/redis.conf" and env["REDIS_HA_PER_NODE_FILES"] == "0"
        assert _upload(c, "/data/redis-start.sh") == node_files.script("redis-start.sh")
        assert [v["containerPath"] for v in i["volumes"]] == ["/data", "/run/redis-ha/config"]
        assert {v["volumeName"] for v in i["volumes"]} <= volumes
        assert i["volumes"][1]["volumeName"] == f"{i['name']}-secrets"
        [network] = i["networksAdvanced"]
        # the address: tests/program/test_docker_addresses.py
        assert network["name"] == "redis-ha-net" and network["aliases"] == [i["name"]]
        [writer] = [w for w in dev.of_type(CONTAINER) if w.name == f"{i['name']}-secrets"]
        assert sorted(u["file"] for u in writer.inputs["uploads"]) == [
            f"/run/redis-ha/incoming/{f}"
            for f in (
                "admin.password",
                "lib.sh",
                "node.env",
                "redis.conf",
                "secrets-writer.sh",
                "secrets.version",
                "sentinel-client.password",
                "users.acl",
            )
        ]
        writer_env = parse_env(_upload(writer, "/run/redis-ha/incoming/node.env"))
        assert writer_env["REDIS_HA_WRITER_FILES"] == "redis.conf users.acl admin.password sentinel-client.password"
        conf = _delivered(dev, i["name"], "redis.conf")
        assert "aclfile /data/users.acl\n" in conf
        assert f"replica-announce-ip {i['name']}" in conf
        assert ("replicaof redis-ha-redis-1 6379" in conf) == (i["name"] != "redis-ha-redis-1")


def test_sentinels_monitor_the_master_by_hostname(dev: ProgramRun) -> None:
    for c in _containers(dev, "sentinel"):
        i = c.inputs
        assert i["command"] == ["sh", "/data/sentinel-start.sh"]
        # The state Sentinel rewrites is on its own volume; the rendered file only seeds it.
        assert i["volumes"] == [
            {"volumeName": f"{i['name']}-data", "containerPath": "/data"},
            {"volumeName": f"{i['name']}-secrets", "containerPath": "/run/redis-ha/config"},
        ]
        assert not [u for u in i["uploads"] if not _plain_file(u["file"])]
        conf = _delivered(dev, i["name"], "sentinel.conf")
        assert "dir /data\n" in conf
        assert "sentinel monitor redis-ha redis-ha-redis-1 6379 2" in conf
        assert "sentinel resolve-hostnames yes" in conf
        assert f"sentinel announce-ip {i['name']}" in conf
        assert "sentinel myid" not in conf  # each Sentinel must generate its own


def test_sentinels_start_after_every_redis_node(dev: ProgramRun) -> None:
    redis_urns = {c.urn for c in _containers(dev, "redis")}
    for c in _containers(dev, "sentinel"):
        assert redis_urns <= set(c.dependencies), c.name


def test_nodes_of_a_group_form_a_chain_so_changes_roll_one_at_a_time(dev: ProgramRun) -> None:
    for kind in ("redis", "sentinel"):
        containers = sorted(_containers(dev, kind), key=lambda c: c.name)
        assert [c.name for c in containers] == [f"redis-ha-{kind}-{i}" for i in (1, 2, 3)]
        for previous, current in zip(containers, containers[1:], strict=False):
            assert previous.urn in current.dependencies, current.name
        others = {c.urn for c in containers[1:]}
        assert not others & set(containers[0].dependencies)


def test_containers_stop_gracefully_and_redis_has_time_to_hand_over(dev: ProgramRun) -> None:
    for c in _containers(dev, "redis"):
        # failoverTimeout 10 s in the dev stack: the hand-over waits up to 15 s, then SHUTDOWN saves.
        assert c.inputs["destroyGraceSeconds"] == c.inputs["stopTimeout"] == 45, c.name
        assert "--sentinel" not in c.inputs["command"]
    for c in dev.of_type(CONTAINER):
        if c in _containers(dev, "secrets-writer"):
            continue
        assert c.inputs["destroyGraceSeconds"] >= 10, c.name


def test_every_container_has_a_healthcheck_and_waits_for_it(dev: ProgramRun) -> None:
    for c in dev.of_type(CONTAINER):
        if c in _containers(dev, "secrets-writer"):
            # one run, awaited (attach) instead
            assert c.inputs["attach"] is True and c.inputs["mustRun"] is False and c.inputs["restart"] == "no"
            continue
        health = c.inputs["healthcheck"]
        assert health["tests"][0] == "CMD" and len(health["tests"]) > 1, c.name
        assert c.inputs["wait"] is True
        assert c.inputs["restart"] == "unless-stopped"


def test_ports_are_published_on_loopback_only(dev: ProgramRun) -> None:
    published = [(c.name, p) for c in dev.of_type(CONTAINER) for p in c.inputs.get("ports", [])]
    assert len(published) == 8
    assert all(p["ip"] == "127.0.0.1" for _, p in published), published


def test_no_secret_in_plain_text_in_any_registered_input(dev: ProgramRun) -> None:
    # admin, replica, sentinel, exporter, backup, sentinel-client, sentinel-exporter, 6 roles
    assert len(dev.passwords) == 13
    secrets = set(dev.passwords.values())
    secrets |= {hashlib.sha256(p.encode()).hexdigest() for p in dev.passwords.values()}
    for r in dev.resources:
        plain = " ".join(plain_strings(r.wire))
        leaked = [s for s in secrets if s in plain]
        assert not leaked, f"{r.type} {r.name} carries a password or its hash outside a secret"
    # and the config files that hold passwords were registered as secrets
    for c in _containers(dev, "redis") + _containers(dev, "sentinel") + _containers(dev, "secrets-writer"):
        for upload in c.wire["uploads"]:
            if not _plain_file(upload["file"]):
                assert is_secret(upload["content"]), upload["file"]
            else:
                assert not is_secret(upload["content"]), upload["file"]


def test_outputs_describe_every_node_and_keep_passwords_secret(dev: ProgramRun) -> None:
    deployment = dev.outputs["redisHa"]
    # The system users' passwords in one secret output, each role's in its own.
    role_outputs = [f"{r}Password" for r in ("cache", "sessions", "ratelimit", "celery", "pubsub", "analytics")]
    assert set(dev.outputs) == {"redisHa", "passwords", "prometheusScrapeConfigs", *role_outputs}
    assert dev.secret_outputs == {"passwords", *role_outputs}
    assert sorted(dev.outputs["passwords"]) == sorted(
        ["admin", "replica", "sentinel", "exporter", "backup", "sentinel-client", "sentinel-exporter"]
    )
    assert [r["passwordOutput"] for r in deployment["roles"]] == role_outputs
    assert len(set(stack_passwords(dev.outputs).values())) == 13
    assert not set(stack_passwords(dev.outputs).values()) & set(json.dumps(deployment).split('"'))
    nodes = {n["name"]: n for n in deployment["nodes"]}
    assert sorted(nodes) == sorted(
        [f"redis-ha-redis-{i}" for i in (1, 2, 3)]
        + [f"redis-ha-sentinel-{i}" for i in (1, 2, 3)]
        + ["redis-ha-exporter", "redis-ha-sentinel-exporter"]
    )
    assert nodes["redis-ha-redis-1"] == {
        "name": "redis-ha-redis-1",
        "kind": "redis",
        "role": "master",
        "testinfraHost": "docker://redis-ha-redis-1",
        "host": "redis-ha-redis-1",
        "port": 6379,
        "hostEndpoint": "127.0.0.1:16379",
    }
    assert deployment["masterName"] == "redis-ha" and deployment["quorum"] == 2
    assert deployment["protectedSettings"]["maxmemory"] == str(256 * 1024 * 1024)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"quorum": 4}, "redis-ha:quorum"),
        ({"maxmemoryPolicy": "allkeys-lru"}, "redis-ha:maxmemoryPolicy"),
        ({"replica": 2}, "redis-ha:replica"),
    ],
)
def test_bad_config_fails_before_any_resource_exists(override: dict, key: str) -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError, match=key):
        run_program({**stack_config("dev"), **override}, stack="dev", run=run)
    assert run.resources == []


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"adminPassword": "Too-Short-pw"}, "redis-ha:adminPassword"),
        ({"replicaPassword": "a replica secret with spaces"}, "redis-ha:replicaPassword"),
        ({"sentinelClientPassword": 'Sentinel"Client"Secret'}, "redis-ha:sentinelClientPassword"),
        ({"cachePassword": "Cache#Role#Secret#123"}, "redis-ha:cachePassword"),
        ({"masterPassword": "Valid-Looking-Secret-42"}, "redis-ha:masterPassword"),
        # valid passwords before the bad one are no reason to start
        (
            {"adminPassword": "Good-Admin-Secret-1", "celeryPassword": "celery\\secret\\value"},
            "redis-ha:celeryPassword",
        ),
    ],
)
def test_bad_password_fails_before_any_resource_naming_only_its_key(override: dict, key: str) -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError) as caught:
        run_program({**stack_config("dev"), **override}, stack="dev", run=run)
    assert run.resources == []
    message = str(caught.value)
    assert message.startswith(f"{key}: invalid value <secret>; allowed: ")
    assert not [v for v in override.values() if v in message]


def test_configured_sentinel_client_and_role_passwords_are_used() -> None:
    configured = {"sentinelClientPassword": "Sentinel-Client-Secret-7", "cachePassword": "Cache-Role-Secret~42+="}
    run = run_program({**stack_config("dev"), **configured}, stack="dev")
    assert run.outputs["passwords"]["sentinel-client"] == configured["sentinelClientPassword"]
    assert run.outputs["cachePassword"] == configured["cachePassword"]
    # generated for everyone else only
    assert len(run.passwords) == 11 and not [n for n in run.passwords if n.endswith(("-sentinel-client", "-cache"))]

    def digest(password: str) -> str:
        return "#" + hashlib.sha256(password.encode()).hexdigest()

    for c in _containers(run, "redis"):
        acl = _delivered(run, c.name, "users.acl")
        assert f"user cache on {digest(configured['cachePassword'])} " in acl, c.name
    for c in _containers(run, "sentinel"):
        conf = _delivered(run, c.name, "sentinel.conf")
        assert f"user sentinel-client on {digest(configured['sentinelClientPassword'])} " in conf, c.name


@pytest.fixture
def mocks() -> ProgramRun:
    return use_mocks()


@pulumi.runtime.test
def test_component_deployment_output_names_the_docker_hosts(mocks: ProgramRun) -> pulumi.Output:
    from redis_ha.components.docker.deployment import PartArgs, RedisHA
    from redis_ha.components.program import build_plan
    from redis_ha.components.settings_load import load_settings

    settings = load_settings({"backend": "docker", "name": "unit"})
    passwords = {
        u: pulumi.Output.secret(f"pw-{u}")
        for u in ("admin", "replica", "sentinel", "exporter", "backup", "sentinel-client", "sentinel-exporter")
    }
    passwords |= {r.name: pulumi.Output.secret(f"pw-{r.name}") for r in settings.roles}
    ha = RedisHA("unit", PartArgs(settings, build_plan(settings).parts[0], passwords))

    def check(deployment: dict) -> None:
        hosts = [n["testinfraHost"] for n in deployment["nodes"]]
        assert hosts[:3] == ["docker://unit-redis-1", "docker://unit-redis-2", "docker://unit-redis-3"]
        assert all(h.startswith("docker://unit-") for h in hosts)

    return ha.deployment.apply(check)


def test_no_upload_has_an_owner_and_secrets_reach_their_reader_through_a_writer(dev: ProgramRun) -> None:
    """pulumi-docker uploads with copyUIDGID whenever an owner or group is set, which
    fails on a host without the container's user (docs/pulumi-engine.md): no upload sets
    either. A root-owned 0600 upload reaches a root writer with CHOWN, DAC_OVERRIDE and
    FOWNER only, which hands the files to the reader's uid in a volume the reader mounts."""
    containers = dev.of_type(CONTAINER)
    assert not [
        (c.name, u["file"]) for c in containers for u in c.inputs.get("uploads", []) if {"owner", "group"} & set(u)
    ]
    writers = _containers(dev, "secrets-writer")
    for w in writers:
        i = w.inputs
        assert i["user"] == "0:0"
        assert i["capabilities"] == {"adds": ["CHOWN", "DAC_OVERRIDE", "FOWNER"], "drops": ["ALL"]}
        assert [v["containerPath"] for v in i["volumes"]] == ["/data"]
        for u in i["uploads"]:
            if not u.get("executable"):
                assert u["permissions"] == "0600", (w.name, u["file"])
        consumer = next(c for c in containers if c.name == w.name.removesuffix("-secrets"))
        mounted = {v["volumeName"] for v in consumer.inputs["volumes"]}
        assert i["volumes"][0]["volumeName"] in mounted, w.name
        assert w.urn in consumer.dependencies, w.name
        uid = "59000" if "exporter" in w.name else "999"
        assert consumer.inputs["user"] == uid
        env = next(u["content"] for u in i["uploads"] if u["file"].endswith("/node.env"))
        assert f"REDIS_HA_WRITER_OWNER={uid}\n" in env, w.name
    assert len(writers) == 8
    [exporter] = _containers(dev, "exporter")
    assert exporter.inputs["volumes"] == [{"volumeName": "redis-ha-exporter-secrets", "containerPath": "/etc/redis-ha"}]
    assert "REDIS_PASSWORD_FILE=/etc/redis-ha/exporter-passwords.json" in exporter.inputs["envs"]
    assert json.loads(_delivered(dev, "redis-ha-exporter", "exporter-passwords.json"))
