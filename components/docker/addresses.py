"""Fixed addresses on the Docker backend, and every node's name in every container's
/etc/hosts. Pure; nothing here creates a resource.

Why: Docker's embedded DNS drops a container's name while the container is stopped or
disconnected, and forwards questions about names it does not know to the host's
resolvers. Sentinel resolves names inside its event loop (each INFO of a replica names
its master); with a slow or unreachable upstream resolver every lookup of a stopped
master's name blocked a Sentinel for seconds, it entered TILT and never failed over
(docs/partitions.md#names-on-docker). Read from /etc/hosts, a node's name gives its
address at once whether the node is up, stopped or cut off, as on a real network, and
no lookup of a node's name leaves the container.

Each part's network gets a subnet of the stack's block (`dockerSubnet`, by default a
block of DEFAULT_POOL picked by the deployment's name). The lower half of a subnet holds
the gateway and one fixed address per slot; the upper half is the range Docker hands out
to everything else (secrets writers, one-shot steps, containers users attach), so
nothing else can take a stopped node's address.

A slot is a name the part can ever have: every node the settings' limits allow for each
of its groups (settings.MAX_*), its exporters and its backup worker. So adding a
replica, a Sentinel or a shard, or turning the exporter or backups on, changes neither
the subnet nor any container's address or hosts entries (inputs that would replace
every running container). Names without a container point at an unused address.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis_ha.components.backup_plan import backup_name
from redis_ha.components.docker.layout import DockerNaming
from redis_ha.components.settings import (
    MAX_CLUSTER_SHARDS,
    MAX_REPLICAS,
    MAX_REPLICAS_PER_SHARD,
    MAX_SENTINELS,
    Settings,
)
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.topology import (
    CLUSTER,
    CLUSTER_EXPORTER,
    EXPORTER,
    REDIS,
    SENTINEL,
    SENTINEL_EXPORTER,
    exporter_name,
)

if TYPE_CHECKING:
    from redis_ha.components.plan import Part

# Outside Docker's default address pools (172.17.0.0/16 to 172.31.0.0/16 and
# 192.168.0.0/16), so a network Docker creates by itself never takes it.
DEFAULT_POOL = ipaddress.IPv4Network("172.16.0.0/16")


@dataclass(frozen=True)
class PartAddresses:
    """The network of one part: its subnet and the fixed address of every slot."""

    subnet: ipaddress.IPv4Network
    fixed: dict[str, str]  # name -> IPv4 address

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))

    @property
    def dynamic_range(self) -> str:
        """The upper half: where Docker puts containers without a fixed address."""
        return str(list(self.subnet.subnets(prefixlen_diff=1))[1])

    def hosts(self) -> list[tuple[str, str]]:
        """(name, address) lines for /etc/hosts, in slot order."""
        return list(self.fixed.items())


def slots(settings: Settings, part: Part) -> tuple[str, ...]:
    """Every name the part can ever have, in a fixed order. Container name and hostname
    are the same on Docker (components/docker/layout.py, DockerNaming)."""
    naming = DockerNaming(settings)
    limits = {
        REDIS: MAX_REPLICAS + 1,
        SENTINEL: MAX_SENTINELS,
        CLUSTER: MAX_CLUSTER_SHARDS * (1 + MAX_REPLICAS_PER_SHARD),
    }
    names = [naming.node_name(g.kind, i) for g in part.groups for i in range(1, limits[g.kind] + 1)]
    exporters = (EXPORTER, SENTINEL_EXPORTER) if part.kind == SENTINEL else (CLUSTER_EXPORTER,)
    names += [exporter_name(settings, kind) for kind in exporters]
    names.append(backup_name(part.name))
    return tuple(names)


def _capacity(prefix: int) -> int:
    """Fixed addresses a subnet of `prefix` holds: its lower half without the network
    address and the gateway."""
    return 2 ** (32 - prefix) // 2 - 2


def _part_prefix(needed: int) -> int:
    prefix = 28
    while _capacity(prefix) < needed:
        prefix -= 1
    return prefix


def plan_addresses(settings: Settings, parts: tuple[Part, ...]) -> dict[str, PartAddresses]:
    """Part name -> its addresses. Raises SettingsError when `dockerSubnet` is too small
    for the stack's slots; called before any resource exists."""
    names = [slots(settings, part) for part in parts]
    part_prefix = _part_prefix(max((len(n) for n in names), default=1))
    # Parts share the block in equal subnets (a power of two of them).
    split = max(len(parts) - 1, 0).bit_length()
    block_prefix = part_prefix - split
    if settings.docker_subnet:
        block = ipaddress.IPv4Network(settings.docker_subnet)  # checked by settings_load
        if block.prefixlen > block_prefix:
            raise SettingsError(
                "dockerSubnet",
                settings.docker_subnet,
                f"an IPv4 network of /{block_prefix} or larger: each of the stack's {len(parts)} network(s) "
                f"keeps {max(len(n) for n in names)} fixed addresses in the lower half of its subnet",
            )
    else:
        blocks = list(DEFAULT_POOL.subnets(new_prefix=block_prefix))
        digest = int(hashlib.sha256(settings.name.encode()).hexdigest(), 16)
        block = blocks[digest % len(blocks)]
    planned = {}
    for part, part_names, subnet in zip(parts, names, block.subnets(prefixlen_diff=split), strict=False):
        hosts = subnet.hosts()
        next(hosts)  # the gateway
        planned[part.name] = PartAddresses(subnet, {n: str(next(hosts)) for n in part_names})
    return planned
