"""The backup worker as the program registers it, on both backends, under Pulumi's mocks."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml
from redis_ha.components import backup_plan

from tests.support.program import ProgramRun, is_secret, plain_strings, run_program, stack_config

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
CRONJOB = "kubernetes:batch/v1:CronJob"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
S3 = {
    "backupTarget": "s3",
    "backupS3Endpoint": "http://127.0.0.1:9000",
    "backupS3Bucket": "redis-backups",
    "backupS3AccessKeyId": "Backup-Access-Key-Id-1",
    "backupS3SecretAccessKey": "Backup-Secret-Access-Key-1",
}


def _run(stack: str, **config: Any) -> ProgramRun:
    return run_program({**stack_config(stack), **config}, stack=stack)


@pytest.fixture(scope="module")
def dev_volume() -> ProgramRun:
    return _run("dev", backupTarget="volume", backupImage="redis-ha-test/python-client:3.11")


@pytest.fixture(scope="module")
def prod_s3() -> ProgramRun:
    return _run("prod", topology="both", **S3)


def test_no_backup_worker_unless_asked() -> None:
    run = _run("dev")
    assert not [c for c in run.of_type(CONTAINER) if c.inputs["name"].endswith("-backup")]
    assert "backup" not in run.outputs["redisHa"]


def test_docker_worker_runs_the_schedule_as_the_redis_user(dev_volume: ProgramRun) -> None:
    worker = next(c for c in dev_volume.of_type(CONTAINER) if c.inputs["name"] == "redis-ha-backup")
    i = worker.inputs
    assert i["command"] == ["python3", "/opt/redis-ha/backup", "schedule", "--config", "/etc/redis-ha/backup.json"]
    assert i["user"] == "999"
    assert i["image"] == "redis-ha-test/python-client:3.11"
    # The backups volume is not a resource of the stack: it outlives `pulumi destroy`.
    assert i["volumes"] == [
        {"volumeName": "redis-ha-backup-secrets", "containerPath": "/etc/redis-ha"},
        {"volumeName": "redis-ha-backups", "containerPath": "/backups"},
    ]
    assert "redis-ha-backups" not in {v.inputs["name"] for v in dev_volume.of_type(VOLUME)}
    [network] = i["networksAdvanced"]
    assert network["name"] == "redis-ha-net" and network["aliases"] == ["redis-ha-backup"]
    # Its /metrics on the host's loopback, after the two exporters' ports.
    assert i["ports"] == [{"internal": 9122, "external": 19123, "ip": "127.0.0.1"}]
    assert "/opt/redis-ha/backup/__main__.py" in {u["file"] for u in i["uploads"]}
    # Its config and secret files come from its writer, 0600 and the worker's.
    writer = next(c for c in dev_volume.of_type(CONTAINER) if c.inputs["name"] == "redis-ha-backup-secrets")
    assert writer.urn in worker.dependencies
    files = {u["file"].replace("/run/redis-ha/incoming/", "/etc/redis-ha/"): u for u in writer.inputs["uploads"]}
    config = json.loads(files["/etc/redis-ha/backup.json"]["content"])
    assert config["topology"] == "sentinel"
    assert config["target"] == {"kind": "directory", "path": "/backups/redis-ha"}
    assert config["backupUser"]["user"] == "backup"
    assert [s[0] for s in config["sentinels"]] == [f"redis-ha-sentinel-{n}" for n in (1, 2, 3)]
    # Secret files: the backup user's and sentinel-client's passwords, nothing else (no admin).
    delivered = sorted(f for f in files if not files[f].get("executable"))
    assert delivered == [
        "/etc/redis-ha/backup.json",
        "/etc/redis-ha/backup.password",
        "/etc/redis-ha/secrets.version",
        "/etc/redis-ha/sentinel-client.password",
    ]
    for f in delivered:
        assert is_secret(writer.wire["uploads"][list(files).index(f)]["content"]), f
        assert files[f]["permissions"] == "0600" and "owner" not in files[f], f
    # the passwords: the backup user's and sentinel-client's, nothing else (no admin)
    passwords = {files[f]["content"] for f in delivered if f.endswith(".password")}
    generated = dev_volume.passwords
    assert passwords == {generated["redis-ha-credentials-backup"], generated["redis-ha-credentials-sentinel-client"]}
    assert "REDIS_HA_WRITER_OWNER=999\n" in files["/etc/redis-ha/node.env"]["content"]
    # Started after every node it backs up.
    depends = set(worker.dependencies)
    nodes = [
        c.urn
        for c in dev_volume.of_type(CONTAINER)
        if {"label": "redis-ha.kind", "value": "redis"} in c.inputs["labels"]
        or {"label": "redis-ha.kind", "value": "sentinel"} in c.inputs["labels"]
    ]
    assert set(nodes) <= depends


def test_no_password_outside_a_secret(dev_volume: ProgramRun, prod_s3: ProgramRun) -> None:
    for run in (dev_volume, prod_s3):
        secrets = set(run.passwords.values()) | {S3["backupS3AccessKeyId"], S3["backupS3SecretAccessKey"]}
        for r in run.resources:
            plain = " ".join(plain_strings(r.wire))
            assert not [s for s in secrets if s in plain], f"{r.type} {r.name}"


def test_outputs_say_where_the_worker_is(dev_volume: ProgramRun) -> None:
    described = dev_volume.outputs["redisHa"]["backup"]
    assert described["testinfraHost"] == "docker://redis-ha-backup"
    assert described["metricsEndpoint"] == "127.0.0.1:19123"
    # Prometheus is told where: a job for the worker, labelled as the rules expect.
    scrape = yaml.safe_load(dev_volume.outputs["prometheusScrapeConfigs"])["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "redis-ha-backup")
    assert job["static_configs"] == [
        {
            "targets": ["127.0.0.1:19123"],
            "labels": {"instance": "redis-ha-backup", "redis_ha_deployment": "redis-ha", "redis_ha_kind": "backup"},
        }
    ]
    assert described["config"] == "/etc/redis-ha/backup.json"
    assert described["target"]["kind"] == "directory"
    assert described["retention"] == 7


def test_kubernetes_cronjob_per_part(prod_s3: ProgramRun) -> None:
    jobs = {j.inputs["metadata"]["name"]: j.inputs for j in prod_s3.of_type(CRONJOB)}
    assert sorted(jobs) == ["redis-ha-backup", "redis-ha-cluster-backup"]
    for name, job in jobs.items():
        spec = job["spec"]
        assert spec["schedule"] == "0 */6 * * *"
        assert spec["concurrencyPolicy"] == "Forbid"
        pod = spec["jobTemplate"]["spec"]["template"]
        assert pod["metadata"]["labels"]["redis-ha-client"] == "true"
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["command"][:2] == ["sh", "-c"]
        assert " take --config /etc/redis-ha/backup.json && " in container["command"][2]
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert "backups" not in volumes  # s3: no claim
        sources = volumes["conf"]["projected"]["sources"]
        assert {"secret", "configMap"} == {k for src in sources for k in src}
        config_map = next(c for c in prod_s3.of_type(CONFIG_MAP) if c.inputs["metadata"]["name"] == name)
        config = json.loads(config_map.inputs["data"][backup_plan.CONFIG_FILE])
        assert config["target"]["kind"] == "s3"
        assert config["target"]["prefix"] == f"redis-ha/{name.removesuffix('-backup')}"
        assert config["target"]["credentialsFile"] == "/etc/redis-ha/s3-credentials.json"
        secret = next(c for c in prod_s3.of_type(SECRET) if c.inputs["metadata"]["name"] == name)
        assert is_secret(secret.wire["stringData"])


def test_kubernetes_volume_target_mounts_the_users_claim() -> None:
    run = _run("prod", backupTarget="volume", backupVolume="redis-backups")
    job = next(j.inputs for j in run.of_type(CRONJOB))
    volumes = {v["name"]: v for v in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "redis-backups"}
    # The claim is the user's: the stack never creates (or deletes) it.
    assert not run.of_type("kubernetes:core/v1:PersistentVolumeClaim")


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"backupTarget": "tape"}, "redis-ha:backupTarget"),
        ({"backupTarget": "s3"}, "redis-ha:backupS3Endpoint"),
        ({"backupTarget": "volume", "backupSchedule": "every day"}, "redis-ha:backupSchedule"),
        ({"backupTarget": "volume", "backupRetention": 0}, "redis-ha:backupRetention"),
        ({"backupSchedule": "0 * * * *"}, "redis-ha:backupTarget"),
        ({**S3, "backupS3SecretAccessKey": "has space in it"}, "redis-ha:backupS3SecretAccessKey"),
    ],
)
def test_bad_backup_settings_register_nothing(config: dict[str, Any], key: str) -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError, match=key) as failure:
        run_program({**stack_config("dev"), **config}, stack="dev", run=run)
    assert run.resources == []
    assert "has space in it" not in str(failure.value)
