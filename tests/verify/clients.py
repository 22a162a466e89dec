"""Sentinel-aware clients for the verification runner, as applications use them.

The Sentinels announce node hostnames, which resolve only inside the deployment's
network. The runner reaches the nodes through the host endpoints in the stack outputs
instead, so discovered addresses are translated hostname -> host endpoint; everything
else (which node is master, failover handling) is redis-py's own Sentinel logic.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from .access import Outputs


def _endpoint(spec: dict[str, Any]) -> tuple[str, int] | None:
    if not spec.get("hostEndpoint"):
        return None
    host, port = spec["hostEndpoint"].rsplit(":", 1)
    return host, int(port)


class MappedSentinel(Sentinel):
    """redis-py's Sentinel with announced addresses mapped to host endpoints."""

    def __init__(self, outputs: Outputs, **connection_kwargs: Any) -> None:
        self.address_map: dict[tuple[str, int], tuple[str, int]] = {}
        sentinels = []
        for spec in outputs.deployment["nodes"]:
            endpoint = _endpoint(spec)
            if endpoint is None:
                continue
            self.address_map[(spec["host"], int(spec["port"]))] = endpoint
            if spec["kind"] == "sentinel":
                sentinels.append(endpoint)
        if not sentinels:
            pytest.skip("a Sentinel-aware client on the runner needs host endpoints (publishPorts)")
        timeouts: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        super().__init__(
            sentinels,
            sentinel_kwargs={
                "username": "sentinel-client",
                "password": outputs.passwords["sentinel-client"],
                **timeouts,
            },
            **timeouts,
            **connection_kwargs,
        )

    def _map(self, address: tuple[Any, Any]) -> tuple[str, int]:
        host, port = address[0], int(address[1])
        return self.address_map.get((host, port), (host, port))

    def discover_master(self, service_name: str) -> tuple[str, int]:
        """The master as the Sentinel client guidelines (redis.io, "Sentinel client
        spec") have clients find it, and as Jedis, Lettuce, go-redis and ioredis do:
        `SENTINEL GET-MASTER-ADDR-BY-NAME`, first Sentinel that answers. (redis-py's own
        discovery reads `SENTINEL MASTERS`, whose address the Sentinel leading a
        failover changes only once every replica is reconfigured, about a second
        after the promotion that GET-MASTER-ADDR-BY-NAME already reports.)"""
        errors = []
        for position, sentinel in enumerate(self.sentinels):
            try:
                reply = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", service_name)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                errors.append(repr(error))
                continue
            if reply:
                # The Sentinel that answered is asked first next time.
                self.sentinels[0], self.sentinels[position] = sentinel, self.sentinels[0]
                host, port = reply[0], reply[1]
                return self._map((host.decode() if isinstance(host, bytes) else host, int(port)))
        raise MasterNotFoundError(f"No master found for {service_name!r}: {', '.join(errors)}")

    def discover_slaves(self, service_name: str) -> list[tuple[str, int]]:
        return [self._map(a) for a in super().discover_slaves(service_name)]


def master_client(outputs: Outputs, user: str = "admin") -> redis.Redis:
    """A client that always talks to the current master, found through the Sentinels."""
    sentinel = MappedSentinel(outputs, username=user, password=outputs.passwords[user])
    return sentinel.master_for(outputs.deployment["masterName"], retry=None)


def app_client(outputs: Outputs, user: str) -> redis.Redis:
    """A client configured as an application configures one: Sentinel-aware, as the
    application role's user, retrying connection errors with backoff (a connection to a
    demoted master counts as one), which is how it rides out a failover."""
    sentinel = MappedSentinel(outputs, username=user, password=outputs.passwords[user])
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=30)
    return sentinel.master_for(outputs.deployment["masterName"], retry=retry, decode_responses=True)
