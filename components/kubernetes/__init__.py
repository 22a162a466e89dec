"""The prod backend: the deployment as Kubernetes resources (pulumi-kubernetes)."""

from components.kubernetes.redis_cluster import RedisCluster, RedisClusterArgs
from components.kubernetes.redis_ha import RedisHA, RedisHAArgs

__all__ = ["RedisCluster", "RedisClusterArgs", "RedisHA", "RedisHAArgs"]
