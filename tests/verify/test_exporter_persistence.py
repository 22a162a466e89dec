"""The exporter reports the live topology; the master persists its data."""

from __future__ import annotations

import re
from urllib.parse import urlparse, urlunparse

from .access import Node, Outputs


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"metric {name} missing from the exporter output"
    return float(match.group(1))


def test_exporter_reaches_redis(exporter: Node) -> None:
    text = exporter.sh("wget -q -O - http://127.0.0.1:%s/metrics", str(exporter.port))
    assert _metric(text, "redis_up") == 1


def _sidecar_of(exporter: Node, node: Node, outputs: Outputs) -> Node | None:
    """On Kubernetes the exporter is a sidecar of every pod of its group, watching its own
    pod's node only (its password file has that one entry): the sidecar in `node`'s pod,
    or None for a standalone exporter (Docker), which scrapes any target."""
    url = urlparse(exporter.spec["testinfraHost"])
    if url.scheme != "kubectl":
        return None
    host = urlunparse(url._replace(netloc=node.name))
    return Node({**exporter.spec, "name": f"{node.name}/exporter", "testinfraHost": host}, outputs)


def test_exporter_reports_replicas_of_the_master(
    exporter: Node, master: Node, redis_nodes: list[Node], outputs: Outputs
) -> None:
    sidecar = _sidecar_of(exporter, master, outputs)
    if sidecar is not None:
        # The sidecar beside the live master reports it.
        text = sidecar.sh("wget -q -O - http://127.0.0.1:%s/metrics", str(sidecar.port))
    else:
        # Multi-target scrape: the exporter's /scrape endpoint follows the live master.
        target = f"redis://{master.hostname}:{master.port}"
        text = exporter.sh("wget -q -O - %s", f"http://127.0.0.1:{exporter.port}/scrape?target={target}")
    assert _metric(text, "redis_up") == 1
    assert _metric(text, "redis_connected_slaves") == len(redis_nodes) - 1


def test_master_has_persistence_files(master: Node, outputs: Outputs) -> None:
    settings = outputs.deployment["protectedSettings"]
    data = master.cli("admin", "CONFIG", "GET", "dir").splitlines()[1]
    if settings["appendonly"] == "yes":
        listing = master.sh("ls %s", f"{data}/appendonlydir")
        assert re.search(r"\.manifest$", listing, re.MULTILINE), f"{master.name}: no AOF manifest in {data}"
    if settings["save"]:
        assert master.host.file(f"{data}/dump.rdb").exists, f"{master.name}: no dump.rdb in {data}"
