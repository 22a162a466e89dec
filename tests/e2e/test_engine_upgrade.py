"""Moving a running deployment to another engine version with `pulumi up` (an image
and engine change), under the day-2 drill's two writers (tests/verify/drill.py): from
Redis 7.0 (the e2e image) to Redis 8.0 and to Valkey 8.1. The update rolls the Redis
containers as every image change does (tests/e2e/test_day2.py); a newer replica of an
older master replicates, so no acknowledged write of either writer may be lost, and
afterwards every node runs the new engine and the topology is healthy."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from tests.e2e import day2
from tests.support.engine_images import build, selected_images

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("test_images")]

# REDIS_HA_ENGINES selects the targets as it selects the matrix's rows (CI: the default
# engine's; docs/engines.md#ci).
LEGACY_IMAGE = "redis-ha-test/redis:7.0"  # tests/images/build.sh, Debian bookworm's redis
TARGETS = [i for i in selected_images() if i.id in ("redis-8.0.6", "valkey-8.1")]


@pytest.mark.parametrize("target", TARGETS, ids=[i.id for i in TARGETS])
def test_engine_upgrade_from_redis_7_0_loses_no_acknowledged_write(
    target, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    build(target.tag)
    # The starting point is Redis 7.0 whatever the e2e's default image is.
    source = {"redisImage": LEGACY_IMAGE, "engine": "redis", "engineVersion": "7.0"}
    with day2.deployed(docker_client, tmp_path, prefix="rhup", **source) as stack:
        stack.healthy()
        report, actions = day2.drilled(stack, lambda: stack.update(**target.settings()))
        print(f"upgrade to {target.id}: {json.dumps(report, sort_keys=True)}")
        assert report["wait"]["lost"] == 0 and report["plain"]["lost"] == 0, report
        for kind in ("wait", "plain"):
            assert report[kind]["acknowledged_after_operation"] >= 50, report
        state = stack.healthy()
        assert len(state.replicas) == 2
        for node in stack.nodes("redis"):
            info = node.info("admin", "server")
            running = info.get("valkey_version") if target.engine == "valkey" else info.get("redis_version")
            assert running and running.startswith(target.version + "."), f"{node.name}: {info}"
