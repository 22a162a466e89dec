"""examples/app-with-redis (a program of its own using `redis_ha.RedisHA`) under Pulumi's
mocks: the RedisHA takes the program's provider and network, its resources are its
children, and the outputs it returns are what the application is given."""

from __future__ import annotations

import runpy

import pytest
from redis_ha.components.settings_base import SettingsError

from redis_ha import RedisCluster, RedisClusterArgs, RedisHA, RedisHAArgs
from tests.support.program import ROOT, ProgramRun, Registered, is_secret, plain_strings, run_program

EXAMPLE = ROOT / "examples" / "app-with-redis"
CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def example() -> ProgramRun:
    return run_program({}, stack="dev", program=lambda: runpy.run_path(str(EXAMPLE / "__main__.py")))


def _descends_from(run: ProgramRun, resource: Registered, urn: str) -> bool:
    parents = {r.urn: r.parent for r in run.resources}
    parent = resource.parent
    while parent:
        if parent == urn:
            return True
        parent = parents.get(parent, "")
    return False


def test_the_example_has_its_own_project_file() -> None:
    assert (EXAMPLE / "Pulumi.yaml").read_text().splitlines()[0] == "name: app-with-redis"


def test_every_container_of_the_redis_ha_is_its_child_through_the_programs_provider(example: ProgramRun) -> None:
    [component] = example.of_type("redis-ha:index:RedisHA")
    [provider] = example.of_type("pulumi:providers:docker")
    docker_resources = [r for r in example.resources if r.type.startswith("docker:") and r.name != "app-net"]
    owned = [r for r in docker_resources if _descends_from(example, r, component.urn)]
    # 3 Redis nodes, 3 Sentinels, 6 secrets writers, the app; the app is not the RedisHA's.
    assert len([r for r in owned if r.type == CONTAINER]) == 12
    assert [r.name for r in docker_resources if r not in owned] == ["app"]
    assert {r.provider.split("::")[:-1] == provider.urn.split("::") for r in docker_resources} == {True}, [
        (r.name, r.provider) for r in docker_resources
    ]


def test_the_nodes_join_the_programs_network_by_hostname(example: ProgramRun) -> None:
    nodes = [
        c for c in example.of_type(CONTAINER) if c.name.startswith("example-cache-") and not c.name.endswith("-secrets")
    ]
    assert sorted(c.name for c in nodes) == [
        *(f"example-cache-redis-{i}" for i in (1, 2, 3)),
        *(f"example-cache-sentinel-{i}" for i in (1, 2, 3)),
    ]
    for node in nodes:
        networks = {n["name"]: n.get("aliases") for n in node.inputs["networksAdvanced"]}
        assert networks == {"example-cache-net": [node.name], "example-app-net": [node.name]}, node.name
        assert "ports" not in node.inputs or node.inputs["ports"] == [], node.name  # publishPorts false


def test_the_outputs_are_what_the_app_is_given(example: ProgramRun) -> None:
    outputs = example.outputs
    assert outputs["sentinels"] == [f"example-cache-sentinel-{i}:26379" for i in (1, 2, 3)]
    assert outputs["masterName"] == "redis-ha"
    assert outputs["app"] == "example-app"
    password = outputs["cachePassword"]
    assert "cachePassword" in example.secret_outputs and "sentinels" not in example.secret_outputs
    assert password in example.passwords.values() and len(password) >= 32

    app = example.by_name("app")
    uploads = {u["file"]: u for u in app.wire["uploads"]}
    assert app.inputs["networksAdvanced"] == [{"name": "example-app-net"}]
    assert is_secret(uploads["/run/app/cache-password"]["content"])
    assert is_secret(uploads["/run/app/sentinel-client-password"]["content"])
    files = {u["file"]: u for u in app.inputs["uploads"]}
    assert files["/run/app/cache-password"]["content"] == password
    assert files["/run/app/redis.env"]["content"] == (
        'SENTINELS="example-cache-sentinel-1:26379 example-cache-sentinel-2:26379 example-cache-sentinel-3:26379"\n'
        'MASTER_NAME="redis-ha"\n'
    )
    # No password anywhere outside a secret, nor in the app's environment or command.
    for resource in example.resources:
        leaked = set(plain_strings(resource.wire)) & set(example.passwords.values())
        assert not leaked, resource.name
    assert "envs" not in app.inputs


def test_a_bad_setting_names_its_key_before_anything_registers() -> None:
    run = ProgramRun()

    def program() -> None:
        RedisHA("bad", RedisHAArgs(settings={"backend": "docker", "replicas": 20}))

    with pytest.raises(Exception, match=r"redis-ha:replicas: invalid value 20; allowed: an integer from 1 to 8"):
        run_program({}, run=run, program=program)
    assert [r.type for r in run.resources] == []


def test_a_redis_ha_is_not_a_cluster() -> None:
    with pytest.raises(SettingsError, match="redis-ha:topology"):
        RedisHA("x", RedisHAArgs(settings={"backend": "docker", "topology": "cluster"}))


def test_a_redis_cluster_in_the_programs_namespace_returns_its_seeds() -> None:
    run = ProgramRun()
    seen: dict[str, RedisCluster] = {}

    def program() -> None:
        seen["cluster"] = RedisCluster(
            "sessions",
            RedisClusterArgs(settings={"backend": "kubernetes", "namespace": "shop"}, namespace="shop"),
        )
        import pulumi

        pulumi.export("seeds", seen["cluster"].seed_addresses)
        pulumi.export("sessionsPassword", seen["cluster"].role_passwords["sessions"])

    run_program({}, run=run, program=program)
    assert run.of_type("kubernetes:core/v1:Namespace") == []  # the program's own, not created
    assert {r.inputs["metadata"]["namespace"] for r in run.resources if r.type.startswith("kubernetes:")} == {"shop"}
    assert len(run.outputs["seeds"]) == 6
    assert all(seed.endswith(":6379") and ".shop." in seed for seed in run.outputs["seeds"]), run.outputs["seeds"]
    assert "sessionsPassword" in run.secret_outputs and run.outputs["sessionsPassword"] in run.passwords.values()
