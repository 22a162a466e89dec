"""The prod backend: the deployment as Kubernetes resources (pulumi-kubernetes)."""
