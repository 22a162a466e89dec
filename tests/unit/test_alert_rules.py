"""The promtool unit tests of the alert rules (monitoring/tests/*-test.yml), and what
they must hold.

promtool comes with Debian's `prometheus` package (tests/run.sh installs it). It runs
every test file against monitoring/prometheus-rules.yml: series in, alerts out, labels
and rendered annotations compared. The checks here parse both YAML files so that no
alert can be added without a case where it fires, a case where it stays silent, and a
silent check on the healthy deployment of every topology.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "monitoring" / "prometheus-rules.yml"
TESTS_DIR = ROOT / "monitoring" / "tests"
TEST_FILES = sorted(TESTS_DIR.glob("*-test.yml"))
PROMTOOL = "/usr/bin/promtool"
# One group per allowed topology (components/settings.py TOPOLOGIES), the cluster with
# and without replicas.
HEALTHY_GROUPS = {
    "healthy: sentinel",
    "healthy: cluster with replicas",
    "healthy: cluster without replicas",
    "healthy: both",
}
# The longest range any rule looks back over for a healthy deployment
# (RedisReplicasMissing's max_over_time over 1h).
LONGEST_WINDOW_SECONDS = 3600

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(duration: str) -> int:
    """A Prometheus duration such as 90m or 1d2h, in seconds."""
    assert re.fullmatch(r"(\d+[smhdw])+", duration), duration
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(duration))


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def promtool_groups() -> list[tuple[str, dict[str, Any]]]:
    """(file name, test group) for every group of every test file."""
    return [(path.name, group) for path in TEST_FILES for group in yaml.safe_load(path.read_text())["tests"]]


def alert_cases() -> list[tuple[str, dict[str, Any]]]:
    """(group name, alert_rule_test entry) of every test file."""
    return [(group["name"], case) for _, group in promtool_groups() for case in group.get("alert_rule_test", [])]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), f"{PROMTOOL} is missing: apt-get install prometheus (tests/run.sh installs it)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=300, cwd=TESTS_DIR)


def test_the_test_files_exist_and_load_the_rules_file() -> None:
    assert [p.name for p in TEST_FILES] == ["alerts-test.yml", "healthy-test.yml"]
    for path in TEST_FILES:
        content = yaml.safe_load(path.read_text())
        assert content["rule_files"] == ["../prometheus-rules.yml"], path.name
        assert (path.parent / content["rule_files"][0]).resolve() == RULES_FILE
        assert content["tests"], path.name
    names = [group.get("name") for _, group in promtool_groups()]
    assert all(names) and len(names) == len(set(names)), names


def test_promtool_accepts_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *(p.name for p in TEST_FILES))
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}{result.stderr}"


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The run above would pass vacuously if promtool ignored the cases: one wrong
    expectation must fail it."""
    broken = yaml.safe_load((TESTS_DIR / "alerts-test.yml").read_text())
    broken["rule_files"] = [str(RULES_FILE)]
    case = next(c for g in broken["tests"] for c in g.get("alert_rule_test", []) if c["exp_alerts"])
    case["exp_alerts"] = []
    (tmp_path / "broken-test.yml").write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "broken-test.yml"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode != 0 and case["alertname"] in result.stdout + result.stderr


def test_the_cases_name_only_alerts_of_the_rules_file() -> None:
    # A silent case for a misspelt alert passes whatever the rules do.
    unknown = {case["alertname"] for _, case in alert_cases()} - set(alerts())
    assert not unknown, unknown


@pytest.mark.parametrize("alert", sorted(alerts()))
def test_every_alert_has_a_firing_and_a_silent_case(alert: str) -> None:
    cases = [(group, case) for group, case in alert_cases() if case["alertname"] == alert]
    firing = [case for _, case in cases if case["exp_alerts"]]
    silent = [case for group, case in cases if not case["exp_alerts"] and group not in HEALTHY_GROUPS]
    assert firing, f"{alert}: no promtool case where it fires"
    assert silent, f"{alert}: no promtool case (besides the healthy deployments) where it stays silent"
    for case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_labels"]["severity"] == alerts()[alert]["labels"]["severity"], alert
            assert set(expected.get("exp_annotations", {})) >= {"summary", "description"}, alert


@pytest.mark.parametrize("group_name", sorted(HEALTHY_GROUPS))
def test_the_healthy_deployment_is_checked_against_every_alert(group_name: str) -> None:
    groups = [group for _, group in promtool_groups() if group["name"] == group_name]
    assert len(groups) == 1, f"no test group named {group_name!r}"
    (group,) = groups
    assert group["input_series"], group_name
    longest_for = max(seconds(rule.get("for", "0s")) for rule in alerts().values())
    checked = set()
    for case in group["alert_rule_test"]:
        assert case["exp_alerts"] == [], f"{group_name}: {case['alertname']} is expected to fire"
        # Before its `for` and the windows have passed, silence proves nothing.
        assert seconds(case["eval_time"]) >= longest_for + LONGEST_WINDOW_SECONDS, case
        checked.add(case["alertname"])
    missing = set(alerts()) - checked
    assert not missing, f"{group_name} does not check {sorted(missing)}"


def test_every_recording_rule_is_evaluated_by_a_case() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    evaluated = {case["expr"].strip() for _, group in promtool_groups() for case in group.get("promql_expr_test", [])}
    assert recorded and recorded <= evaluated, recorded - evaluated
