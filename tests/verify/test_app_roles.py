"""Application roles against the live topology: each seed use case runs as its role's
user through a Sentinel-aware client, exactly as the application would, and every role
is refused what belongs to other roles or to operators.

test_security.py already covers, per role, writing and publishing outside its patterns
and FLUSHALL/FLUSHDB/CONFIG/KEYS/DEBUG/FUNCTION FLUSH/SCRIPT FLUSH; these add what it
does not: subscribing, other roles' key prefixes, Lua scripts, server control.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from . import use_cases
from .access import Outputs, sample_key
from .clients import app_client, master_client


@pytest.fixture(scope="module")
def admin(outputs: Outputs) -> Iterator[redis.Redis]:
    client = master_client(outputs)
    yield client
    client.close()


@pytest.fixture(scope="module")
def clients(outputs: Outputs) -> Iterator[Callable[[str], redis.Redis]]:
    """One application client per role user, shared by the module's cases."""
    made: dict[str, redis.Redis] = {}

    def client(user: str) -> redis.Redis:
        deployed = [r["name"] for r in outputs.deployment["roles"]]
        if user not in deployed:
            pytest.skip(f"the deployment has no `{user}` role (roles: {', '.join(deployed)})")
        if user not in made:
            made[user] = app_client(outputs, user)
        return made[user]

    yield client
    for c in made.values():
        c.close()


# --- the seed's use cases, each as its role ----------------------------------------


def test_app_cache_aside_as_cache(clients: Callable[[str], redis.Redis]) -> None:
    use_cases.cache_aside(clients("cache"))


def test_app_cache_invalidation_by_scan_not_keys_as_cache(clients: Callable[[str], redis.Redis]) -> None:
    use_cases.cache_invalidation_by_scan(clients("cache"))


def test_app_cache_stampede_lock_as_cache(clients: Callable[[str], redis.Redis]) -> None:
    use_cases.cache_stampede_lock(clients("cache"))


def test_app_session_storage_as_sessions(clients: Callable[[str], redis.Redis]) -> None:
    use_cases.session_storage(clients("sessions"))


def test_app_sliding_window_rate_limit_as_ratelimit(clients: Callable[[str], redis.Redis]) -> None:
    use_cases.rate_limiting(clients("ratelimit"))


def test_app_real_time_updates_as_pubsub(outputs: Outputs, clients: Callable[[str], redis.Redis]) -> None:
    publisher = clients("pubsub")
    subscriber = app_client(outputs, "pubsub")  # a connection of its own, like a separate process
    try:
        use_cases.real_time_updates(publisher, subscriber)
    finally:
        subscriber.close()


@pytest.mark.parametrize(
    "use_case",
    [
        use_cases.analytics_hash,
        use_cases.analytics_list,
        use_cases.analytics_set,
        use_cases.analytics_sorted_set,
        use_cases.analytics_hyperloglog,
    ],
    ids=["hash", "list", "set", "sorted-set", "hyperloglog"],
)
def test_app_data_structures_as_analytics(
    use_case: Callable[[redis.Redis], None], clients: Callable[[str], redis.Redis]
) -> None:
    use_case(clients("analytics"))


# --- what each role may not do -------------------------------------------------------


def _verdict(admin: redis.Redis, user: str, *command: str) -> str:
    """What the ACL would answer `user` (ACL DRYRUN runs nothing)."""
    reply = admin.execute_command("ACL", "DRYRUN", user, *command)
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _own(patterns: list[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def test_app_role_cannot_touch_other_roles_keys(
    role: dict, outputs: Outputs, clients: Callable[[str], redis.Redis]
) -> None:
    client = clients(role["name"])
    token = uuid.uuid4().hex
    foreign = {
        key: other["name"]
        for other in outputs.deployment["roles"]
        if other["name"] != role["name"]
        for key in (sample_key(p, token) for p in other["keys"])
        if key and not _own(role["keys"], key)
    }
    assert foreign, f"no other role has a key pattern {role['name']} does not share"
    allowed = []
    for key, owner in foreign.items():
        for command in (("GET", key), ("SET", key, "v", "EX", "60")):
            try:
                client.execute_command(*command)
            except redis.exceptions.NoPermissionError:
                continue
            client.delete(key)
            allowed.append(f"{command[0]} {key} ({owner}'s)")
    assert not allowed, f"{role['name']} may touch other roles' keys: {allowed}"


def test_app_role_cannot_subscribe_outside_its_channels(
    role: dict, outputs: Outputs, clients: Callable[[str], redis.Redis]
) -> None:
    token = uuid.uuid4().hex
    channels = {f"redis-ha-verify-forbidden:{token}"} | {
        channel
        for other in outputs.deployment["roles"]
        if other["name"] != role["name"]
        for channel in (sample_key(p, token) for p in other["channels"])
        if channel and not _own(role["channels"], channel)
    }
    allowed = []
    for command, argument in [*(("subscribe", c) for c in sorted(channels)), ("psubscribe", "*")]:
        subscriber = clients(role["name"]).pubsub()
        try:
            getattr(subscriber, command)(argument)
            reply = subscriber.get_message(timeout=2)
            allowed.append(f"{command.upper()} {argument}: {reply}")
        except redis.exceptions.NoPermissionError:
            pass
        finally:
            subscriber.close()
    assert not allowed, f"{role['name']} may listen outside its channels: {allowed}"


def test_app_role_scripts_run_with_the_role_rights_only(
    role: dict, admin: redis.Redis, clients: Callable[[str], redis.Redis]
) -> None:
    client = clients(role["name"])
    foreign = f"redis-ha-verify-forbidden:{uuid.uuid4().hex}"
    if _verdict(admin, role["name"], "EVAL", "return 1", "0") != "OK":
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.eval("return 1", 0)
        return
    # A key declared in KEYS is checked before the script runs ...
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.eval("return redis.call('GET', KEYS[1])", 1, foreign)
    # ... and one the script makes up is checked by the call inside it.
    with pytest.raises(redis.exceptions.ResponseError, match="(?i)no permissions|can't access"):
        client.eval("return redis.call('SET', ARGV[1], 'x')", 0, foreign)
    assert admin.exists(foreign) == 0


# Operator commands outside test_security.FORBIDDEN, each a way for one application to
# take over or disrupt the deployment. The ACL verdict (DRYRUN, as admin) comes first,
# so a wrongly permitted SHUTDOWN is reported, never run.
SERVER_CONTROL = {
    "ACL-SETUSER": ("ACL", "SETUSER", "redis-ha-verify-intruder", "on", ">x", "~*", "+@all"),
    "REPLICAOF": ("REPLICAOF", "NO", "ONE"),
    "SHUTDOWN": ("SHUTDOWN", "NOSAVE"),
    "FAILOVER": ("FAILOVER", "ABORT"),
    "CLIENT-KILL": ("CLIENT", "KILL", "TYPE", "normal"),
    "MONITOR": ("MONITOR",),
    "SWAPDB": ("SWAPDB", "0", "1"),
    "FUNCTION-LOAD": ("FUNCTION", "LOAD", "#!lua name=redis_ha_verify\nredis.register_function('f', function() end)"),
}


@pytest.mark.parametrize("command", sorted(SERVER_CONTROL))
def test_app_role_is_refused_server_control(
    role: dict, command: str, admin: redis.Redis, clients: Callable[[str], redis.Redis]
) -> None:
    invocation = SERVER_CONTROL[command]
    verdict = _verdict(admin, role["name"], *invocation)
    assert verdict != "OK" and "no permissions" in verdict, f"the ACL lets {role['name']} run {command}: {verdict}"
    with pytest.raises(redis.exceptions.NoPermissionError):
        clients(role["name"]).execute_command(*invocation)
