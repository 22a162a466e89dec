"""The dev backend: the deployment as Docker containers (pulumi-docker)."""
