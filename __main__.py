"""redis-ha: a Redis 7 high-availability topology, deployed and then verified.

What `pulumi up` runs; the program itself is redis_ha/stack.py, the only module that
reads `pulumi.Config`.
"""

from redis_ha.stack import run

run()
