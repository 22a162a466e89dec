"""The dev backend: the deployment as Docker containers (pulumi-docker)."""

from components.docker.redis_cluster import RedisCluster, RedisClusterArgs
from components.docker.redis_ha import RedisHA, RedisHAArgs

__all__ = ["RedisCluster", "RedisClusterArgs", "RedisHA", "RedisHAArgs"]
