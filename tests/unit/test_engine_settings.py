"""The engine setting (components/engines.py): engine, engineVersion, the legacy
redisVersion, the default image and what the templates gate on."""

from __future__ import annotations

from typing import Any

import pytest
from redis_ha.components import engines, rendering
from redis_ha.components.program import naming_for
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import build_sentinel_topology

from redis_ha.backup import rdb

DOCKER: dict[str, Any] = {"backend": "docker"}


def test_default_is_valkey_8_1_with_its_image() -> None:
    settings = load_settings(DOCKER)
    assert (settings.engine, settings.redis_version) == ("valkey", "8.1")
    assert settings.redis_image == "valkey/valkey:8.1-alpine"


@pytest.mark.parametrize(
    ("raw", "engine", "version", "image"),
    [
        ({"engine": "redis"}, "redis", "7.2", "redis:7.2-alpine"),
        ({"engine": "redis", "engineVersion": "8.0"}, "redis", "8.0", "redis:8.0-alpine"),
        ({"engine": "valkey", "engineVersion": "9.0"}, "valkey", "9.0", "valkey/valkey:9.0-alpine"),
        ({"redisVersion": "7.0"}, "redis", "7.0", "redis:7.0-alpine"),
        ({"engineVersion": "9.1"}, "valkey", "9.1", "valkey/valkey:9.1-alpine"),
    ],
)
def test_engine_version_and_image_follow_each_other(raw: dict, engine: str, version: str, image: str) -> None:
    settings = load_settings({**DOCKER, **raw})
    assert (settings.engine, settings.redis_version, settings.redis_image) == (engine, version, image)


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"engine": "keydb"}, "engine", "one of redis, valkey"),
        ({"engine": "redis", "engineVersion": "8.1"}, "engineVersion", "a version of engine redis: 7.0, 7.2, 8.0, 8.2"),
        ({"engine": "valkey", "engineVersion": "7.2"}, "engineVersion", "valkey: 8.0, 8.1, 9.0, 9.1"),
        ({"engineVersion": "7.0"}, "engineVersion", "a version of engine valkey"),
        ({"redisVersion": "9.0"}, "redisVersion", "a version of engine redis"),
        ({"engine": "valkey", "redisVersion": "8.1"}, "redisVersion", "set engineVersion"),
        ({"engineVersion": "8.1", "redisVersion": "8.1"}, "redisVersion", "unset when engineVersion is set"),
        ({"engine": "redis", "engineVersion": "8.0", "redisImage": "valkey/valkey:8.0"}, "redisImage", "engine redis"),
        ({"engine": "valkey", "redisImage": "redis:8.1-alpine"}, "redisImage", "set engine to redis"),
        ({"engine": "valkey", "engineVersion": "9.0", "redisImage": "valkey/valkey:8.1"}, "redisImage", "9.0"),
    ],
)
def test_unsupported_combinations_name_the_key(raw: dict, key: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({**DOCKER, **raw})
    assert error.value.key == f"redis-ha:{key}"
    assert fragment in str(error.value)


def test_every_supported_version_loads_and_renders() -> None:
    for engine, versions in engines.VERSIONS.items():
        for version in versions:
            settings = load_settings({**DOCKER, "engine": engine, "engineVersion": version})
            master = build_sentinel_topology(settings, naming_for(settings)).master
            conf = rendering.render_redis_conf(settings, master, {"replica": "r" * 32})
            assert settings.engine_info.label in conf
            assert ("locale-collate" in conf) == ((engine, version) != ("redis", "7.0"))


@pytest.mark.parametrize(
    ("engine", "version", "feature", "expected"),
    [
        ("redis", "7.0", "listpack-sets", False),
        ("redis", "7.2", "listpack-sets", True),
        ("valkey", "8.0", "listpack-sets", True),
        ("redis", "7.2", "hash-field-expiry", False),
        ("redis", "8.0", "hash-field-expiry", True),
        ("valkey", "8.1", "hash-field-expiry", False),
        ("valkey", "9.0", "hash-field-expiry", True),
        ("valkey", "9.1", "module-categories", False),
    ],
)
def test_features_by_engine_and_version(engine: str, version: str, feature: str, expected: bool) -> None:
    assert engines.Engine(engine, version).has(feature) is expected


def test_rdb_versions_and_what_loads_where() -> None:
    assert [engines.Engine("redis", v).rdb_version for v in ("7.0", "7.2", "8.0")] == [10, 11, 12]
    assert engines.Engine("valkey", "9.0").rdb_version == 80
    # A newer format never loads into an older server; an older one does.
    assert not engines.rdb_loadable(12, engines.Engine("redis", "7.2"))
    assert engines.rdb_loadable(11, engines.Engine("valkey", "8.1"))
    assert not engines.rdb_loadable(80, engines.Engine("redis", "8.2"))


def test_the_default_image_is_that_of_the_default_engine_version() -> None:
    default = engines.Engine(engines.DEFAULT_ENGINE, engines.DEFAULT_VERSION[engines.DEFAULT_ENGINE])
    assert default.default_image == engines.DEFAULT_IMAGE


@pytest.mark.parametrize(
    ("rdb_version", "info", "refusal"),
    [
        (12, {"redis_version": "8.0.6"}, None),
        (11, {"redis_version": "8.0.2"}, None),  # Valkey 8.1's file in Redis 8 (measured: loads)
        (80, {"redis_version": "8.0.6"}, "Redis 8.0.6 reads RDB up to 12"),
        (12, {"redis_version": "7.2.4", "valkey_version": "8.1.1"}, "Valkey 8.1.1 reads RDB up to 11"),
        (12, {"redis_version": "7.2.4", "valkey_version": "9.1.2"}, "up to 11 and its own 80"),
        (80, {"redis_version": "7.2.4", "valkey_version": "9.1.2"}, None),
        (80, {"redis_version": "7.2.4", "valkey_version": "8.1.1"}, "Valkey 8.1.1 reads RDB up to 11"),
    ],
)
def test_which_server_loads_which_rdb_version(rdb_version: int, info: dict, refusal: str | None) -> None:
    """What tests/e2e/test_engines.py measured by starting each engine on the others' files."""
    found = rdb.loads(rdb_version, info)
    assert found is None if refusal is None else found is not None and refusal in found, found


@pytest.mark.parametrize(
    ("image", "engine", "version"),
    [
        ("redis:7.2-alpine", "redis", "7.2"),
        ("redis:8.0.2", "redis", "8.0"),
        ("valkey/valkey:9.1-alpine", "valkey", "9.1"),
        ("registry.example:5000/team/redis:7.0.15", "redis", "7.0"),
        ("redis:latest", "redis", "7.2"),
    ],
)
def test_a_stack_that_names_only_its_image_runs_that_images_engine(image: str, engine: str, version: str) -> None:
    """Stacks written before `engine` existed set only redisImage: they keep their engine."""
    s = load_settings({"backend": "docker", "redisImage": image})
    assert (s.engine, s.redis_version, s.redis_image) == (engine, version, image)


def test_an_image_that_names_no_engine_needs_the_engine_keys() -> None:
    with pytest.raises(SettingsError, match="redisImage"):
        load_settings({"backend": "docker", "redisImage": "example/cache:1"})
    s = load_settings(
        {"backend": "docker", "redisImage": "example/cache:custom", "engine": "redis", "engineVersion": "7.0"}
    )
    assert (s.engine, s.redis_version) == ("redis", "7.0")
