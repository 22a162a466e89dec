"""A Pulumi program of its own that deploys its application next to a RedisHA.

The program owns the Docker provider and the network its application runs on; the
RedisHA (a master, two replicas, three Sentinels) takes both: every container it
creates goes through the program's provider, and its Redis nodes and Sentinels join
the program's network, where the application reaches them by hostname. The
application gets the `cache` role's password and the Sentinels' addresses as files
(never environment variables or arguments). docs/library.md walks through it.

    cd examples/app-with-redis && pulumi stack init dev && pulumi up
"""

from pathlib import Path

import pulumi
import pulumi_docker as docker

from redis_ha import RedisHA, RedisHAArgs

HERE = Path(__file__).resolve().parent
IMAGE = "redis:7.2-alpine"  # the application only needs sh and redis-cli

provider = docker.Provider("docker")
network = docker.Network(
    "app-net", name="example-app-net", driver="bridge", opts=pulumi.ResourceOptions(provider=provider)
)

cache = RedisHA(
    "cache",
    RedisHAArgs(
        settings={
            "backend": "docker",
            "name": "example-cache",
            "redisImage": IMAGE,
            # Reached on the program's network only; nothing published on the host.
            "publishPorts": False,
            "maxmemory": "64mb",
            "exporter": False,
        },
        network=network.name,
    ),
    opts=pulumi.ResourceOptions(providers=[provider]),
)


def _secret_file(path: str, content: pulumi.Input[str]) -> docker.ContainerUploadArgs:
    # Readable by the application's user only.
    return docker.ContainerUploadArgs(file=path, content=content, owner="999", group="999", permissions="0400")


redis_env = pulumi.Output.all(cache.sentinel_addresses, cache.master_name).apply(
    lambda values: f'SENTINELS="{" ".join(values[0])}"\nMASTER_NAME="{values[1]}"\n'
)
app = docker.Container(
    "app",
    name="example-app",
    image=IMAGE,
    user="999",
    command=["sh", "/run/app/app.sh"],
    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name)],
    uploads=[
        docker.ContainerUploadArgs(file="/run/app/app.sh", content=(HERE / "app.sh").read_text()),
        docker.ContainerUploadArgs(file="/run/app/redis.env", content=redis_env),
        _secret_file("/run/app/cache-password", cache.role_passwords["cache"]),
        _secret_file("/run/app/sentinel-client-password", cache.sentinel_client_password),
    ],
    restart="unless-stopped",
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[cache]),
)

pulumi.export("app", app.name)
pulumi.export("sentinels", cache.sentinel_addresses)
pulumi.export("masterName", cache.master_name)
pulumi.export("cachePassword", cache.role_passwords["cache"])
