"""The prod stack's program under Pulumi's mocks: the pods (scripts, probes, sidecars,
scheduling, security contexts, resources).
"""

from __future__ import annotations

import json
import re

from redis_ha.components import node_files, rendering
from redis_ha.components.kubernetes.layout import LAYOUT as K8S_LAYOUT
from redis_ha.components.program import naming_for
from redis_ha.components.topology import build_sentinel_topology

from tests.support.node_scripts import parse_env
from tests.support.prod_program import (
    CONFIGMAP,
    PDB,
    SECRET,
    STATEFULSET,
    TLS_OVERRIDES,
    all_containers,
    container,
    named,
    pod_spec,
    settings_of,
    user_passwords,
)
from tests.support.program import ProgramRun

MIB = 1024**2


def test_scripts_configmap_carries_the_node_scripts_and_each_groups_env(any_run: ProgramRun) -> None:
    tls = any_run.outputs["redisHa"]["tls"]
    settings = settings_of(TLS_OVERRIDES if tls else None)
    topology = build_sentinel_topology(settings, naming_for(settings))
    scripts = named(any_run, CONFIGMAP)["redis-ha-scripts"]["data"]
    # The plain files of components/node, as they are in the package.
    for name in ("lib.sh", "healthcheck.sh", "redis-start.sh", "sentinel-start.sh", "fence.sh"):
        assert scripts[name] == node_files.script(name), name
    assert sorted(scripts) == [
        "fence.sh",
        "healthcheck.sh",
        "lib.sh",
        "redis-start.sh",
        "redis.env",
        "sentinel-start.sh",
        "sentinel.env",
    ]
    redis_env, sentinel_env = parse_env(scripts["redis.env"]), parse_env(scripts["sentinel.env"])
    assert redis_env == {
        k: str(v)
        for k, v in {
            **rendering.probe_env(topology.redis_nodes[0], K8S_LAYOUT.redis, tls),
            **rendering.start_env(settings, topology, K8S_LAYOUT.redis),
        }.items()
    }
    assert redis_env["REDIS_HA_KIND"] == "redis" and sentinel_env["REDIS_HA_KIND"] == "sentinel"
    assert redis_env["REDIS_HA_ADMIN_PASSWORD_FILE"] == "/etc/redis-ha/admin.password"
    assert sentinel_env["REDIS_HA_SENTINEL_PASSWORD_FILE"] == "/etc/redis-ha/sentinel-client.password"
    assert sentinel_env["REDIS_HA_SENTINEL_STATE"] == "/data/sentinel.conf"
    assert sentinel_env["REDIS_HA_SENTINEL_SEED"] == "/etc/redis-ha/sentinel.conf"
    assert redis_env["REDIS_HA_PER_NODE_FILES"] == sentinel_env["REDIS_HA_PER_NODE_FILES"] == "1"
    for env in (redis_env, sentinel_env):
        assert (env["REDIS_HA_TLS_ARGS"] == "--tls --cacert /etc/redis-ha/ca.crt") == tls
        assert (env["REDIS_HA_TLS_ARGS"] == "") == (not tls)
    # No secret in a ConfigMap.
    for text in scripts.values():
        assert not [p for p in any_run.passwords.values() if p and p in text]
    # Each group's pods see the scripts and their own env file as node.env.
    for kind in ("redis", "sentinel"):
        [volume] = [
            v for v in pod_spec(named(any_run, STATEFULSET)[f"redis-ha-{kind}"])["volumes"] if v["name"] == "scripts"
        ]
        items = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
        start = "redis-start.sh" if kind == "redis" else "sentinel-start.sh"
        fence = {"fence.sh": "fence.sh"} if kind == "redis" else {}
        assert items == {
            "healthcheck.sh": "healthcheck.sh",
            "lib.sh": "lib.sh",
            start: start,
            f"{kind}.env": "node.env",
            **fence,
        }


def test_redis_starts_through_the_role_script_and_hands_over_on_stop(any_run: ProgramRun) -> None:
    redis = container(named(any_run, STATEFULSET)["redis-ha-redis"], "redis")
    assert redis["command"] == ["sh", "/opt/redis-ha/redis-start.sh"]
    assert redis["lifecycle"]["preStop"]["exec"]["command"] == ["sh", "/opt/redis-ha/redis-start.sh", "prestop"]
    env = {e["name"]: e for e in redis["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    spec = pod_spec(named(any_run, STATEFULSET)["redis-ha-redis"])
    # Service links would inject REDIS_HA_* variables the script takes as overrides.
    assert spec["enableServiceLinks"] is False
    # The grace period covers the preStop wait for the hand-over, then a final save.
    assert spec["terminationGracePeriodSeconds"] >= rendering.failover_wait_seconds(settings_of()) + 10


def test_probes_exec_the_rendered_healthchecks(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        kind = name.removeprefix("redis-ha-")
        c = container(statefulset, kind)
        # One probe script for every kind: the pod's node.env names the kind.
        script = "/opt/redis-ha/healthcheck.sh"
        # Ready: in sync (a replica), cluster_state ok, a Sentinel that knows its master;
        # alive: answers at all, -LOADING included.
        for probe, mode in (("readinessProbe", "ready"), ("livenessProbe", "live")):
            assert c[probe]["exec"]["command"] == ["sh", script, mode], (name, probe)
        if "startupProbe" in c:
            assert c["startupProbe"]["exec"]["command"] == ["sh", script, "live"], name


def test_sentinels_run_from_their_writable_config(any_run: ProgramRun) -> None:
    statefulset = named(any_run, STATEFULSET)["redis-ha-sentinel"]
    sentinel = container(statefulset, "sentinel")
    assert sentinel["command"] == ["sh", "/opt/redis-ha/sentinel-start.sh"]
    # Its state (the config it rewrites) on a claim of its own; the rendered file seeds it.
    assert {"name": "data", "mountPath": "/data"} in sentinel["volumeMounts"]
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert claims[0]["spec"]["resources"]["requests"] == {"storage": "64Mi"}
    redis_urn = next(r.urn for r in any_run.of_type(STATEFULSET) if r.name == "redis-ha-redis")
    sentinel_resource = next(r for r in any_run.of_type(STATEFULSET) if r.name == "redis-ha-sentinel")
    # Sentinel refuses to start while the monitored hostname does not resolve.
    assert redis_urn in sentinel_resource.dependencies


def test_exporter_is_a_sidecar_with_its_password_from_a_secret_file(prod: ProgramRun) -> None:
    redis = named(prod, STATEFULSET)["redis-ha-redis"]
    exporter = container(redis, "exporter")
    env = {e["name"]: e for e in exporter["env"]}
    assert env["REDIS_ADDR"] == {"name": "REDIS_ADDR", "value": "redis://localhost:6379"}
    assert env["REDIS_USER"] == {"name": "REDIS_USER", "value": "exporter"}
    # A file from the Secret, not an environment variable (`kubectl describe`, /proc/<pid>/environ).
    assert "REDIS_PASSWORD" not in env
    assert env["REDIS_PASSWORD_FILE"] == {
        "name": "REDIS_PASSWORD_FILE",
        "value": "/run/redis-ha/exporter/passwords.json",
    }
    mount = next(m for m in exporter["volumeMounts"] if m["name"] == "exporter-auth")
    assert mount == {"name": "exporter-auth", "mountPath": "/run/redis-ha/exporter", "readOnly": True}
    volume = next(v for v in pod_spec(redis)["volumes"] if v["name"] == "exporter-auth")
    assert volume["secret"]["secretName"] == "redis-ha-exporter"
    secret = named(prod, SECRET)["redis-ha-exporter"]
    password = user_passwords(prod)["exporter"]
    assert secret["stringData"] == {"passwords.json": json.dumps({"redis://localhost:6379": password})}
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9121, "protocol": "TCP"}]
    # The Sentinels' sidecar: its own pod's Sentinel, as sentinel-exporter, with its own Secret.
    sentinel = named(prod, STATEFULSET)["redis-ha-sentinel"]
    sidecar = container(sentinel, "exporter")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["REDIS_ADDR"] == "redis://localhost:26379" and env["REDIS_USER"] == "sentinel-exporter"
    assert env["REDIS_EXPORTER_CONFIG_COMMAND"] == "-"
    volume = next(v for v in pod_spec(sentinel)["volumes"] if v["name"] == "exporter-auth")
    assert volume["secret"]["secretName"] == "redis-ha-sentinel-exporter"
    password = user_passwords(prod)["sentinel-exporter"]
    assert named(prod, SECRET)["redis-ha-sentinel-exporter"]["stringData"] == {
        "passwords.json": json.dumps({"redis://localhost:26379": password})
    }


def test_disruption_budgets_keep_quorum(any_run: ProgramRun) -> None:
    budgets = named(any_run, PDB)
    assert budgets["redis-ha-redis"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budgets["redis-ha-redis"]["spec"]
    assert budgets["redis-ha-sentinel"]["spec"]["minAvailable"] == settings_of().quorum == 2


def test_pods_of_one_kind_never_share_a_node(any_run: ProgramRun) -> None:
    for statefulset in named(any_run, STATEFULSET).values():
        affinity = pod_spec(statefulset)["affinity"]["podAntiAffinity"]
        [required] = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
        assert required["topologyKey"] == "kubernetes.io/hostname"
        assert required["labelSelector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]


def test_every_container_is_locked_down(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        spec = pod_spec(statefulset)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 999 and pod["fsGroup"] == 999
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in all_containers(statefulset):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 999, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, (name, c["name"])


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)?", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Mi": MIB, "Gi": 1024 * MIB, None: 1}[unit]


def test_every_container_has_requests_and_limits(any_run: ProgramRun) -> None:
    for name, statefulset in named(any_run, STATEFULSET).items():
        for c in all_containers(statefulset):
            resources = c["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, (name, c["name"])
    redis = container(named(any_run, STATEFULSET)["redis-ha-redis"], "redis")
    maxmemory = settings_of().maxmemory
    # maxmemory does not count buffers or the fork's copy-on-write pages.
    assert _bytes(redis["resources"]["limits"]["memory"]) >= maxmemory * 1.5
    assert redis["resources"]["requests"]["memory"] == redis["resources"]["limits"]["memory"]


def test_pods_roll_on_a_settings_change_only(any_run: ProgramRun) -> None:
    """The config checksum follows the settings, never a password (a rotation leaves
    the pod templates alone: tests/program/test_rotation_program.py)."""
    for resource in any_run.of_type(STATEFULSET):
        annotations = resource.wire["spec"]["template"]["metadata"]["annotations"]
        checksum = annotations["redis-ha/config-checksum"]
        assert isinstance(checksum, str) and len(checksum) == 64, resource.name
