"""redis-ha: Redis 7 high availability on Docker and Kubernetes with Pulumi.

For a Pulumi program of your own (docs/library.md):

    from redis_ha import RedisHA, RedisHAArgs, RedisCluster, RedisClusterArgs

The rest of the package: the stack program (stack.py), the `redis-ha` CLI, its mock
harness and file review, the backup worker (backup/) and the Pulumi components
(components/, installed as redis_ha.components). The components are imported on first
use, so the CLI and the backup worker do not load Pulumi's providers to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis_ha.components.library import RedisCluster, RedisClusterArgs, RedisHA, RedisHAArgs

__all__ = ["RedisCluster", "RedisClusterArgs", "RedisHA", "RedisHAArgs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from redis_ha.components import library

        return getattr(library, name)
    raise AttributeError(f"module 'redis_ha' has no attribute {name!r}")
