"""The node scripts' shared library (components/node/lib.sh), function by function,
under dash and busybox ash: the env file loader, the Sentinel majority vote, the cli
helper (the password on stdin only), the secrets watcher and the supervisor.

redis-cli is replaced by a stand-in on PATH where a test needs to see its arguments or
to script a Sentinel's answer; the live tests (test_role_script.py and others) run the
same functions against real redis-server and Sentinel processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from redis_ha.components import node_files, package_data

from tests.support.node_scripts import SHELLS

LIB = package_data.node_dir() / node_files.LIBRARY


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> list[str]:
    command = SHELLS[request.param]
    assert shutil.which(command[0]), f"{command[0]} is needed"
    return command


def run(
    shell: list[str], snippet: str, env: dict[str, str] | None = None, stdin: str = "", timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """`snippet` after sourcing lib.sh, as the scripts do (set -eu first)."""
    return subprocess.run(
        [*shell, "-c", f"set -eu\nlog_tag=test\n. {LIB}\n{snippet}"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


# --- load_env / need -----------------------------------------------------------------


def test_load_env_sets_what_the_environment_does_not(shell: list[str], tmp_path: Path) -> None:
    env_file = tmp_path / "node.env"
    env_file.write_text("# a comment\n\nREDIS_HA_A=from file\nREDIS_HA_B=from file\nREDIS_HA_C=$HOME * `id`\n")
    result = run(
        shell,
        f"load_env {env_file}; "
        'printf "%s|%s|%s|%s\\n" "$REDIS_HA_A" "$REDIS_HA_B" "$REDIS_HA_C" "${REDIS_HA_D-unset}"',
        env={"REDIS_HA_B": "from env", "HOME": "/nowhere"},
    )
    assert result.returncode == 0, result.stderr
    # The environment wins; a value is taken as is: no expansion, no command, no glob.
    assert result.stdout == "from file|from env|$HOME * `id`|unset\n"


def test_an_empty_variable_in_the_environment_still_wins(shell: list[str], tmp_path: Path) -> None:
    env_file = tmp_path / "node.env"
    env_file.write_text("REDIS_HA_SECRETS_DIR=/run/secrets\n")
    result = run(shell, f'load_env {env_file}; echo "[$REDIS_HA_SECRETS_DIR]"', env={"REDIS_HA_SECRETS_DIR": ""})
    assert result.stdout == "[]\n", result.stderr


def test_load_env_without_a_file_sets_nothing(shell: list[str], tmp_path: Path) -> None:
    result = run(shell, f'load_env {tmp_path / "missing.env"}; echo "${{REDIS_HA_A-unset}}"')
    assert result.returncode == 0 and result.stdout == "unset\n", result.stderr


@pytest.mark.parametrize("line", ["not a pair", "1X=2", "A-B=3", "=value", "X;rm=1"])
def test_load_env_refuses_a_line_that_is_not_key_value(shell: list[str], tmp_path: Path, line: str) -> None:
    env_file = tmp_path / "node.env"
    env_file.write_text(f"REDIS_HA_A=1\n{line}\n")
    result = run(shell, f"load_env {env_file}; echo loaded")
    assert result.returncode == 1 and "loaded" not in result.stdout
    assert f"{env_file}: not a KEY=value line: {line}" in result.stderr


def test_need_names_the_missing_variable(shell: list[str]) -> None:
    result = run(shell, "need REDIS_HA_A REDIS_HA_B; echo ok", env={"REDIS_HA_A": "1", "REDIS_HA_B": ""})
    assert result.returncode == 1 and "ok" not in result.stdout
    assert "test: error: REDIS_HA_B is not set" in result.stderr


def test_the_env_file_python_writes_is_what_the_shell_reads(shell: list[str], tmp_path: Path) -> None:
    values = {"REDIS_HA_SENTINELS": "a:1 b:2 c:3", "REDIS_HA_TLS_ARGS": "--tls --cacert /x/ca.crt", "REDIS_HA_N": 7}
    env_file = tmp_path / "node.env"
    env_file.write_text(node_files.env_file(values))
    result = run(shell, f'load_env {env_file}; printf "%s\\n" "$REDIS_HA_SENTINELS" "$REDIS_HA_TLS_ARGS" "$REDIS_HA_N"')
    assert result.stdout.splitlines() == ["a:1 b:2 c:3", "--tls --cacert /x/ca.crt", "7"], result.stderr


@pytest.mark.parametrize(("key", "value"), [("lower", "x"), ("REDIS_HA_X", "two\nlines"), ("A B", "x")])
def test_env_file_refuses_what_the_shell_could_not_read(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="node.env"):
        node_files.env_file({key: value})


# --- majority ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        # two of three name B: B, whatever the order
        ("a 1\nb 2\nb 2\n", "b 2\n"),
        ("b 2\na 1\nb 2\n", "b 2\n"),
        # one answer: that one
        ("a 1\n", "a 1\n"),
        # a tie (an even split): the first in sort order, the same on every node
        ("b 2\na 1\n", "a 1\n"),
        # no answer: nothing (the caller falls back)
        ("", ""),
        # blank lines are no vote
        ("\n\nc 3\n\n", "c 3\n"),
        # same host, other port: another node
        ("a 1\na 2\na 2\n", "a 2\n"),
    ],
)
def test_majority(shell: list[str], answers: str, expected: str) -> None:
    result = run(shell, "majority", stdin=answers)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


# --- cli and the Sentinels' answers (a stand-in redis-cli) ---------------------------

FAKE_CLI = """#!/bin/sh
# Records argv, environment and stdin; answers as the Sentinel on -p <port> would.
dir=$(dirname "$0")
printf '%s\\n' "$@" >> "$dir/argv"
env >> "$dir/environ"
cat >> "$dir/stdin"
port=""
while [ $# -gt 0 ]; do
    [ "$1" = -p ] && port=$2
    shift
done
case $port in
    1) printf 'a\\n1\\n' ;;
    2) printf 'b\\n2\\n' ;;
    3) printf 'b\\n2\\n' ;;
    4) exit 1 ;;
    5) printf 'ERR no such master\\n' ;;
    6) printf 'c\\nnot-a-port\\n' ;;
    *) printf 'PONG\\n' ;;
esac
"""


@pytest.fixture
def fake_cli(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    cli = directory / "redis-cli"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    return directory


def with_fake(fake_cli: Path) -> dict[str, str]:
    return {"PATH": f"{fake_cli}:{os.environ['PATH']}"}


def test_cli_sends_the_password_on_stdin_never_as_an_argument(shell: list[str], fake_cli: Path) -> None:
    password = "s3cret-Pa55word-xyz"
    pwfile = fake_cli.parent / "admin.password"
    pwfile.write_text(password + "\r\n")
    result = run(
        shell,
        f"cli admin {pwfile} 127.0.0.1 6379 PING; printf 'ACL USERS\\nPING\\n' | cli admin {pwfile} 127.0.0.1 6379",
        env={**with_fake(fake_cli), "REDIS_HA_TLS_ARGS": "--tls --cacert /x/ca.crt"},
    )
    assert result.returncode == 0, result.stderr
    argv = (fake_cli / "argv").read_text()
    assert password not in argv and password not in (fake_cli / "environ").read_text()
    assert "--askpass" in argv.splitlines() and "--tls" in argv.splitlines()
    # Each call: the password first on stdin, the piped commands after it.
    assert (fake_cli / "stdin").read_text() == f"{password}\n{password}\nACL USERS\nPING\n"


def test_cli_fails_on_an_unreadable_password_file(shell: list[str], fake_cli: Path) -> None:
    result = run(shell, "cli admin /nonexistent/pw 127.0.0.1 6379 PING", env=with_fake(fake_cli))
    assert result.returncode != 0
    assert "cannot read /nonexistent/pw" in result.stderr
    assert not (fake_cli / "argv").exists()


def test_sentinel_answers_keeps_only_well_formed_replies(shell: list[str], fake_cli: Path) -> None:
    pwfile = fake_cli.parent / "client.password"
    pwfile.write_text("pw\n")
    sentinels = "s1:1 s2:2 s3:3 s4:4 s5:5 s6:6"
    result = run(shell, f'sentinel_answers {pwfile} mymaster "{sentinels}"', env=with_fake(fake_cli))
    assert result.returncode == 0, result.stderr
    # 4 does not answer, 5 knows no such master, 6 names no port: no vote.
    assert result.stdout == "a 1\nb 2\nb 2\n"
    result = run(shell, f'sentinel_answers {pwfile} mymaster "{sentinels}" | majority', env=with_fake(fake_cli))
    assert result.stdout == "b 2\n"


def test_sentinel_answers_skips_this_host(shell: list[str], fake_cli: Path) -> None:
    pwfile = fake_cli.parent / "client.password"
    pwfile.write_text("pw\n")
    result = run(shell, f'sentinel_answers {pwfile} mymaster "me:2 me:3 s1:1" me | majority', env=with_fake(fake_cli))
    assert result.stdout == "a 1\n", result.stderr


def test_answers_tells_refused_from_down(shell: list[str], fake_cli: Path) -> None:
    result = run(shell, "answers u pw h 7; answers u pw h 4; answers u pw h 5", env=with_fake(fake_cli))
    assert result.stdout.split() == ["yes", "down", "no"], result.stderr


# --- apply_acl (a stand-in admin connection) -----------------------------------------


def test_apply_acl_sets_every_user_and_deletes_the_rest(shell: list[str], tmp_path: Path) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text("user default off\nuser admin on #abc ~* +@all\nuser app on #def ~app:* +get\n")
    log = tmp_path / "sent"
    snippet = f"""
fake_admin() {{
    while IFS= read -r line; do
        echo "$line" >> {log}
        case $line in
            'ACL USERS') printf 'admin\\napp\\nold\\ndefault\\n' ;;
            *) echo OK ;;
        esac
    done
}}
apply_acl {acl} fake_admin
"""
    result = run(shell, snippet)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "ACL SETUSER default resetpass resetkeys resetchannels -@all clearselectors off",
        "ACL SETUSER admin resetpass resetkeys resetchannels -@all clearselectors on #abc ~* +@all",
        "ACL SETUSER app resetpass resetkeys resetchannels -@all clearselectors on #def ~app:* +get",
        "ACL USERS",
        "ACL DELUSER old",
    ]
    assert "user old is no longer in the ACL file; deleted" in result.stderr


def test_apply_acl_fails_when_a_user_is_refused(shell: list[str], tmp_path: Path) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text("user admin on #abc +@all\nuser app on #def +get\n")
    snippet = (
        """
refusing_admin() {
    while IFS= read -r line; do
        case $line in
            *' app '*) echo 'ERR Error in ACL SETUSER modifier' ;;
            *) echo OK ;;
        esac
    done
}
apply_acl """
        + str(acl)
        + " refusing_admin && echo applied"
    )
    result = run(shell, snippet)
    assert "applied" not in result.stdout
    assert "ACL SETUSER accepted 1 of 2 users" in result.stderr


# --- watch_secrets -------------------------------------------------------------------


def test_the_watcher_applies_a_version_change_and_records_it(shell: list[str], tmp_path: Path) -> None:
    secrets, applied, calls = tmp_path / "secrets", tmp_path / "applied", tmp_path / "calls"
    secrets.mkdir()
    (secrets / "secrets.version").write_text("v1\n")
    fails = tmp_path / "fail-next"
    fails.write_text("")
    snippet = f"""
apply() {{
    echo "apply $(cat {secrets}/secrets.version)" >> {calls}
    # The first attempt fails (a peer not ready yet): the watcher tries again.
    if [ -f {fails} ]; then rm {fails}; return 1; fi
}}
watch_secrets apply
"""
    env = {
        "REDIS_HA_SECRETS_DIR": str(secrets),
        "REDIS_HA_APPLIED_FILE": str(applied),
        "REDIS_HA_WATCH_INTERVAL": "0.1",
    }
    watcher = subprocess.Popen(
        [*shell, "-c", f"set -eu\nlog_tag=test\n. {LIB}\n{snippet}"],
        env={"PATH": os.environ["PATH"], **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (applied.exists() and applied.read_text() == "v1\n"):
            assert time.monotonic() < deadline, "the start's version was never recorded"
            time.sleep(0.05)
        time.sleep(0.4)
        assert not calls.exists(), "nothing changed, yet the watcher applied"
        (secrets / "secrets.version").write_text("v2\n")
        while applied.read_text() != "v2\n":
            assert time.monotonic() < deadline, "v2 was never recorded as applied"
            time.sleep(0.05)
        time.sleep(0.4)
        assert calls.read_text() == "apply v2\napply v2\n"
    finally:
        watcher.terminate()
        _, stderr = watcher.communicate(timeout=10)
    assert "test: secrets: the delivered secrets are applied" in stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REDIS_HA_SECRETS_DIR": "{dir}"}, "yes"),
        ({"REDIS_HA_SECRETS_DIR": "{dir}", "REDIS_HA_WATCH": "0"}, "no"),
        ({"REDIS_HA_SECRETS_DIR": ""}, "no"),
        ({"REDIS_HA_SECRETS_DIR": "{dir}/nothing-delivered"}, "no"),
    ],
)
def test_watching_only_with_delivered_secrets(
    shell: list[str], tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    (tmp_path / "secrets.version").write_text("v1\n")
    env = {k: v.format(dir=tmp_path) for k, v in env.items()}
    result = run(shell, "if watching; then echo yes; else echo no; fi", env=env)
    assert result.stdout == f"{expected}\n", result.stderr


# --- supervise -----------------------------------------------------------------------


def test_supervise_exits_with_the_servers_status_and_stops_the_watchers(shell: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "watcher-alive"
    snippet = f"""
start_watchers() {{ background sh -c 'while :; do touch {marker}; sleep 0.1; done'; }}
supervise : sh -c 'sleep 0.5; exit 7'
"""
    result = run(shell, snippet)
    assert result.returncode == 7, result.stderr
    assert marker.exists()
    marker.unlink()
    time.sleep(0.4)
    assert not marker.exists(), "the watcher outlived the server"


def test_a_stop_runs_the_hook_then_passes_the_signal_on(shell: list[str], tmp_path: Path) -> None:
    order = tmp_path / "order"
    snippet = f"""
start_watchers() {{ echo started > {order}.started; }}
on_stop() {{ echo hook >> {order}; }}
server() {{ trap 'echo server-got-term >> {order}; exit 0' TERM; while :; do sleep 0.1; done; }}
supervise on_stop server
"""
    process = subprocess.Popen(
        [*shell, "-c", f"set -eu\nlog_tag=test\n. {LIB}\n{snippet}"],
        env={"PATH": os.environ["PATH"]},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while not Path(f"{order}.started").exists():
        assert time.monotonic() < deadline, "the supervisor never started its watchers"
        time.sleep(0.05)
    time.sleep(0.2)
    process.terminate()
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "test: stop requested" in stderr
    assert order.read_text().splitlines() == ["hook", "server-got-term"]
