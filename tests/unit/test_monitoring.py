"""monitoring/: the Prometheus alert rules and the Grafana dashboard.

The metric names every expression may use are not a list kept here: they are scraped
from the real redis_exporter (the binary the test exporter image is built from,
tests/images/build.sh) in front of real servers rendered by components/rendering.py
(tests/unit/conftest.py): a master with a connected replica, their Sentinel, and a Redis
Cluster node. The few names that do not come from the exporter are listed in
NOT_FROM_THE_EXPORTER with where they come from. Every expression is parsed by
promql-parser, and the metric names a small regex tokenizer finds are checked against
the names the parser's syntax tree holds, so the tokenizer cannot quietly miss one.
The promtool tests of the rules are tests/unit/test_alert_rules.py's.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import redis
import yaml
from redis_ha.components import plan, rendering
from redis_ha.components.program import naming_for
from redis_ha.components.settings_load import load_settings
from redis_ha.components.topology import ClusterNode, build_cluster_topology

from tests.support.live import LOCALHOST, LiveDeployment, LiveNode, free_port, local_layout, scrape_exporter

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "monitoring" / "prometheus-rules.yml"
DASHBOARD_FILE = ROOT / "monitoring" / "grafana-dashboard.json"
SEVERITIES = {"warning", "critical"}
# What the issue asks the rules and the dashboard to watch.
REQUIRED_METRICS = {
    "redis_up",
    "redis_instance_info",
    "redis_connected_slaves",
    "redis_connected_slave_lag_seconds",
    "redis_master_link_up",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_evicted_keys_total",
    "redis_rejected_connections_total",
    "redis_rdb_last_bgsave_status",
    "redis_aof_last_write_status",
    "redis_aof_last_bgrewrite_status",
    # a Sentinel (redis_exporter's exporter/sentinels.go)
    "redis_sentinel_master_status",
    "redis_sentinel_master_ok_sentinels",
    "redis_sentinel_master_ckquorum_status",
    # a Redis Cluster node (CLUSTER INFO, exporter/info.go)
    "redis_cluster_state",
    "redis_cluster_slots_ok",
    "redis_cluster_slots_fail",
}
# Names an expression may use that redis_exporter does not publish.
NOT_FROM_THE_EXPORTER = {
    "up": "Prometheus' own, one per scrape target",
    "redis_ha_backup_last_success_timestamp_seconds": "the backup job's (see the rules file's header)",
    "redis_ha_backup_schedule_max_interval_seconds": "redis-ha's backup worker's (redis_ha/backup/metrics.py)",
}
# The target labels of the rules file's conventions: every selector of a rule names
# redis_ha_kind (a Sentinel-group rule must not see Redis Cluster nodes, nor the other
# way round); the backup job's metrics have only redis_ha_deployment.
KIND_LABEL = "redis_ha_kind"
WITHOUT_KIND = {"redis_ha_backup_last_success_timestamp_seconds", "redis_ha_backup_schedule_max_interval_seconds"}
# A Redis Cluster node of its own (no cluster created: the metric names are all there).
CLUSTER_CONFIG = {"backend": "docker", "topology": "cluster", "redisVersion": "7.0", "publishPorts": False}

# --- the expressions --------------------------------------------------------------


def load_rules() -> dict[str, Any]:
    return yaml.safe_load(RULES_FILE.read_text())


def rule_list() -> list[dict[str, Any]]:
    return [rule for group in load_rules()["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (f"panel {panel['id']} {panel['title']} {target['refId']}", target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def rule_name(rule: dict[str, Any]) -> str:
    return f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"


def recorded_names() -> set[str]:
    return {r["record"] for r in rule_list() if "record" in r}


def all_exprs() -> list[tuple[str, str]]:
    return [(rule_name(r), r["expr"]) for r in rule_list()] + dashboard_exprs()


# --- metric names in an expression -------------------------------------------------

_FUNCTIONS_AND_KEYWORDS = {
    # aggregation and vector-matching keywords; `bool`, `offset`, set operators
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\d+[smhdwy]\w*")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions (followed
    by `(`), keywords, label names (in `{}` or a `by (...)` list), durations or numbers."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(r"\1 ", text)
    text = _OFFSET.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token[0].isdigit() or match.group(1) or token in _FUNCTIONS_AND_KEYWORDS:
            continue
        names.add(token)
    return names


def selectors(expr: str) -> list[Any]:
    """The vector selectors of the syntax tree promql-parser builds."""
    found: list[Any] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def parsed_metric_names(expr: str) -> set[str]:
    """The metric names of the syntax tree promql-parser builds."""
    return {node.name for node in selectors(expr) if node.name}


# --- the real exporter's metric names ---------------------------------------------


def _metric_names_of(exposition: str) -> set[str]:
    return {re.split(r"[{\s]", line, maxsplit=1)[0] for line in exposition.splitlines() if line and line[0] != "#"}


@pytest.fixture(scope="module")
def cluster_node(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[LiveNode]:
    """One Redis Cluster node, rendered by the plan like every node of a cluster
    deployment (no cluster created: the cluster metric names are all there)."""
    settings = load_settings(CLUSTER_CONFIG)
    template = build_cluster_topology(settings, naming_for(settings))
    first = template.members[0]
    node = dataclasses.replace(first.node, hostname=LOCALHOST, port=free_port())
    topology = dataclasses.replace(template, members=(ClusterNode(node, first.shard, None), *template.members[1:]))
    settings = dataclasses.replace(settings, port=node.port, cluster_bus_port=free_port())
    directory = tmp_path_factory.mktemp("cluster-node")
    paths = rendering.Paths(conf_dir=str(directory), data_dir=str(directory))
    group = plan.cluster_part(settings, local_layout(paths), topology).groups[0]
    for name, content in group.files(node, passwords).items():
        (directory / name).write_text(content)
    live = LiveNode(node=node, settings=settings, directory=directory, conf=directory / "redis.conf")
    live.start()
    try:
        live.wait_ready("admin", passwords["admin"])
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def exporter_metrics(deployment: LiveDeployment, cluster_node: LiveNode) -> set[str]:
    """Every metric name redis_exporter publishes for the live master (with its
    replica connected, so that the replication series exist), the replica, a Redis
    Cluster node and their Sentinel, run as the backends run it: without CONFIG
    (security.EXPORTER_ENVIRONMENT), as `exporter` on the Redis nodes and as
    `sentinel-exporter` on the Sentinel, with the users as rendered."""
    sentinel = deployment.client(deployment.sentinel)
    sentinel.execute_command("ACL", "LOG", "RESET")
    redis_nodes = (deployment.master, deployment.replica, cluster_node)
    # The error fence.sh records once a second on a fenced master (RedisMasterFenced).
    with pytest.raises(redis.ResponseError, match="fenced"):
        deployment.client(deployment.master).eval("return redis.error_reply('FENCED this master is fenced')", 0)
    scraped = scrape_exporter(deployment, redis_nodes)
    assert 'redis_errors_total{err="FENCED"}' in scraped[deployment.master.node.name], "no FENCED error count"
    scraped.update(scrape_exporter(deployment, (deployment.sentinel,), user="sentinel-exporter"))
    names = {}
    for live in (*redis_nodes, deployment.sentinel):
        text = scraped[live.node.name]
        assert "redis_up 1" in text.splitlines(), f"the exporter could not log in to {live.node.name}"
        names[live.node.kind if live is not deployment.replica else "replica"] = _metric_names_of(text)
    # Nothing the exporter asked the Sentinel was refused: the declared allowlist
    # (security.SENTINEL_EXPORTER_COMMANDS) is all it needs.
    assert sentinel.execute_command("ACL", "LOG") == []
    assert {n for n in names["sentinel"] if n.startswith("redis_sentinel_master_")}, "no Sentinel metrics"
    assert "redis_cluster_state" in names["cluster"] and "redis_cluster_state" not in names["redis"]
    return set().union(*names.values())


# --- rules file ---------------------------------------------------------------------


def test_rules_file_structure() -> None:
    rules = load_rules()
    assert set(rules) == {"groups"} and rules["groups"]
    group_names = [g["name"] for g in rules["groups"]]
    assert len(group_names) == len(set(group_names))
    for group in rules["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group["name"]
        for rule in group["rules"]:
            where = rule_name(rule)
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), where
            if "record" in rule:
                # level:metric:operations, in the redis_ha namespace
                assert set(rule) <= {"record", "expr", "labels"}, where
                assert re.fullmatch(r"redis_ha:[a-z_]+", rule["record"]), where
                continue
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, where
            assert re.fullmatch(r"Redis[A-Z][A-Za-z]+", rule["alert"]), where
            if "for" in rule:
                assert re.fullmatch(r"\d+[smh]", rule["for"]), where
            assert rule["labels"]["severity"] in SEVERITIES, where
            assert {"summary", "description"} <= set(rule["annotations"]), where
    names = [rule_name(r) for r in rule_list()]
    assert len(names) == len(set(names)), names


def test_rules_cover_what_the_issue_asks() -> None:
    alerts = {r["alert"]: r["expr"] for r in rule_list() if "alert" in r}
    for alert in ("RedisDown", "RedisMasterWithoutReplicas", "RedisReplicaLinkDown", "RedisReplicationLag"):
        assert alert in alerts
    for alert in ("RedisMemoryHigh", "RedisEvictingKeys", "RedisRejectedConnections"):
        assert alert in alerts
    for alert in ("RedisNoMaster", "RedisMultipleMasters", "RedisSentinelQuorumLost", "RedisSentinelMastersDisagree"):
        assert alert in alerts
    for alert in ("RedisSentinelFailover", "RedisClusterFailover", "RedisClusterShardWithoutMaster"):
        assert alert in alerts
    for alert in ("RedisRdbSaveFailing", "RedisAofWriteFailing", "RedisBackupTooOld", "RedisBackupMissing"):
        assert alert in alerts
    used = set().union(*(metric_names(e) for e in alerts.values()))
    assert used >= REQUIRED_METRICS, REQUIRED_METRICS - used


@pytest.mark.parametrize(("where", "expr"), [(rule_name(r), r["expr"]) for r in rule_list()])
def test_every_selector_of_a_rule_names_the_node_kind(where: str, expr: str) -> None:
    for node in selectors(expr):
        if node.name in WITHOUT_KIND or node.name in recorded_names():
            continue
        kinds = [m for m in node.matchers.matchers if m.name == KIND_LABEL]
        assert len(kinds) == 1, f"{where}: {node} has no {KIND_LABEL} matcher"
        assert kinds[0].value and re.fullmatch(r"(redis|sentinel|cluster)(\|(redis|sentinel|cluster))*", kinds[0].value)


@pytest.mark.parametrize(("where", "expr"), all_exprs(), ids=[w for w, _ in all_exprs()])
def test_expression_parses_and_the_tokenizer_agrees_with_the_parser(where: str, expr: str) -> None:
    assert metric_names(expr) == parsed_metric_names(expr), where


def test_a_broken_expression_does_not_parse() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (instance) (rate(redis_evicted_keys_total[5m])")
    with pytest.raises(ValueError):
        promql_parser.parse("redis_up == == 0")


def test_the_tokenizer_skips_functions_keywords_labels_and_durations() -> None:
    expr = (
        'sum by (instance, role) (rate(redis_a_total{role="master", job=~"x|y"}[5m] offset 1h)) '
        "> on (job) group_left (slave_ip) redis_b * 1e3 and ignoring (pod) count_over_time(redis_c[10m:1m]) "
        "or vector(1) unless absent(redis_d)"
    )
    assert metric_names(expr) == {"redis_a_total", "redis_b", "redis_c", "redis_d"}
    assert parsed_metric_names(expr) == {"redis_a_total", "redis_b", "redis_c", "redis_d"}


def test_exporter_publishes_the_required_metrics(exporter_metrics: set[str]) -> None:
    assert exporter_metrics >= REQUIRED_METRICS, REQUIRED_METRICS - exporter_metrics
    assert len(exporter_metrics) > 100


@pytest.mark.parametrize(("where", "expr"), all_exprs(), ids=[w for w, _ in all_exprs()])
def test_every_metric_of_every_expression_is_published_by_the_exporter(
    where: str, expr: str, exporter_metrics: set[str]
) -> None:
    unknown = metric_names(expr) - exporter_metrics - set(NOT_FROM_THE_EXPORTER) - recorded_names()
    assert not unknown, f"{where}: {sorted(unknown)} not published by redis_exporter"


def test_the_names_not_from_the_exporter_are_not_the_exporter_s(exporter_metrics: set[str]) -> None:
    assert not set(NOT_FROM_THE_EXPORTER) & exporter_metrics
    assert not recorded_names() & exporter_metrics


def test_an_expression_with_a_wrong_metric_name_is_caught(exporter_metrics: set[str]) -> None:
    # redis_exporter says "slaves", as Redis' INFO does; "replicas" would never match.
    assert metric_names("redis_connected_replicas < 2") - exporter_metrics == {"redis_connected_replicas"}


# --- dashboard ----------------------------------------------------------------------


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 8
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    used = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    assert used >= REQUIRED_METRICS, REQUIRED_METRICS - used


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
