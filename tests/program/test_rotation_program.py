"""Password rotation through the program (docs/redis-notes.md#rotating-passwords).

Three runs of the real program per backend, as three `pulumi up`s: before (phase 0),
phase 1 (new passwords, the old ones kept as previous) and phase 2 (previous removed).
Each later run keeps the generated passwords of the run before it by resource name, as
the engine keeps a RandomPassword's state (tests/support/updates.py). Every user
rotates: the admin password is configured (adminPassword / previousAdminPassword),
all others are generated (passwordGeneration / previousPasswordGeneration).

What must hold: the node containers (Docker) and the pod templates (Kubernetes) do not
change at all, only what delivers the secrets; phase 1 carries both hashes, phase 2 the
new one only; nothing secret outside a secret; a bad rotation config registers nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pytest
from redis_ha.components import security

from tests.support.program import ProgramRun, plain_strings, run_program, stack_config
from tests.support.updates import run_update

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"

OLD_ADMIN = "Old-Admin-Secret-0001"
NEW_ADMIN = "New-Admin-Secret-0002"


def phase_configs(stack: str) -> list[dict[str, Any]]:
    base = stack_config(stack)
    return [
        {**base, "adminPassword": OLD_ADMIN},
        {
            **base,
            "adminPassword": NEW_ADMIN,
            "previousAdminPassword": OLD_ADMIN,
            "passwordGeneration": 1,
            "previousPasswordGeneration": 0,
        },
        {**base, "adminPassword": NEW_ADMIN, "passwordGeneration": 1},
    ]


def three_phases(stack: str) -> list[ProgramRun]:
    configs = phase_configs(stack)
    runs = [run_program(configs[0], stack=stack)]
    for config in configs[1:]:
        runs.append(run_update(config, runs[-1], stack=stack))
    return runs


@pytest.fixture(scope="module")
def dev_phases() -> list[ProgramRun]:
    return three_phases("dev")


@pytest.fixture(scope="module")
def prod_phases() -> list[ProgramRun]:
    return three_phases("prod")


def kind_of(resource: Any) -> str:
    labels = {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}
    return labels.get("redis-ha.kind", "")


def by_name(run: ProgramRun, token: str) -> dict[str, Any]:
    found = {r.name: r for r in run.of_type(token)}
    assert len(found) == len(run.of_type(token)), token
    return found


def passwords_of(run: ProgramRun) -> dict[str, str]:
    """user -> password in use in this run (from the secret stack outputs)."""
    from redis_ha.components.outputs import stack_passwords

    return stack_passwords(run.outputs)


def digest(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def test_every_password_changes_between_phase_0_and_phase_2(dev_phases: list[ProgramRun]) -> None:
    before, phase1, after = (passwords_of(r) for r in dev_phases)
    assert set(before) == set(after) and len(before) == 13
    assert before["admin"] == OLD_ADMIN and after["admin"] == NEW_ADMIN
    assert all(before[u] != after[u] for u in before), [u for u in before if before[u] == after[u]]
    # phase 1 already uses the new passwords; the old ones are only accepted
    assert phase1 == after


def test_a_rotation_changes_no_node_container_on_docker(dev_phases: list[ProgramRun]) -> None:
    phases = [by_name(r, CONTAINER) for r in dev_phases]
    assert phases[0].keys() == phases[1].keys() == phases[2].keys()
    changed = {
        name for name in phases[0] if not (phases[0][name].inputs == phases[1][name].inputs == phases[2][name].inputs)
    }
    kinds = {name: kind_of(phases[0][name]) for name in phases[0]}
    nodes = {n for n, k in kinds.items() if k in ("redis", "sentinel")}
    assert len(nodes) == 6
    # Not one input of a Redis node or a Sentinel changed: no container is replaced.
    assert not changed & nodes, sorted(changed & nodes)
    # What changes: every secrets writer (phase 1 and again phase 2) and the exporters,
    # whose password file's version is a label (they are restarted; they hold no data).
    writers = {n for n, k in kinds.items() if k == "secrets-writer"}
    assert len(writers) == 8
    assert changed == writers | {n for n, k in kinds.items() if k in ("exporter", "sentinel-exporter")}
    for name in {n for n in writers if "exporter" not in n}:
        assert phases[0][name].inputs != phases[1][name].inputs != phases[2][name].inputs, name
    for token in (VOLUME, NETWORK):
        first, last = by_name(dev_phases[0], token), by_name(dev_phases[2], token)
        assert first.keys() == last.keys() and all(first[n].inputs == last[n].inputs for n in first), token


def test_the_program_orders_the_writers_redis_first(dev_phases: list[ProgramRun]) -> None:
    """The Sentinels get the new files after every Redis node has applied its own (a
    writer waits for that), the exporters after both: order stated with depends_on."""
    run = dev_phases[1]
    containers = run.of_type(CONTAINER)
    redis_writers = {c.urn for c in containers if kind_of(c) == "secrets-writer" and "-redis-" in c.name}
    assert len(redis_writers) == 3
    for c in containers:
        if kind_of(c) == "secrets-writer" and "-sentinel-" in c.name and "exporter" not in c.name:
            assert redis_writers <= set(c.dependencies), c.name
        if kind_of(c) == "exporter":
            assert redis_writers <= set(c.dependencies), c.name


def delivered(run: ProgramRun, node: str, file_name: str) -> str:
    [writer] = [c for c in run.of_type(CONTAINER) if c.name == f"{node}-secrets"]
    return next(u["content"] for u in writer.inputs["uploads"] if u["file"].endswith(f"/{file_name}"))


def test_phase_1_accepts_both_passwords_and_phase_2_only_the_new(dev_phases: list[ProgramRun]) -> None:
    before, _, after = (passwords_of(r) for r in dev_phases)
    for phase, run in enumerate(dev_phases):
        acl = delivered(run, "redis-ha-redis-2", "users.acl")
        sentinel_conf = delivered(run, "redis-ha-sentinel-1", "sentinel.conf")
        for user in security.user_names(run_settings(run)):
            in_redis = user not in ("sentinel-client", "sentinel-exporter")
            text = acl if in_redis else sentinel_conf
            line = next(line for line in text.splitlines() if line.startswith(f"user {user} "))
            expected = {0: [digest(before[user])], 1: [digest(after[user]), digest(before[user])]}.get(
                phase, [digest(after[user])]
            )
            assert line.split()[3 : 3 + len(expected)] == expected, (phase, user)
            assert line.split()[3 + len(expected)][0] != "#", (phase, user)
        # Whoever logs in with a password uses the new one from phase 1 on.
        conf = delivered(run, "redis-ha-redis-2", "redis.conf")
        in_use = before if phase == 0 else after
        assert f"\nmasterauth {in_use['replica']}\n" in conf, phase
        assert f"\nsentinel auth-pass redis-ha {in_use['sentinel']}\n" in sentinel_conf, phase
        assert f"\nsentinel sentinel-pass {in_use['sentinel']}\n" in sentinel_conf, phase
        assert delivered(run, "redis-ha-redis-2", "admin.password") == in_use["admin"]


def run_settings(run: ProgramRun) -> Any:
    """The dev stack's settings (every phase has the same users)."""
    from redis_ha.components.settings_load import load_settings

    return load_settings(stack_config("dev"))


def test_a_rotation_changes_no_pod_template_on_kubernetes(prod_phases: list[ProgramRun]) -> None:
    sets = [by_name(r, STATEFULSET) for r in prod_phases]
    assert sets[0].keys() == sets[1].keys() == sets[2].keys() and len(sets[0]) == 2
    for name in sets[0]:
        assert sets[0][name].inputs == sets[1][name].inputs == sets[2][name].inputs, name
    # The Secrets change (the kubelet updates the mounted ones in place), and their
    # version with them; no ConfigMap does.
    secrets = [by_name(r, SECRET) for r in prod_phases]
    for name in ("redis-ha-redis-config", "redis-ha-sentinel-config"):
        data = [s[name].inputs["stringData"] for s in secrets]
        assert data[0] != data[1] != data[2], name
        assert data[0]["secrets.version"] != data[1]["secrets.version"] != data[2]["secrets.version"]
    configmaps = [by_name(r, CONFIGMAP) for r in prod_phases]
    assert configmaps[0] and all(
        configmaps[0][n].inputs == configmaps[1][n].inputs == configmaps[2][n].inputs for n in configmaps[0]
    )


def test_a_settings_change_still_rolls_pods_and_replaces_containers() -> None:
    for stack, token in (("dev", CONTAINER), ("prod", STATEFULSET)):
        base = run_program(stack_config(stack), stack=stack)
        changed = run_update({**stack_config(stack), "maxmemory": "200mb"}, base, stack=stack)
        before, after = by_name(base, token), by_name(changed, token)
        redis = [n for n in before if "redis-ha-redis" in n and not n.endswith("-secrets")]
        assert redis
        for name in redis:
            assert before[name].inputs != after[name].inputs, (stack, name)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_password_or_hash_outside_a_secret_in_any_phase(
    stack: str, dev_phases: list[ProgramRun], prod_phases: list[ProgramRun]
) -> None:
    runs = dev_phases if stack == "dev" else prod_phases
    values = {OLD_ADMIN, NEW_ADMIN}
    for run in runs:
        values |= set(run.passwords.values()) | set(passwords_of(run).values())
    values |= {hashlib.sha256(v.encode()).hexdigest() for v in list(values)}
    for run in runs:
        for r in run.resources:
            plain = " ".join(plain_strings(r.wire))
            assert not [v for v in values if v in plain], f"{r.type} {r.name} carries a secret in plain text"
        assert run.secret_outputs >= {"passwords"}
        for name in run.outputs:
            if name.endswith("Password") or name == "passwords":
                assert name in run.secret_outputs, name


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"adminPassword": OLD_ADMIN, "previousAdminPassword": OLD_ADMIN}, "redis-ha:previousAdminPassword"),
        ({"previousCachePassword": OLD_ADMIN}, "redis-ha:previousCachePassword"),
        ({"adminPassword": NEW_ADMIN, "previousAdminPassword": "short"}, "redis-ha:previousAdminPassword"),
        ({"passwordGeneration": 2, "previousPasswordGeneration": 0}, "redis-ha:previousPasswordGeneration"),
        ({"previousPasswordGeneration": 0}, "redis-ha:previousPasswordGeneration"),
        ({"passwordGeneration": -1}, "redis-ha:passwordGeneration"),
        (
            {"topology": "both", "passwordGeneration": 1, "previousPasswordGeneration": 0},
            "redis-ha:previousPasswordGeneration",
        ),
    ],
)
def test_bad_rotation_config_registers_nothing(override: dict[str, Any], key: str) -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError) as caught:
        run_program({**stack_config("dev"), **override}, stack="dev", run=run)
    assert run.resources == []
    message = str(caught.value)
    assert message.startswith(f"{key}: invalid value "), message
    assert "allowed: " in message
    # A password never appears in the error.
    assert OLD_ADMIN not in message and NEW_ADMIN not in message


def test_a_writer_whose_node_did_not_apply_fails_the_update() -> None:
    """pulumi-docker records a one-shot container's exit code without failing; the
    program turns a failed secrets writer into a failed `pulumi up`."""
    from redis_ha.components.docker.secrets import check_writer

    check_writer("redis-ha-redis-1-secrets", 0)
    check_writer("redis-ha-redis-1-secrets", None)  # under preview or mocks
    with pytest.raises(pulumi.RunError, match="redis-ha-redis-1-secrets exited with 1"):
        check_writer("redis-ha-redis-1-secrets", 1)
