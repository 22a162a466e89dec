"""Password rotation on real processes: two phases, no restart, nothing breaks.

A master, a replica and three Sentinels (Debian's redis-server/redis-sentinel 7.0 on
127.0.0.1) run under the real start scripts of the dev stack (redis-start.sh and
sentinel-start.sh as rendered for Docker, under dash and under busybox ash, and as
rendered for Kubernetes, where a node's own file is `<pod>.<file>`; the environment
points them at local directories). Each node has a `secrets` directory that stands for what the backend
delivers (the Docker secrets volume, the mounted Kubernetes Secret): the test writes
the node's rendered files there, each by rename and the version last, as the Docker
writer does, for every node at once (as the kubelet would, with no order between
nodes). The scripts must apply them live and in a safe order by themselves.

Phase 1 renders every user's new password with the old one as its previous
(components/security.PREVIOUS); phase 2 the new one alone. Throughout, a sampler reads
the replica's `master_link_status` / `master_link_down_since_seconds` and the
Sentinels' view of the master, and every Sentinel's event channel is recorded.

The nodes, the delivery and the sampler: tests/support/rotation_live.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import connect, wait_until
from tests.support.rotation_live import (
    SHELLS,
    Rotation,
    acl_hashes,
    acl_tokens,
    bare_acl_list,
    logs_in,
    rotation_settings,
    user_passwords,
    users_of,
    watched,
    with_previous,
)


@pytest.fixture(params=[("docker", "dash"), ("docker", "busybox-ash"), ("kubernetes", "busybox-ash")], ids="-".join)
def rotation(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rotation]:
    """The Docker stack's scripts under dash and under busybox ash (the alpine images'
    shell), and the Kubernetes stack's (`<pod>.<file>` in the mounted Secret)."""
    backend, shell_name = request.param
    shell = SHELLS[shell_name]
    assert shutil.which(shell[0]), f"{shell[0]} runs the start scripts"
    settings = rotation_settings()
    deployment = Rotation(tmp_path, settings, user_passwords(settings), shell, backend)
    try:
        deployment.deliver(deployment.passwords)
        for rot in deployment.redis:
            deployment.start(rot)
        wait_until(
            lambda: deployment.client(deployment.replica).info("replication").get("master_link_status") == "up",
            15,
            f"the replica's link\n{deployment.replica.live.log_tail()}",
        )
        for rot in deployment.sentinels:
            deployment.start(rot)
        # Every Sentinel knows the replica and its two peers before anything changes.
        name = settings.master_name

        def settled() -> bool:
            for rot in deployment.sentinels:
                client = deployment.client(rot, "sentinel-client")
                if len(client.execute_command("SENTINEL", "REPLICAS", name)) != 1:
                    return False
                if len(client.execute_command("SENTINEL", "SENTINELS", name)) != 2:
                    return False
            return True

        wait_until(settled, 30, "the Sentinels to know each other and the replica", interval=0.2)
        deployment.wait_applied()
        yield deployment
    finally:
        deployment.stop_all()


def test_both_phases_rotate_every_password_live(rotation: Rotation, tmp_path: Path) -> None:
    settings = rotation.settings
    old = dict(rotation.passwords)
    new = user_passwords(settings)
    pids = {rot.name: rot.live.process.pid for rot in rotation.nodes if rot.live.process is not None}
    server_pids = {rot.name: rotation.client(rot).info("server")["process_id"] for rot in rotation.nodes}

    # Phase 1: both passwords of every user are accepted everywhere, every user of the
    # deployment switches to the new one.
    with watched(rotation, "phase 1"):
        rotation.deliver(with_previous(new, old))
        rotation.wait_applied()
    for rot in rotation.nodes:
        for user in users_of(rot, settings):
            assert logs_in(rot.port, user, old[user]), f"phase 1: {rot.name} refuses the old password of {user}"
            assert logs_in(rot.port, user, new[user]), f"phase 1: {rot.name} refuses the new password of {user}"
    for rot in rotation.redis:
        masterauth = connect(rot.port, "admin", new["admin"]).config_get("masterauth")["masterauth"]
        assert masterauth == new["replica"], f"{rot.name} still replicates with the old password"
    for rot in rotation.sentinels:
        sentinel = connect(rot.port, "admin", new["admin"])
        assert sentinel.execute_command("SENTINEL", "CONFIG", "GET", "sentinel-pass")[1] == new["sentinel"], rot.name
        state = rot.live.conf.read_text()
        assert f"sentinel auth-pass {settings.master_name} {new['sentinel']}\n" in state, rot.name

    # Phase 2: only the new passwords.
    with watched(rotation, "phase 2"):
        rotation.deliver(new)
        rotation.wait_applied()
    for rot in rotation.nodes:
        for user in users_of(rot, settings):
            assert not logs_in(rot.port, user, old[user]), f"phase 2: {rot.name} still takes the old password of {user}"
            assert logs_in(rot.port, user, new[user]), f"phase 2: {rot.name} refuses the new password of {user}"

    # No process was restarted: the same start scripts, the same servers.
    assert {rot.name: rot.live.process.pid for rot in rotation.nodes if rot.live.process is not None} == pids
    assert {rot.name: rotation.client(rot).info("server")["process_id"] for rot in rotation.nodes} == server_pids

    # Restart-safe: what a restart loads is the live state.
    for rot in rotation.redis:
        on_disk = (rot.live.directory / "users.acl").read_text()
        assert on_disk == (rot.secrets / "users.acl").read_text(), rot.name
        live = acl_tokens(rotation.client(rot).execute_command("ACL", "LIST"))
        assert bare_acl_list(tmp_path / f"bare-{rot.name}", on_disk, new["admin"]) == live, rot.name
        assert (rot.live.directory / "admin.password").read_text() == new["admin"]
    for rot in rotation.sentinels:
        seed = (rot.secrets / rotation.delivered_name(rot, "sentinel.conf")).read_text().splitlines()
        live = rotation.client(rot).execute_command("ACL", "LIST")
        assert acl_hashes(live) == acl_hashes(seed), rot.name

    # A restarted replica comes back on the new passwords alone (masterauth, the
    # Sentinels' client password), with its link up.
    replica = rotation.replica
    replica.live.stop()
    rotation.start(replica)
    wait_until(
        lambda: rotation.client(replica).info("replication").get("master_link_status") == "up",
        20,
        f"the restarted replica's link\n{replica.live.log_tail()}",
    )


def test_a_sentinel_keeps_the_old_auth_pass_while_a_redis_node_refuses_the_new_one(rotation: Rotation) -> None:
    """The order is the scripts' own: with the new passwords delivered to the Sentinels
    only, they may not switch to a password the Redis nodes do not accept yet."""
    settings = rotation.settings
    old = dict(rotation.passwords)
    new = user_passwords(settings)
    phase1 = with_previous(new, old)
    with watched(rotation, "Sentinels first"):
        for rot in rotation.sentinels:
            files = rotation.files(rot, phase1)
            files["secrets.version"] = "sentinels-first"
            for name, content in files.items():
                (rot.secrets / f".{name}.new").write_text(content)
                (rot.secrets / f".{name}.new").replace(rot.secrets / rotation.delivered_name(rot, name))
        time.sleep(3)
        for rot in rotation.sentinels:
            state = rot.live.conf.read_text()
            assert f"sentinel auth-pass {settings.master_name} {old['sentinel']}\n" in state, rot.name
            assert "secrets: the master does not accept the new sentinel password yet" in rot.live.log.read_text()
        # Now the Redis nodes get theirs; the Sentinels follow on their own.
        rotation.passwords = phase1
        for rot in rotation.redis:
            files = rotation.files(rot, phase1)
            files["secrets.version"] = "redis"
            for name, content in files.items():
                (rot.secrets / f".{name}.new").write_text(content)
                (rot.secrets / f".{name}.new").replace(rot.secrets / rotation.delivered_name(rot, name))
        rotation.versions = {r.name: ("redis" if r in rotation.redis else "sentinels-first") for r in rotation.nodes}
        rotation.wait_applied()
    for rot in rotation.sentinels:
        assert f"sentinel auth-pass {settings.master_name} {new['sentinel']}\n" in rot.live.conf.read_text()
