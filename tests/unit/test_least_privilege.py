"""Least privilege on the real Redis 7.0 and Sentinel 7.0, without Docker.

The verification suite's sweep (tests/verify/acl_sweep.py) runs here against the live
processes of tests/unit/conftest.py, through the suite's own redis-cli access
(testinfra's `local://` backend): every user of every node may run exactly its
declared allowlist. Then the clients those allowlists were cut for run against them
and leave no ACL denial behind: redis_exporter, redis-py's Sentinel discovery, and
three Sentinels failing over through their narrowed peer user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel
from redis_ha.components import outputs, security
from redis_ha.components.settings_load import load_settings

from tests.support.live import (
    LIVE_CONFIG,
    LOCALHOST,
    LiveDeployment,
    LiveNode,
    scrape_exporter,
    sweep_server,
    wait_until,
)
from tests.verify import acl_sweep

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings(LIVE_CONFIG)
CASES = [
    (node, user.name)
    for node, kind in (("master", "redis"), ("replica", "redis"), ("sentinel", "sentinel"))
    for user in security.server_users(SETTINGS, kind)
]


def live_node(deployment: LiveDeployment, node: str) -> LiveNode:
    return {"master": deployment.master, "replica": deployment.replica, "sentinel": deployment.sentinel}[node]


def kind_of(live: LiveNode) -> str:
    return "sentinel" if live.node.kind == "sentinel" else "redis"


@pytest.fixture(scope="module")
def servers(deployment: LiveDeployment) -> dict[str, acl_sweep.Server]:
    return {
        name: sweep_server(live_node(deployment, name), deployment.passwords)
        for name in ("master", "replica", "sentinel")
    }


def acl_log(deployment: LiveDeployment, live: LiveNode) -> list[dict]:
    entries = deployment.client(live).acl_log()
    return [{k: e[k] for k in ("username", "reason", "object", "count") if k in e} for e in entries]


# --- the sweep ---------------------------------------------------------------------------


@pytest.mark.parametrize(("node", "user"), CASES, ids=[f"{n}-{u}" for n, u in CASES])
def test_user_may_run_exactly_its_allowlist(
    deployment: LiveDeployment, servers: dict[str, acl_sweep.Server], node: str, user: str
) -> None:
    acl = security.allowlists(deployment.settings)
    declaration = acl["servers"][kind_of(live_node(deployment, node))][user]
    result = servers[node].sweep(user, declaration, acl["alwaysAllowed"])
    assert result.ok, result.report()
    # The sweep covered the server's whole command table.
    assert len(servers[node].table) > (300 if node != "sentinel" else 60)


def test_sweep_reads_every_command_and_subcommand(servers: dict[str, acl_sweep.Server]) -> None:
    table = servers["master"].table
    assert {"get", "client|kill", "client|setname", "config|get", "acl|dryrun", "scan"} <= set(table)
    assert "client" not in table and "config" not in table  # containers run only as subcommands
    sentinel = servers["sentinel"].table
    assert {"sentinel|failover", "sentinel|masters", "client|kill", "acl|dryrun"} <= set(sentinel)
    assert "get" not in sentinel


def _probe(deployment: LiveDeployment, rules: str) -> str:
    """A throwaway user on the master with `rules`, to show what the sweep reports."""
    deployment.client(deployment.master).execute_command("ACL", "SETUSER", "sweep-probe", "reset", *rules.split())
    return "sweep-probe"


@pytest.fixture
def probe(deployment: LiveDeployment) -> Iterator[None]:
    yield
    deployment.client(deployment.master).execute_command("ACL", "DELUSER", "sweep-probe")


def test_sweep_lists_what_the_old_exporter_rules_allowed(
    deployment: LiveDeployment, servers: dict[str, acl_sweep.Server], probe: None
) -> None:
    # The exporter rules before the allowlists: +@connection brings back CLIENT KILL and
    # PAUSE, +config|get reads masterauth, +scan lists every key.
    old = (
        "resetchannels -@all +@connection +memory -readonly +strlen +config|get +xinfo +pfcount "
        "-quit +zcard +type +xlen -readwrite -command +client|list +client|info +client|setname "
        "-wait +scard +llen +hlen +get +eval +slowlog +cluster|info +cluster|slots +cluster|nodes -hello -echo +info "
        "+latency +scan -reset -auth -asking"
    )
    user = _probe(deployment, old)
    acl = security.allowlists(deployment.settings)
    result = servers["master"].sweep(user, acl["servers"]["redis"]["exporter"], acl["alwaysAllowed"])
    assert not result.ok
    assert {"config|get", "client|kill", "client|pause", "client|list", "scan", "eval", "memory|purge"} <= set(
        result.excess
    )
    report = result.report()
    assert "beyond its allowlist" in report and "client|kill" in report and "config|get" in report
    # -auth, -hello, -quit, -reset change nothing: Redis never checks them.
    assert not {"auth", "hello", "quit", "reset"} & set(result.missing)


def test_sweep_lists_allowlisted_commands_the_acl_refuses(
    deployment: LiveDeployment, servers: dict[str, acl_sweep.Server], probe: None
) -> None:
    user = _probe(deployment, "on nopass -@all +ping")
    declaration = {"commands": ["-@all", "+ping", "+info"], "keys": [], "channels": []}
    result = servers["master"].sweep(user, declaration, security.ALWAYS_ALLOWED)
    assert result.missing == ["info"] and result.excess == []
    assert "may not run 1 allowlisted commands: info" in result.report()


def test_sweep_lists_allowlisted_commands_refused_for_their_keys(
    deployment: LiveDeployment, servers: dict[str, acl_sweep.Server], probe: None
) -> None:
    # The ACL grants the commands, but on other keys than the declaration says.
    user = _probe(deployment, "on nopass resetkeys ~real:* -@all +get +set")
    declaration = {"commands": ["-@all", "+get", "+set"], "keys": ["declared:*"], "channels": []}
    result = servers["master"].sweep(user, declaration, security.ALWAYS_ALLOWED)
    assert sorted(result.refused) == ["get", "set"]
    assert "refused for its arguments" in result.report()


# --- the verification suite itself, on these processes -------------------------------


def local_outputs(deployment: LiveDeployment, tmp_path: Path) -> Path:
    """The live nodes as stack outputs (components/outputs.py) with `local://` testinfra
    hosts, in a private file."""
    description = outputs.describe_deployment(
        deployment.settings,
        deployment.topology,
        lambda node: "local://",
        str(deployment.master.directory),
        str(deployment.master.directory / "redis-start.sh"),
    )
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"redisHa": description, "passwords": deployment.passwords}))
    path.chmod(0o600)
    return path


def test_the_verification_suite_passes_on_the_live_nodes(deployment: LiveDeployment, tmp_path: Path) -> None:
    """tests/verify/test_least_privilege.py and test_security.py, through the real
    stack-output contract (components/outputs.py) with `local://` testinfra hosts."""
    path = local_outputs(deployment, tmp_path)
    verify = ROOT / "tests" / "verify"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--outputs", str(path)]
    result = subprocess.run(
        [*command, str(verify / "test_least_privilege.py"), str(verify / "test_security.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary
    # One least-privilege case per user of the two Redis nodes and of the Sentinel.
    listed = subprocess.run(
        [*command, "--collect-only", str(verify / "test_least_privilege.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    users = len(security.redis_users(deployment.settings)) * 2 + len(security.SENTINEL_PORT_USERS)
    assert f"{users} tests collected" in listed.stdout, listed.stdout[-2000:]


# --- the clients the allowlists were cut for ----------------------------------------------


def test_exporter_scrapes_without_a_single_acl_denial(deployment: LiveDeployment) -> None:
    for live in (deployment.master, deployment.replica):
        deployment.client(live).execute_command("ACL", "LOG", "RESET")
    scraped = scrape_exporter(deployment, (deployment.master, deployment.replica))
    for name, text in scraped.items():
        lines = text.splitlines()
        assert "redis_up 1" in lines, name
        # INFO still gives maxmemory, without CONFIG.
        assert any(line.startswith("redis_memory_max_bytes ") for line in lines), name
        assert not any(line.startswith("redis_config_") for line in lines), name
    for live in (deployment.master, deployment.replica):
        denied = [e for e in acl_log(deployment, live) if e["username"] == "exporter"]
        assert denied == [], f"{live.node.name}: the exporter was refused {denied}"


def test_sentinel_aware_clients_need_nothing_beyond_their_allowlists(deployment: LiveDeployment) -> None:
    """redis-py's Sentinel (kombu's and Celery's too) as an application uses it."""
    for live in (deployment.master, deployment.replica, deployment.sentinel):
        deployment.client(live).execute_command("ACL", "LOG", "RESET")
    sentinel = Sentinel(
        [(LOCALHOST, deployment.sentinel.port)],
        sentinel_kwargs={
            "username": "sentinel-client",
            "password": deployment.passwords["sentinel-client"],
            "client_name": "redis-ha-unit",
        },
        socket_timeout=3,
    )
    name = deployment.settings.master_name
    assert sentinel.discover_master(name) == (LOCALHOST, deployment.master.port)
    wait_until(lambda: sentinel.discover_slaves(name), 10, "the Sentinel to report the replica")
    cache = sentinel.master_for(name, username="cache", password=deployment.passwords["cache"], client_name="app")
    assert cache.set("cache:least-privilege", "1", ex=60) is True
    assert cache.get("cache:least-privilege") == b"1"
    assert list(cache.scan_iter(match="cache:least-privilege")) == [b"cache:least-privilege"]
    reader = sentinel.slave_for(name, username="sessions", password=deployment.passwords["sessions"])
    assert reader.ping() is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.scan()
    for live in (deployment.master, deployment.replica, deployment.sentinel):
        denied = [e for e in acl_log(deployment, live) if e["username"] in ("sentinel-client", "cache")]
        assert denied == [], f"{live.node.name}: {denied}"


@pytest.fixture
def three_sentinels(tmp_path: Path, passwords: dict[str, str]) -> Iterator[LiveDeployment]:
    """A master, a replica and three Sentinels (quorum 2) that fail over quickly."""
    config = {**LIVE_CONFIG, "downAfterMilliseconds": 1000, "failoverTimeout": 4000}
    live = LiveDeployment(tmp_path, passwords, config=config, sentinels=3)
    try:
        yield live.start()
    finally:
        live.stop()


def test_three_sentinels_agree_and_fail_over_through_their_narrowed_users(three_sentinels: LiveDeployment) -> None:
    """A real failover, not a forced one: the Sentinels must find each other (PUBLISH on
    the hello channel), agree that the master is down and elect a leader
    (SENTINEL IS-MASTER-DOWN-BY-ADDR), all as the `sentinel` peer user; the leader
    promotes the replica as the `sentinel` user of the Redis nodes."""
    d = three_sentinels
    name = d.settings.master_name
    assert d.settings.quorum == 2
    for live in d.sentinels:

        def peers(live: LiveNode = live) -> bool:
            reply = d.client(live, "sentinel-client").execute_command("SENTINEL", "SENTINELS", name)
            return len(reply) == 2

        wait_until(peers, 20, f"{live.node.name} to know the two other Sentinels", interval=0.2)
    for live in (*d.sentinels, d.replica):
        d.client(live).execute_command("ACL", "LOG", "RESET")
    d.master.stop()
    promoted = [LOCALHOST, str(d.replica.port)]
    for live in d.sentinels:

        def follows(live: LiveNode = live) -> bool:
            reply = d.client(live, "sentinel-client").execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
            return reply == promoted

        wait_until(follows, 30, f"{live.node.name} to name the promoted replica", interval=0.2)
    assert d.client(d.replica).info("replication")["role"] == "master"
    for live in (*d.sentinels, d.replica):
        assert acl_log(d, live) == [], f"{live.node.name} refused a command during the failover"


# --- a widened rule fails the check, naming the user and the command ------------------


@pytest.fixture
def widened(deployment: LiveDeployment) -> Iterator[list[tuple[LiveNode, str, str]]]:
    """(node, user, rule) widened by a test on the shared deployment; put back
    afterwards whatever the test did, so the other cases see the declared rules."""
    changes: list[tuple[LiveNode, str, str]] = []
    yield changes
    for live, user, rule in changes:
        deployment.client(live).execute_command("ACL", "SETUSER", user, "-" + rule[1:])


def _widen(deployment: LiveDeployment, changes: list, live: LiveNode, user: str, rule: str) -> None:
    changes.append((live, user, rule))
    deployment.client(live).execute_command("ACL", "SETUSER", user, rule)


def test_a_widened_exporter_rule_fails_naming_the_user_and_the_command(
    deployment: LiveDeployment, servers: dict[str, acl_sweep.Server], widened: list
) -> None:
    acl = security.allowlists(deployment.settings)
    declaration = acl["servers"]["redis"]["exporter"]
    assert servers["master"].sweep("exporter", declaration, acl["alwaysAllowed"]).ok
    _widen(deployment, widened, deployment.master, "exporter", "+client|kill")
    result = servers["master"].sweep("exporter", declaration, acl["alwaysAllowed"])
    assert not result.ok
    assert result.excess == ["client|kill"] and result.missing == []
    report = result.report()
    assert report.startswith("exporter on ")
    assert "may run 1 commands beyond its allowlist: client|kill" in report


def test_the_verification_suite_fails_on_a_widened_sentinel_client(
    deployment: LiveDeployment, widened: list, tmp_path: Path
) -> None:
    """The verification suite's own case (tests/verify/test_least_privilege.py), run as
    a user runs it, fails for exactly the widened user on the widened Sentinel and its
    message names the user and the command; every other case still passes."""
    _widen(deployment, widened, deployment.sentinel, "sentinel-client", "+client|pause")
    path = local_outputs(deployment, tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rf",
            "--outputs",
            str(path),
            str(ROOT / "tests" / "verify" / "test_least_privilege.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    sentinel = deployment.sentinel.node.name
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and f"[{sentinel}-sentinel-client]" in failed[0], failed
    assert f"sentinel-client on {sentinel}" in result.stdout
    assert "may run 1 commands beyond its allowlist: client|pause" in result.stdout
    assert "1 failed" in result.stdout.splitlines()[-1]


def test_the_celery_cases_leave_no_acl_refusal_behind(deployment: LiveDeployment, tmp_path: Path) -> None:
    """tests/verify/test_app_celery.py on these processes (a real worker and producer on
    this machine, REDIS_HA_CLIENT_DIRECT): the broker role has no SCAN (scan: false), so
    the suite's cleanup of a run's keys must not need it as that role."""
    path = local_outputs(deployment, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--outputs", str(path)]
        + [str(ROOT / "tests" / "verify" / "test_app_celery.py")],
        cwd=ROOT,
        env={**os.environ, "REDIS_HA_CLIENT_DIRECT": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, summary
