"""The engines the toolkit deploys (Redis, Valkey), their supported versions and what
differs between them: the directives a rendered redis.conf may use, the data types and
commands each has, the RDB version each writes, the default image and the binary names.

docs/engines.md says which version is tested live how, and why the default is Valkey 8.1.
Plain data and `resolve`: the settings layer (components/settings.py) validates `engine` and
`engineVersion` against it and the templates ask `settings.has(<feature>)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis_ha.components.settings_base import SettingsError

REDIS = "redis"
VALKEY = "valkey"
# engine -> supported versions, oldest first ("major.minor": the image tag's prefix).
VERSIONS: dict[str, tuple[str, ...]] = {
    REDIS: ("7.0", "7.2", "8.0", "8.2"),
    VALKEY: ("8.0", "8.1", "9.0", "9.1"),
}
DEFAULT_ENGINE = VALKEY
DEFAULT_VERSION = {REDIS: "7.2", VALKEY: "8.1"}
DEFAULT_IMAGE = "valkey/valkey:8.1-alpine"

# Valkey forked Redis 7.2.4: every Valkey has what Redis 7.2 has.
_VALKEY_BASE = (7, 2)

# feature -> (first Redis version, first Valkey version); None: the engine lacks it.
FEATURES: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    # redis.conf `locale-collate` (7.2): a 7.0 server refuses to start with it.
    "locale-collate": ((7, 2), (8, 0)),
    # Sets of up to set-max-listpack-entries members are listpacks (RDB type 20, 7.2).
    "listpack-sets": ((7, 2), (8, 0)),
    # CLIENT SETINFO (7.2): redis-py sends it on connect; a user needs it or a reply error.
    "client-setinfo": ((7, 2), (8, 0)),
    # HEXPIRE/HPEXPIRE/HTTL...: per-field TTL (Redis 7.4, Valkey 9.0), RDB hash types 24/25.
    "hash-field-expiry": ((7, 4), (9, 0)),
    # HGETEX/HSETEX/HGETDEL (Redis 8.0; Valkey 9.0 has HGETEX/HSETEX).
    "hash-getex": ((8, 0), (9, 0)),
    # Redis 8 ships the query engine, JSON, time series and probabilistic types with
    # their own ACL categories (@search, @json, ...) when built with its modules.
    "module-categories": ((8, 0), None),
    # Valkey 9: numbered databases in cluster mode.
    "cluster-databases": (None, (9, 0)),
}

# RDB version each engine version writes (its rdbver AUX field and the file header).
_RDB_VERSIONS: dict[tuple[str, str], int] = {
    (REDIS, "7.0"): 10,
    (REDIS, "7.2"): 11,
    (REDIS, "8.0"): 12,
    (REDIS, "8.2"): 12,
    (VALKEY, "8.0"): 11,
    (VALKEY, "8.1"): 11,
    # Valkey 9 numbers its format 80 and up, outside Redis's range (12, 13, ...).
    (VALKEY, "9.0"): 80,
    (VALKEY, "9.1"): 80,
}


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class Engine:
    """One supported engine version."""

    name: str
    version: str

    def has(self, feature: str) -> bool:
        redis_since, valkey_since = FEATURES[feature]
        since = redis_since if self.name == REDIS else valkey_since
        return since is not None and version_tuple(self.version) >= since

    @property
    def compat_level(self) -> tuple[int, int]:
        """The Redis version whose protocol and commands this engine keeps at least."""
        return version_tuple(self.version) if self.name == REDIS else _VALKEY_BASE

    @property
    def rdb_version(self) -> int:
        return _RDB_VERSIONS[(self.name, self.version)]

    @property
    def default_image(self) -> str:
        repository = "redis" if self.name == REDIS else "valkey/valkey"
        return f"{repository}:{self.version}-alpine"

    @property
    def server_binary(self) -> str:
        return f"{self.name}-server"

    @property
    def cli_binary(self) -> str:
        """valkey-cli; the valkey/valkey images link redis-cli to it too."""
        return f"{self.name}-cli"

    @property
    def label(self) -> str:
        return f"{'Redis' if self.name == REDIS else 'Valkey'} {self.version}"


def supported() -> str:
    """The allowed combinations, for error messages."""
    return "; ".join(f"{name}: {', '.join(versions)}" for name, versions in VERSIONS.items())


def rdb_loadable(rdb_version: int, target: Engine) -> bool:
    """Whether `target` loads an RDB file of `rdb_version` (measured: each engine image
    started on the others' files): Redis its own number and older, Valkey up to 11 and
    Valkey 9 its own 80 too; Redis 8's 12 loads into no Valkey."""
    if target.name == REDIS:
        return rdb_version <= target.rdb_version
    return rdb_version <= 11 or rdb_version == target.rdb_version


def resolve(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    """Complete `values` (Settings fields read from `raw`, the config): engine,
    engineVersion and the image follow each other: redisVersion (the key of
    a Redis-only toolkit) means engine redis; an engine alone its default version."""
    if "engineVersion" in raw and "redisVersion" in raw:
        raise SettingsError("redisVersion", raw["redisVersion"], "unset when engineVersion is set (its older name)")
    if "redisVersion" in raw and values.setdefault("engine", REDIS) != REDIS:
        raise SettingsError("redisVersion", raw["redisVersion"], "unset with engine valkey: set engineVersion")
    if "engine" not in values and "redis_image" in values:
        # A stack that names only its image (as before engines existed) runs that
        # image's engine and, when its tag names a supported version, that version.
        engine, tagged = image_engine(values["redis_image"])
        if engine is not None:
            values["engine"] = engine
            if tagged in VERSIONS[engine]:
                values.setdefault("redis_version", tagged)
    engine = values.setdefault("engine", DEFAULT_ENGINE)
    version = values.setdefault("redis_version", DEFAULT_VERSION[engine])
    if version not in VERSIONS[engine]:
        key = "redisVersion" if "redisVersion" in raw else "engineVersion"
        raise SettingsError(
            key,
            version,
            f"a version of engine {engine}: {', '.join(VERSIONS[engine])} (supported: {supported()})",
        )
    values.setdefault("redis_image", Engine(engine, version).default_image)


def image_engine(image: str) -> tuple[str | None, str | None]:
    """(engine, major.minor of the tag) an image reference names, each None when it
    names none: `redis:7.2-alpine` -> (redis, 7.2), `valkey/valkey:8.1` -> (valkey, 8.1)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    repository, _, tag = last.partition(":")
    engine = VALKEY if "valkey" in repository else REDIS if "redis" in repository else None
    parts = tag.split("-", 1)[0].split(".")
    tagged = ".".join(parts[:2]) if len(parts) >= 2 and all(x.isdigit() for x in parts[:2]) else None
    return engine, tagged
