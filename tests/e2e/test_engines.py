"""The engine matrix (docs/engines.md): the dev stack deployed on each engine image of
tests/images/engines.txt (Redis 8.0, Valkey 8.0, 8.1, 9.1; Redis 7.0 is the full e2e's),
each checked against its real servers:

- the post-deploy suite: replication, Sentinel, security and the least-privilege sweep
  (ACL DRYRUN over every command that engine's COMMAND table lists);
- a Sentinel failover drill and the planned switchover, 0 acknowledged writes lost;
- the backup reader on the RDB file that engine writes (BGSAVE on the master): every
  structure of tests/support/dataset.py plus the encodings of that engine (listpack
  sets, hash field expiry), walked with its CRC and restored key by key (RESTORE of the
  payloads the reader builds), compared with what was written.

`REDIS_HA_ENGINES=valkey-9.1,redis-8.0.6` narrows the matrix (ids as in the test names);
unset or `all`: every row. tests/run.sh runs the default engine's row only (docs/engines.md#ci).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from redis_ha.components import engines

from redis_ha.backup import rdb
from tests.e2e.day2 import Stack, deployed
from tests.support import dataset
from tests.support.e2e_nodes import admin as _admin
from tests.support.e2e_nodes import master_spec as _master_spec
from tests.support.e2e_stack import verify
from tests.support.engine_images import EngineImage, build, matrix_params, selected_images

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("test_images")]

IMAGES = matrix_params(selected_images())


@pytest.fixture(scope="module", params=IMAGES)
def engine_stack(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EngineImage, Stack]]:
    image: EngineImage = request.param
    build(image.tag)
    directory = tmp_path_factory.mktemp(image.id)
    with deployed(docker_client, directory, prefix="rheng", **image.settings()) as stack:
        stack.healthy()
        yield image, stack


def test_the_deployed_server_is_that_engine_version(engine_stack: tuple[EngineImage, Stack]) -> None:
    image, stack = engine_stack
    for node in stack.nodes("redis"):
        info = node.info("admin", "server")
        # Valkey answers redis_version 7.2.4 (what its clients test) and valkey_version.
        running = info.get("valkey_version") if image.engine == "valkey" else info.get("redis_version")
        assert running and running.startswith(image.version + "."), f"{node.name}: {info}"


def test_verification_suite_passes(engine_stack: tuple[EngineImage, Stack]) -> None:
    result = verify(engine_stack[1].outputs_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.endswith(", 0 do not") and int(summary.split()[1]) >= 80, summary


def test_failover_and_switchover_lose_no_acknowledged_write(engine_stack: tuple[EngineImage, Stack]) -> None:
    selected = "master_stopped_replica_promoted or planned_switchover"
    result = verify(engine_stack[1].outputs_path, "--destructive", "--", "-m", "destructive", "-k", selected)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary == "redis-ha-verify: 2 properties hold, 0 do not", summary


def _engine_encodings(r: redis.Redis, engine: engines.Engine) -> None:
    """What this engine writes beyond the shared dataset."""
    r.sadd("set:listpack", *[f"m-{i}" for i in range(20)])  # listpack from 7.2 / Valkey
    if engine.has("hash-field-expiry"):
        r.hset("hash:ttl:small", mapping={"a": "1", "b": "2", "c": "3"})
        r.hset("hash:ttl:large", mapping={f"f{i}": "v" * 80 for i in range(600)})
        for key in ("hash:ttl:small", "hash:ttl:large"):
            assert r.execute_command("HPEXPIRE", key, 3_600_000, "FIELDS", 2, "a", "f1") is not None


def _field_ttls(r: redis.Redis) -> dict[str, Any]:
    keys = ("hash:ttl:small", "hash:ttl:large")
    return {key: r.execute_command("HPEXPIRETIME", key, "FIELDS", 2, "a", "f1") for key in keys}


def _dump_rdb(stack: Stack, spec: dict[str, Any], client: redis.Redis, directory: Path) -> Path:
    before = client.lastsave()
    client.bgsave()
    deadline = time.monotonic() + 60
    while client.lastsave() == before or client.info("persistence")["rdb_bgsave_in_progress"]:
        assert time.monotonic() < deadline, "BGSAVE did not finish in 60 s"
        time.sleep(0.2)
    folder = client.config_get("dir")["dir"]
    filename = client.config_get("dbfilename")["dbfilename"]
    container = docker.from_env().containers.get(spec["name"])
    stream, _ = container.get_archive(f"{folder}/{filename}")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(filename)
        assert member is not None
        path = directory / f"{spec['name']}.rdb"
        path.write_bytes(member.read())
    return path


def test_backup_reader_walks_and_restores_what_the_engine_writes(
    engine_stack: tuple[EngineImage, Stack], tmp_path: Path
) -> None:
    image, stack = engine_stack
    engine = engines.Engine(image.engine, image.version)
    spec = _master_spec(stack)
    outputs = stack.outputs
    clients = {db: _admin(outputs, spec, db) for db in dataset.DATABASES}
    clients[0].flushall()
    dataset.load(clients.__getitem__)
    _engine_encodings(clients[0], engine)
    expected = dataset.snapshot(clients.__getitem__)
    ttls = _field_ttls(clients[0]) if engine.has("hash-field-expiry") else {}

    path = _dump_rdb(stack, spec, clients[0], tmp_path)
    with path.open("rb") as stream:
        reader = rdb.RdbReader(stream)
        entries = list(reader.entries())
    summary = reader.summary
    assert summary.complete and summary.checksum is not None
    assert summary.rdb_version == engine.rdb_version, f"{image.tag} writes RDB {summary.rdb_version}"
    types = {rdb.TYPE_NAMES.get(e.type, str(e.type)) for e in entries} | {e.type for e in entries}
    assert rdb.SET_LISTPACK in types, f"no listpack-encoded set in {image.tag}'s file: {sorted(map(str, types))}"
    if engine.has("hash-field-expiry"):
        # Redis: listpack-ex (25) / metadata (24); Valkey 9 (VALKEY header): its type 22.
        ttl_types = {rdb.VALKEY_HASH_2} if summary.valkey_format else {rdb.HASH_METADATA, rdb.HASH_LISTPACK_EX}
        assert types & ttl_types, f"no hash with field TTLs: {sorted(map(str, types))}"
    assert len(entries) == len(expected)

    # The round trip: every key back from the reader's payloads (as `redis-ha restore`
    # feeds them), then the same data, TTLs and field TTLs.
    clients[0].flushall()
    for entry in entries:
        ttl = entry.expire_ms or 0
        payload = rdb.dump_payload(entry.type, entry.value, summary.rdb_version)
        clients[entry.db].execute_command("RESTORE", entry.key, ttl, payload, "ABSTTL", "REPLACE")
    assert dataset.differences(expected, dataset.snapshot(clients.__getitem__)) == []
    if ttls:
        assert _field_ttls(clients[0]) == ttls
    for client in clients.values():
        client.close()
