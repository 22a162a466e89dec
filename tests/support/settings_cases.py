"""Raw stack configurations shared by the settings tests (tests/unit/test_settings*.py):
the backends, a custom role, and the table of configurations refused with their reason.
"""

from __future__ import annotations

from typing import Any

DOCKER = {"backend": "docker"}
K8S = {"backend": "kubernetes"}
CACHE_ROLE = {"name": "cache", "keys": ["cache:*"], "commands": ["+@read", "+@write"]}


def role(**fields: Any) -> dict[str, Any]:
    return {**CACHE_ROLE, **fields}


GOOD_PASSWORD = "Correct-Horse-Battery-9"


def grant(rule: str) -> dict[str, Any]:
    """A docker stack whose one role asks for `rule` next to +@read."""
    return {**DOCKER, "roles": [role(commands=["+@read", rule])]}


def images(image: str, version: str = "7.2") -> dict[str, Any]:
    return {**DOCKER, "redisVersion": version, "redisImage": image}


def bad_password(key: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {**DOCKER, **extra, key: value}


DENIED = "is denied to every application role (server administration / data destruction)"
LOST = "denied to every application role (server administration / data destruction); grant only the subcommands"
PASSWORD_RULE = "16 to 512 characters: letters A-Z and a-z, digits and - _ . ~ + ="
NOT_A_USER = "the password key of a user: adminPassword,"
HEADROOM = "at least maxmemory + fork/buffer headroom = "
MY_APP = {"roles": [role(name="my_app")]}


# (id, raw config, key the error must name, fragment of its message)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # Sentinel monitors hostnames; resolve-hostnames no would stop it.
    ("announce-hostnames-false", {**DOCKER, "announceHostnames": False}, "announceHostnames", "addressed by hostname"),
    (
        "announce-hostnames-false-string",
        {**K8S, "announceHostnames": "false"},
        "announceHostnames",
        "announce hostnames",
    ),
    (
        "announce-hostnames-false-on-a-cluster",
        {**DOCKER, "topology": "cluster", "announceHostnames": "False"},
        "announceHostnames",
        "allowed: true (",
    ),
    ("announce-hostnames-yes", {**DOCKER, "announceHostnames": "yes"}, "announceHostnames", "allowed: true ("),
    # the image's tag against redisVersion
    ("image-7.0-with-version-7.2", images("redis:7.0-alpine"), "redisImage", "an image of engineVersion 7.2"),
    ("image-7.0.15-with-version-7.2", images("redis:7.0.15"), "redisImage", "a tag starting with 7.2"),
    ("image-7.2.4-with-version-7.0", images("redis:7.2.4-bookworm", "7.0"), "redisImage", "engineVersion 7.0"),
    ("image-7.2-with-version-7.0", images("redis:7.2", "7.0"), "redisImage", "e.g. redis:7.0-alpine"),
    ("image-7.20-is-not-7.2", images("redis:7.20-alpine"), "redisImage", "a tag starting with 7.2"),
    ("image-major-6", images("redis:6"), "redisImage", "the major-only tag 7"),
    ("image-6.2-alpine", images("redis:6.2-alpine"), "redisImage", "set engineVersion to the image's version"),
    ("image-major-8-alpine", images("redis:8-alpine"), "redisImage", "the major-only tag 7"),
    ("image-8.0", images("redis:8.0", "7.0"), "redisImage", "engineVersion 7.0"),
    ("image-registry-port-6.2", images("localhost:5000/redis:6.2"), "redisImage", "engineVersion 7.2"),
    ("image-tag-and-digest", images("redis:7.0@sha256:" + "a" * 64), "redisImage", "engineVersion 7.2"),
    # the e2e test image is Debian's 7.0 (tests/e2e/conftest.py sets redisVersion 7.0)
    ("image-e2e-test-image-with-7.2", images("redis-ha-test/redis:7.0"), "redisImage", "engineVersion 7.2"),
    # maxmemory and the memory limit
    ("maxmemory-0", {**DOCKER, "maxmemory": 0}, "maxmemory", "at least 1mb"),
    ("maxmemory-0-string", {**K8S, "maxmemory": "0"}, "maxmemory", "0 (no limit) lets Redis grow"),
    ("maxmemory-0mb", {**K8S, "maxmemory": "0mb"}, "maxmemory", "at least 1mb (1048576 bytes)"),
    ("maxmemory-1023kb", {**DOCKER, "maxmemory": "1023kb"}, "maxmemory", "at least 1mb"),
    ("maxmemory-1m-is-decimal", {**DOCKER, "maxmemory": "1m"}, "maxmemory", "at least 1mb"),
    (
        "memory-limit-below-the-headroom",
        {**K8S, "maxmemory": "2gb", "memoryLimit": "3Gi"},
        "memoryLimit",
        HEADROOM + "3355443200 bytes (3200mb)",
    ),
    (
        "memory-limit-equals-maxmemory",
        {**K8S, "maxmemory": "1gb", "memoryLimit": "1gb"},
        "memoryLimit",
        HEADROOM + "1744830464 bytes (1664mb) (maxmemory 1073741824 + headroom 671088640)",
    ),
    (
        "memory-limit-small-maxmemory-keeps-256mb-headroom",
        {**K8S, "maxmemory": "64mb", "memoryLimit": "256Mi"},
        "memoryLimit",
        HEADROOM + "335544320 bytes (320mb)",
    ),
    (
        "maxmemory-above-the-memory-limit",
        {**K8S, "maxmemory": "2gb", "memoryLimit": "1Gi"},
        "maxmemory",
        "at most 626349397 bytes (597mb), so that maxmemory + fork/buffer headroom fits memoryLimit",
    ),
    ("memory-limit-too-small-for-any-maxmemory", {**K8S, "memoryLimit": "100Mi"}, "memoryLimit", HEADROOM),
    ("memory-limit-words", {**K8S, "memoryLimit": "lots"}, "memoryLimit", "a Kubernetes quantity (512Mi, 3Gi)"),
    ("memory-limit-negative", {**K8S, "memoryLimit": "-1Gi"}, "memoryLimit", "0 (derived from maxmemory)"),
    ("memory-limit-lowercase-gi", {**K8S, "memoryLimit": "3gi"}, "memoryLimit", "a Redis size"),
    ("memory-limit-bool", {**K8S, "memoryLimit": True}, "memoryLimit", "a memory size"),
    ("memory-limit-on-docker", {**DOCKER, "memoryLimit": "4Gi"}, "memoryLimit", "0 on the docker backend"),
    # passwords: never shown, only named
    ("password-15-characters", bad_password("adminPassword", "Fifteen-chars-1"), "adminPassword", PASSWORD_RULE),
    ("password-513-characters", bad_password("replicaPassword", "Ab1" * 171), "replicaPassword", PASSWORD_RULE),
    ("password-empty", bad_password("sentinelPassword", ""), "sentinelPassword", PASSWORD_RULE),
    ("password-space", bad_password("adminPassword", "correct horse battery"), "adminPassword", "no spaces"),
    ("password-double-quote", bad_password("adminPassword", 'Correct"Horse"Battery'), "adminPassword", "quotes"),
    ("password-single-quote", bad_password("adminPassword", "Correct'Horse'Battery"), "adminPassword", "quotes"),
    ("password-backslash", bad_password("replicaPassword", "Correct\\Horse\\Battery"), "replicaPassword", "backslash"),
    ("password-hash", bad_password("exporterPassword", "Correct#Horse#Battery"), "exporterPassword", "'#'"),
    ("password-tab", bad_password("adminPassword", "Correct\tHorse\tBattery"), "adminPassword", PASSWORD_RULE),
    ("password-newline", bad_password("adminPassword", "CorrectHorseBattery9\n"), "adminPassword", PASSWORD_RULE),
    ("password-at-sign", bad_password("adminPassword", "Correct@Horse@Battery"), "adminPassword", PASSWORD_RULE),
    ("password-colon", bad_password("adminPassword", "Correct:Horse:Battery"), "adminPassword", PASSWORD_RULE),
    ("password-slash", bad_password("adminPassword", "Correct/Horse/Battery"), "adminPassword", PASSWORD_RULE),
    ("password-percent", bad_password("adminPassword", "Correct%20Horse%20Bat"), "adminPassword", PASSWORD_RULE),
    ("password-dollar", bad_password("adminPassword", "Correct$Horse$Battery"), "adminPassword", PASSWORD_RULE),
    ("password-non-ascii", bad_password("adminPassword", "Corr\u00e9ct-Horse-Battery"), "adminPassword", PASSWORD_RULE),
    ("password-not-a-string", bad_password("adminPassword", 12345678901234567890), "adminPassword", PASSWORD_RULE),
    (
        "sentinel-client-password-short",
        bad_password("sentinelClientPassword", "short-client"),
        "sentinelClientPassword",
        PASSWORD_RULE,
    ),
    ("role-password-space", bad_password("cachePassword", "cache role secret 1"), "cachePassword", "no spaces"),
    (
        "custom-role-password-quote",
        bad_password("myAppPassword", 'My"App"Secret"Value', **MY_APP),
        "myAppPassword",
        PASSWORD_RULE,
    ),
    ("password-of-no-user", bad_password("masterPassword", GOOD_PASSWORD), "masterPassword", NOT_A_USER),
    ("password-of-the-default-user", bad_password("defaultPassword", GOOD_PASSWORD), "defaultPassword", NOT_A_USER),
    (
        "password-of-a-role-not-deployed",
        bad_password("celeryPassword", GOOD_PASSWORD, roles=[CACHE_ROLE]),
        "celeryPassword",
        "the password key of a user: adminPassword, backupPassword, cachePassword, exporterPassword,",
    ),
    (
        "password-key-dashed",
        bad_password("sentinel-clientPassword", GOOD_PASSWORD),
        "sentinel-clientPassword",
        NOT_A_USER,
    ),
    (
        "password-key-lowercase",
        bad_password("sentinelclientPassword", GOOD_PASSWORD),
        "sentinelclientPassword",
        NOT_A_USER,
    ),
    ("password-key-snake-case", bad_password("my_appPassword", GOOD_PASSWORD, **MY_APP), "my_appPassword", NOT_A_USER),
    # two users, one password key
    (
        "role-takes-the-sentinel-client-password-key",
        {**DOCKER, "roles": [role(name="sentinel_client")]},
        "roles[0].name",
        "a name whose password key (sentinelClientPassword) is not already that of sentinel-client",
    ),
    ("role-takes-the-admin-password-key", {**DOCKER, "roles": [role(name="admin_")]}, "roles[0].name", "adminPassword"),
    (
        "roles-share-a-password-key",
        {**DOCKER, "roles": [role(name="my-app"), role(name="my_app", keys=["other:*"])]},
        "roles[1].name",
        "(myAppPassword) is not already that of my-app",
    ),
    # grants the appended denials would take away (components/security.py)
    ("grant-all", grant("+@all"), "roles[0].commands", "+@all includes commands denied to every application role"),
    ("grant-dangerous", grant("+@dangerous"), "roles[0].commands", f"+@dangerous {DENIED}"),
    ("grant-admin", grant("+@admin"), "roles[0].commands", f"+@admin {DENIED}; grant a narrower category"),
    ("grant-flushall", grant("+flushall"), "roles[0].commands", f"+flushall {DENIED}"),
    ("grant-flushdb", grant("+flushdb"), "roles[0].commands", f"+flushdb {DENIED}"),
    ("grant-config", grant("+config"), "roles[0].commands", "+config includes config|get, config|resetstat"),
    ("grant-config-get", grant("+config|get"), "roles[0].commands", f"+config|get {DENIED}"),
    ("grant-config-set", grant("+config|set"), "roles[0].commands", f"+config|set {DENIED}"),
    ("grant-debug", grant("+debug"), "roles[0].commands", f"+debug {DENIED}"),
    ("grant-debug-subcommand", grant("+debug|object"), "roles[0].commands", f"+debug|object {DENIED}"),
    ("grant-shutdown", grant("+shutdown"), "roles[0].commands", f"+shutdown {DENIED}"),
    ("grant-acl", grant("+acl"), "roles[0].commands", "+acl includes acl|deluser, acl|dryrun"),
    ("grant-acl-setuser", grant("+acl|setuser"), "roles[0].commands", f"+acl|setuser {DENIED}"),
    ("grant-module", grant("+module"), "roles[0].commands", "+module includes module|list, module|load"),
    ("grant-replicaof", grant("+replicaof"), "roles[0].commands", f"+replicaof {DENIED}"),
    ("grant-slaveof", grant("+slaveof"), "roles[0].commands", f"+slaveof {DENIED}"),
    ("grant-failover", grant("+failover"), "roles[0].commands", f"+failover {DENIED}"),
    ("grant-script-flush", grant("+script|flush"), "roles[0].commands", f"+script|flush {DENIED}"),
    ("grant-script", grant("+script"), "roles[0].commands", f"+script includes script|debug, script|flush, {LOST}"),
    ("grant-function-flush", grant("+function|flush"), "roles[0].commands", f"+function|flush {DENIED}"),
    ("grant-function-restore", grant("+function|restore"), "roles[0].commands", f"+function|restore {DENIED}"),
    ("grant-function", grant("+function"), "roles[0].commands", "+function includes function|delete, function|flush"),
    ("grant-keys", grant("+keys"), "roles[0].commands", f"+keys {DENIED}"),
    ("grant-info", grant("+info"), "roles[0].commands", f"+info {DENIED}"),
    ("grant-monitor", grant("+monitor"), "roles[0].commands", f"+monitor {DENIED}"),
    ("grant-swapdb", grant("+swapdb"), "roles[0].commands", f"+swapdb {DENIED}"),
    ("grant-migrate", grant("+migrate"), "roles[0].commands", f"+migrate {DENIED}"),
    ("grant-restore", grant("+restore"), "roles[0].commands", f"+restore {DENIED}"),
    ("grant-sort", grant("+sort"), "roles[0].commands", f"+sort {DENIED}"),
    ("grant-bgsave", grant("+bgsave"), "roles[0].commands", f"+bgsave {DENIED}"),
    ("grant-client", grant("+client"), "roles[0].commands", "+client includes client|kill, client|list"),
    ("grant-client-kill", grant("+client|kill"), "roles[0].commands", f"+client|kill {DENIED}"),
    ("grant-cluster-reset", grant("+cluster|reset"), "roles[0].commands", f"+cluster|reset {DENIED}"),
    ("grant-latency", grant("+latency"), "roles[0].commands", "+latency includes latency|doctor"),
    ("grant-slowlog-get", grant("+slowlog|get"), "roles[0].commands", "or use the admin user"),
    (
        "grant-in-the-second-role",
        {**DOCKER, "roles": [role(), role(name="ops", keys=["ops:*"], commands=["+@read", "+@admin"])]},
        "roles[1].commands",
        f"+@admin {DENIED}",
    ),
    (
        "grant-after-a-denial-of-its-own",
        {**DOCKER, "roles": [role(commands=["-@all", "+@read", "+flushall", "-flushall"])]},
        "roles[0].commands",
        f"+flushall {DENIED}",
    ),
]
