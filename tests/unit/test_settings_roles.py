"""load_settings: the application roles (the default roles against the names their
clients use), the password keys, and the refused grants checked against
components/security.py and a running redis-server's ACL.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest
import redis
from redis_ha.components import security
from redis_ha.components.settings import DEFAULT_ROLES
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_load import SECRET_KEYS, load_settings
from redis_ha.components.settings_roles import (
    CATEGORY_COMMANDS,
    check_passwords,
    password_key,
    password_keys,
    refused_grant,
)

from tests.support.settings_cases import DOCKER, GOOD_PASSWORD, role

# The seed's use cases (keys and channels of its examples), per default role.
SEED_NAMES = {
    "cache": {"keys": ["filing:analysis:123", "filing:10-K:123", "company:1:filings", "lock:filing:analysis:123"]},
    "sessions": {"keys": ["session:abc123"]},
    "ratelimit": {"keys": ["ratelimit:api_key"]},
    "pubsub": {"channels": ["filing:processed"]},
    "analytics": {
        "keys": [
            "user:123",
            "recent:filings",
            "processed:companies:2025-10-19",
            "rankings:signals",
            "unique:visitors:2025-10-19",
            "unique:visitors:week",
        ]
    },
    # What Celery 5.7 / kombu 5.7 used against a live deployment (tests/verify/
    # test_app_celery.py): queues are also BRPOPed with a priority suffix.
    "celery": {
        "keys": [
            "celery",
            "celery\x06\x163",
            "high_priority",
            "low_priority\x06\x169",
            "_kombu.binding.celery",
            "_kombu.binding_deadlines",
            "_kombu.binding_permanent.celery",
            "unacked",
            "unacked_index",
            "unacked_mutex",
            "celery-task-meta-9f1e",
            "w1@host.celery.pidbox",
            "w1@host.celery.pidbox\x06\x166",
            "9f1e.reply.celery.pidbox\x06\x163",
        ],
        "channels": ["/0.celery.pidbox", "/0.celeryev/worker.heartbeat", "celery-task-meta-9f1e"],
    },
}


@pytest.mark.parametrize("name", sorted(SEED_NAMES))
def test_default_role_covers_the_names_its_clients_use(name: str) -> None:
    default = next(r for r in DEFAULT_ROLES if r.name == name)
    for key in SEED_NAMES[name].get("keys", []):
        assert any(fnmatchcase(key, p) for p in default.keys), f"{name} cannot use key {key!r}"
    for channel in SEED_NAMES[name].get("channels", []):
        assert any(fnmatchcase(channel, p) for p in default.channels), f"{name} cannot use channel {channel!r}"


def test_default_celery_role_grants_what_kombu_needs_beyond_keys() -> None:
    celery = next(r for r in DEFAULT_ROLES if r.name == "celery")
    # The ACL compares PSUBSCRIBE patterns literally: kombu's must be listed as sent.
    for pattern in ("/0.celery.pidbox", "/0.celeryev/worker.*", "/0.celeryev/*"):
        assert pattern in celery.channels
    # kombu 5.7's binding scripts call TIME; MULTI/EXEC, EVALSHA and BRPOP run the queues.
    for rule in ("+time", "+@transaction", "+@scripting", "+@blocking", "+@pubsub"):
        assert rule in celery.commands
    assert not any(p in ("*", "~*") for p in celery.keys) and "+@all" not in celery.commands


@pytest.mark.parametrize(
    ("user", "key"),
    [
        ("admin", "adminPassword"),
        ("sentinel-client", "sentinelClientPassword"),
        ("my_app", "myAppPassword"),
        ("my-app", "myAppPassword"),
        ("billing_v2-worker", "billingV2WorkerPassword"),
        ("cache", "cachePassword"),
    ],
)
def test_password_key_is_camel_case(user: str, key: str) -> None:
    assert password_key(user) == key


@pytest.mark.parametrize("roles", [None, [role(name="my_app"), role(name="jobs-2", keys=["jobs:*"])]])
def test_every_user_has_a_password_key(roles: list[dict[str, Any]] | None) -> None:
    s = load_settings({**DOCKER, "roles": roles} if roles else DOCKER)
    keys = password_keys(s)
    assert sorted(keys.values()) == sorted(security.user_names(s))
    assert set(SECRET_KEYS) <= set(keys)
    assert "sentinelClientPassword" in keys


def test_check_passwords_maps_keys_to_users() -> None:
    s = load_settings({**DOCKER, "roles": [role(name="my_app")]})
    values = {"sentinelClientPassword": "Client-Secret-1234", "myAppPassword": "My-App-Secret-5678"}
    assert check_passwords(s, values) == {"sentinel-client": "Client-Secret-1234", "my_app": "My-App-Secret-5678"}
    assert check_passwords(s, {}) == {}


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"adminPassword": "Too-Short-pw"}, "adminPassword"),
        ({"adminPassword": GOOD_PASSWORD, "cachePassword": "cache secret with spaces"}, "cachePassword"),
        ({"adminPassword": GOOD_PASSWORD, "nobodyPassword": "Nobody-Secret-12345"}, "nobodyPassword"),
    ],
)
def test_check_passwords_names_the_key_never_the_value(values: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        check_passwords(load_settings(DOCKER), values)
    assert caught.value.key == f"redis-ha:{key}"
    text = f"{caught.value} {caught.value!r} {caught.value.args} {caught.value.value!r}"
    assert not [v for v in values.values() if v in text]
    assert "invalid value <secret>;" in str(caught.value)


def test_refused_grants_cover_every_denial_of_security_py() -> None:
    for rule in security.APP_ROLE_DENIALS:
        assert rule.startswith("-"), rule
        name = rule[1:]
        if name.startswith("@"):
            # a category's commands must be known for its command grants to be refused
            assert name[1:] in CATEGORY_COMMANDS, rule
        assert refused_grant(f"+{name}", security.APP_ROLE_DENIALS) is not None, rule


def test_a_new_denial_refuses_its_grant() -> None:
    assert refused_grant("+hello", security.APP_ROLE_DENIALS) is None
    assert refused_grant("+hello", (*security.APP_ROLE_DENIALS, "-hello")) is not None
    assert refused_grant("+object", ("-object|freq",)) is not None
    assert refused_grant("+object|encoding", ("-object|freq",)) is None
    assert refused_grant("-flushall", security.APP_ROLE_DENIALS) is None


def test_every_default_role_keeps_what_it_grants() -> None:
    for default in DEFAULT_ROLES:
        assert [r for r in default.commands if refused_grant(r, security.APP_ROLE_DENIALS)] == [], default.name


REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("acl")
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--unixsocket", str(socket_path), "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), decode_responses=True, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dangerous_table_is_the_servers(redis_server: redis.Redis) -> None:
    dangerous = set(redis_server.execute_command("ACL", "CAT", "dangerous"))
    assert CATEGORY_COMMANDS["dangerous"] == dangerous
    assert set(redis_server.execute_command("ACL", "CAT", "admin")) <= dangerous


def _commands_and_arities(client: redis.Redis) -> dict[str, int]:
    """name (`get`, `config|get`) -> arity, from the server's COMMAND reply."""
    # A connection of its own: redis-py's reply callback for COMMAND drops subcommands.
    connection = redis.UnixDomainSocketConnection(
        path=client.connection_pool.connection_kwargs["path"], decode_responses=True
    )
    try:
        connection.send_command("COMMAND")
        reply = connection.read_response()
    finally:
        connection.disconnect()
    arities: dict[str, int] = {}

    def walk(entry: list[Any]) -> None:
        arities[entry[0]] = entry[1]
        for sub in entry[9] if len(entry) > 9 else []:
            walk(sub)

    for entry in reply:
        walk(entry)
    return arities


def test_refused_grants_are_exactly_what_the_acl_takes_away(redis_server: redis.Redis) -> None:
    """For every command and subcommand of the running server: a role granting it is
    refused exactly when the ACL, with security.py's denials after the grant, does not
    let the user run all of it (ACL DRYRUN)."""
    arities = _commands_and_arities(redis_server)

    def allowed(name: str) -> bool:
        words = name.split("|")
        padding = ["x"] * max(abs(arities[name]) - len(words), 0)
        reply = redis_server.execute_command("ACL", "DRYRUN", "probe", *words, *padding)
        return reply == "OK"

    mismatches = []
    for name in sorted(arities):
        rules = ["reset", "on", "nopass", "~*", "&*", f"+{name}", *security.APP_ROLE_DENIALS]
        redis_server.execute_command("ACL", "SETUSER", "probe", *rules)
        parts = [n for n in arities if n == name or n.startswith(f"{name}|")]
        parts = [n for n in parts if "|" in n] or parts  # a container is its subcommands
        loses = not all(allowed(n) for n in parts)
        refused = refused_grant(f"+{name}", security.APP_ROLE_DENIALS) is not None
        if loses != refused:
            mismatches.append((name, loses, refused))
    assert mismatches == []
    categories = redis_server.execute_command("ACL", "CAT")
    for category in categories:
        rules = ["reset", "on", "nopass", "~*", "&*", f"+@{category}", *security.APP_ROLE_DENIALS]
        redis_server.execute_command("ACL", "SETUSER", "probe", *rules)
        members = redis_server.execute_command("ACL", "CAT", category)
        # A container command (`acl`) is judged by its subcommands, as above: DRYRUN of a
        # container with a made-up subcommand is an error, and ACL CAT's order is random.
        leaves = [n for n in members if n in arities and not any(k.startswith(f"{n}|") for k in arities)]
        entirely_denied = members and not any(allowed(n) for n in leaves)
        refused = refused_grant(f"+@{category}", security.APP_ROLE_DENIALS) is not None
        assert refused == (bool(entirely_denied) or category == "all"), category
