"""The dev backend: the deployment as Docker containers (pulumi-docker)."""

from components.docker.redis_ha import RedisHA, RedisHAArgs

__all__ = ["RedisHA", "RedisHAArgs"]
