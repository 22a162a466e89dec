"""The prod backend: the deployment as Kubernetes resources (pulumi-kubernetes)."""

from components.kubernetes.redis_ha import RedisHA, RedisHAArgs

__all__ = ["RedisHA", "RedisHAArgs"]
