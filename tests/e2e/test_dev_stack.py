"""The dev stack on the real Docker engine, checked by the post-deploy suite."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import tarfile

import docker
import pytest
from redis_ha.components.outputs import stack_passwords

from tests.support.e2e_stack import Deployment, deploy, verify
from tests.verify.access import Node, Outputs, eventually


def test_verification_suite_passes_on_the_dev_stack(dev_deployment: Deployment) -> None:
    result = verify(dev_deployment.outputs_path)
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("redis-ha-verify: ") and summary.endswith(", 0 do not"), summary
    # 3 Redis nodes, 3 Sentinels and 6 roles, each checked several ways: a run that
    # checked far fewer collected the wrong thing.
    assert int(summary.split()[1]) >= 80, summary


def test_no_password_in_container_definitions(dev_deployment: Deployment, docker_client: docker.DockerClient) -> None:
    passwords = stack_passwords(dev_deployment.outputs).values()
    for name in dev_deployment.applied.containers:
        definition = str(docker_client.api.inspect_container(name)["Config"])
        leaked = [p for p in passwords if p in definition]
        assert not leaked, f"{name}: a password is in the container definition (docker inspect)"


def test_broken_deployment_fails_verification_with_a_clear_message(dev_deployment: Deployment) -> None:
    outputs = Outputs.load(dev_deployment.outputs_path)
    redis = [Node(s, outputs) for s in outputs.nodes("redis")]
    sentinel = Node(outputs.nodes("sentinel")[0], outputs)
    master_name = outputs.deployment["masterName"]
    replica = redis[-1]
    # A replica with a wrong masterauth, and a Sentinel with quorum 4.
    assert replica.cli("admin", "CONFIG", "SET", "masterauth", "wrong-password") == "OK"
    replica.cli("admin", "CLIENT", "KILL", "TYPE", "master")
    assert sentinel.cli("admin", "SENTINEL", "SET", master_name, "quorum", "4") == "OK"
    try:
        result = verify(dev_deployment.outputs_path, "--", "-k", "replica_link or quorum or connected")
        assert result.returncode == 1, result.stdout[-3000:]
        failures = [line for line in result.stdout.splitlines() if line.startswith("  FAIL ")]
        failed = sorted(line.split()[1].rstrip(":") for line in failures)
        # Exactly the broken properties, nothing else.
        assert failed == sorted(
            [
                "test_replication.py::test_master_has_every_replica_connected",
                f"test_replication.py::test_replica_link_is_up[{replica.name}]",
                f"test_sentinel.py::test_sentinel_quorum_is_reachable[{sentinel.name}]",
                f"test_sentinel.py::test_sentinel_quorum_matches_the_stack[{sentinel.name}]",
            ]
        ), failures
        messages = "\n".join(failures)
        assert "master_link_status" in messages and "runs with quorum 4, the stack says 2" in messages, messages
        # No password in what the suite printed.
        assert not [p for p in outputs.passwords.values() if p in result.stdout + result.stderr]
    finally:
        replica.cli("admin", "CONFIG", "SET", "masterauth", outputs.passwords["replica"])
        sentinel.cli("admin", "SENTINEL", "SET", master_name, "quorum", str(outputs.deployment["quorum"]))
    # Repaired (once the replica has reconnected with the right password), the same checks pass again.
    eventually(
        lambda: _assert_link_up(replica),
        timeout=30,
    )
    result = verify(dev_deployment.outputs_path, "--", "-k", "replica_link or quorum or connected")
    assert result.returncode == 0, result.stdout[-3000:]


def _assert_link_up(replica: Node) -> None:
    status = replica.info("admin", "replication").get("master_link_status")
    assert status == "up", f"{replica.name}: link {status}"


def test_failover_drills_pass_on_the_dev_stack(dev_deployment: Deployment) -> None:
    result = verify(dev_deployment.outputs_path, "--destructive", "--", "-m", "destructive")
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    # 8 failover drills (test_failover.py) + 3 application-role drills (test_app_failover.py).
    assert summary == "redis-ha-verify: 11 properties hold, 0 do not", summary
    # After the drills the topology is healthy again: the whole non-destructive suite passes.
    result = verify(dev_deployment.outputs_path)
    assert result.returncode == 0, result.stdout[-4000:]


def test_destroy_removes_every_container_volume_and_network(
    test_images: None, docker_client: docker.DockerClient, tmp_path
) -> None:
    # A name of this run's own: the engine may hold another run's leftovers (CI starts
    # its dockerd where earlier runs' containers, volumes and networks may remain).
    name = f"rhdestroy-{secrets.token_hex(3)}"
    deployment = deploy(name, tmp_path, docker_client, exporter=False)
    label = f"redis-ha.deployment={name}"
    # 3 Redis nodes and 3 Sentinels, each with its (exited) secrets writer
    assert len(docker_client.containers.list(all=True, filters={"label": label})) == 12
    errors = deployment.applier.destroy(deployment.applied)
    assert errors == []
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert docker_client.volumes.list(filters={"label": label}) == []
    assert docker_client.networks.list(filters={"label": label}) == []


# Every process's environment, sampled 20 times over 4 s so that the short-lived ones
# (a probe's redis-cli every 2 s, the start script's) are read too: each gets its
# password on stdin (--askpass), none in its environment.
EVERY_ENVIRON = (
    'for i in $(seq 20); do for p in /proc/[0-9]*; do cat "$p/environ" 2> /dev/null; echo; done; sleep 0.2; done'
)


def test_secrets_only_where_they_belong(dev_deployment: Deployment, docker_client: docker.DockerClient) -> None:
    """No password in a container's environment, process arguments or logs; every
    file that holds one is mode 0600 and owned by the (non-root) user the container
    runs as (only the exited one-shot secrets writers ran as root)."""
    passwords = [p for p in Outputs.load(dev_deployment.outputs_path).passwords.values() if p]
    assert len(passwords) >= 5
    checked_files = 0
    for r in dev_deployment.run.of_type("docker:index/container:Container"):
        name = r.inputs["name"]
        container = docker_client.containers.get(name)
        if container.status != "running":
            continue  # the one-shot steps have exited
        user = r.inputs.get("user")
        assert user and user != "0", f"{name} runs as root"
        # docker top runs ps on the host, which needs the pid column to match processes.
        processes = container.top(ps_args="-eo pid,uid,args")["Processes"]
        for _, uid, args in processes:
            assert uid == user, f"{name}: {args} runs as uid {uid}, not {user}"
            assert not [p for p in passwords if p in args], f"{name}: a password in the arguments of {args.split()[0]}"
        environ = container.exec_run(["sh", "-c", EVERY_ENVIRON], user=user).output
        environ = environ.decode(errors="replace")
        # (redis-server reuses its environment's memory for its process title: zeros there)
        assert environ.strip(), f"{name}: no process environment read"
        assert not [p for p in passwords if p in environ], f"{name}: a password in a process environment"
        logs = container.logs().decode(errors="replace")
        assert not [p for p in passwords if p in logs], f"{name}: a password in the logs"
        for upload, wire in zip(r.inputs.get("uploads", []), r.wire.get("uploads", []), strict=True):
            secret = isinstance(wire["content"], dict)
            if not secret:
                continue
            result = container.exec_run(["stat", "-c", "%a %u", upload["file"]], user=user)
            assert result.exit_code == 0, result.output
            assert result.output.decode().split() == ["600", user], f"{name}:{upload['file']}: {result.output!r}"
            checked_files += 1
        # The secret files a node reads from its secrets volume (written by its writer,
        # docs/redis-notes.md#rotating-passwords) and, on a Redis node, the copies its
        # start script keeps next to redis.conf.
        kind = {item["label"]: item["value"] for item in r.inputs["labels"]}.get("redis-ha.kind")
        if kind in ("exporter", "sentinel-exporter"):
            # Its password file, from its writer's volume (components/docker/secrets.py).
            result = container.exec_run(["sh", "-c", "stat -c '%a %u %n' /etc/redis-ha/*"], user=user)
            assert result.exit_code == 0, result.output
            for line in result.output.decode().splitlines():
                assert line.split()[:2] == ["600", user], f"{name}: {line}"
                checked_files += 1
        if kind in ("redis", "sentinel"):
            paths = "/run/redis-ha/config/*"
            if kind == "redis":
                paths += " /data/redis.conf /data/users.acl /data/admin.password /data/sentinel-client.password"
            result = container.exec_run(["sh", "-c", f"stat -c '%a %u %n' {paths}"], user=user)
            assert result.exit_code == 0, result.output
            for line in result.output.decode().splitlines():
                assert line.split()[:2] == ["600", user], f"{name}: {line}"
                checked_files += 1
    # Redis nodes: 5 delivered files, the applied version and 4 copies; Sentinels: 4
    # delivered and the applied version; each exporter: its password file and version.
    assert checked_files >= 3 * 10 + 3 * 5 + 2 * 2


def _archived(client: docker.DockerClient, container: str, path: str) -> tarfile.TarInfo:
    """A file's owner and mode as Docker reports them (no shell needed in the container)."""
    stream, _ = client.api.get_archive(container, path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        return archive.getmembers()[0]


def test_secret_files_are_the_readers_own_and_0600(
    dev_deployment: Deployment, docker_client: docker.DockerClient
) -> None:
    """No upload sets an owner (a host without uid 999/59000 would refuse it, below);
    the secrets writers hand every file to the user that reads it."""
    name = dev_deployment.name
    checks = {
        f"{name}-redis-1": ("/run/redis-ha/config", ("users.acl", "admin.password", "redis.conf"), 999),
        f"{name}-sentinel-1": ("/run/redis-ha/config", ("sentinel.conf",), 999),
        f"{name}-exporter": ("/etc/redis-ha", ("exporter-passwords.json",), 59000),
    }
    for container, (directory, files, uid) in checks.items():
        info = _archived(docker_client, container, directory)
        assert (info.uid, info.mode & 0o777) == (uid, 0o700), (container, directory, info.uid, oct(info.mode))
        for file_name in files:
            info = _archived(docker_client, container, f"{directory}/{file_name}")
            assert (info.uid, info.gid, info.mode & 0o777) == (uid, uid, 0o600), (container, file_name)


def test_an_upload_with_an_owner_fails_here_as_with_the_provider(
    dev_deployment: Deployment, docker_client: docker.DockerClient
) -> None:
    """The applier uploads as pulumi-docker does (copyUIDGID when an owner is set), and
    this host has no passwd entry for 999: such an upload is refused, so the program's
    uploads (none with an owner) are what keeps the deployment working here."""
    if subprocess.run(["getent", "passwd", "999"], capture_output=True).returncode == 0:
        pytest.skip("this host has a passwd entry for uid 999: Docker resolves it, nothing to refuse")
    from tests.support.applier import DockerApplier, _tar

    name = f"redis-ha-owner-probe-{os.getpid()}"
    image = docker_client.containers.get(f"{dev_deployment.name}-redis-1").attrs["Config"]["Image"]
    container = docker_client.containers.create(image, ["true"], name=name, user="999")
    try:
        applier = DockerApplier(docker_client)
        with pytest.raises(docker.errors.APIError, match="unable to find entry"):
            applier._upload(container.id, _tar("/tmp/x", "x", False, "999", "999", "0600"), True)
        applier._upload(container.id, _tar("/tmp/x", "x", False, "", "", "0600"), False)
        info = _archived(docker_client, name, "/tmp/x")
        assert (info.uid, info.mode & 0o777) == (0, 0o600)
    finally:
        container.remove(force=True)
