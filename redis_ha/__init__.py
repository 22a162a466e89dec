"""The redis-ha toolkit around the Pulumi program: the stack entry point (stack.py),
the `redis-ha` CLI, and the mock harness and file review it uses. Not Pulumi
components: those live in components/."""
