"""Passwords for every user: configured Pulumi secrets, else pulumi_random.

Shared by both backends. The passwords exist only as secret Outputs; ACL files get
their sha256, config files that must hold a password are secret uploads/Secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_random as random
from redis_ha.components.security import previous_of


@dataclass(frozen=True)
class CredentialsArgs:
    users: tuple[str, ...]
    # user -> password given in the stack config (already a secret Output)
    configured: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    length: int = 32
    # user -> the old configured password, while its rotation is in phase 1
    previous: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    # the generation of the generated passwords, and the one kept during phase 1
    generation: int = 0
    previous_generation: int | None = None


def generated_name(name: str, user: str, generation: int) -> str:
    """The RandomPassword of one generation; generation 0 keeps the original name."""
    return f"{name}-{user}" if generation == 0 else f"{name}-{user}-gen{generation}"


class Credentials(pulumi.ComponentResource):
    """One secret password per user; during phase 1 of a rotation also the previous one.

    A generated password of generation N is the RandomPassword `generated_name(N)`: a
    new generation is a new resource, so the engine keeps generation N-1 (its state is
    the old password) for as long as the program still declares it, i.e. while
    previousPasswordGeneration is N-1, and deletes it in phase 2."""

    passwords: dict[str, pulumi.Output[str]]
    """user name -> secret password"""
    previous: dict[str, pulumi.Output[str]]
    """user name -> its previous secret password, for the users in phase 1 of a rotation"""

    def __init__(self, name: str, args: CredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("redis-ha:index:Credentials", name, None, opts)
        self.passwords = {}
        self.previous = {}

        def generate(user: str, generation: int) -> pulumi.Output[str]:
            # Letters and digits only: the values go into redis.conf/sentinel.conf
            # lines and redis-cli arguments, where quoting rules differ.
            generated = random.RandomPassword(
                generated_name(name, user, generation),
                length=args.length,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            return pulumi.Output.secret(generated.result)

        for user in args.users:
            if user in args.configured:
                self.passwords[user] = pulumi.Output.secret(args.configured[user])
                if user in args.previous:
                    self.previous[user] = pulumi.Output.secret(args.previous[user])
                continue
            self.passwords[user] = generate(user, args.generation)
            if args.previous_generation is not None:
                self.previous[user] = generate(user, args.previous_generation)
        self.register_outputs({})

    def for_backends(self) -> dict[str, pulumi.Output[str]]:
        """What the backends render from: every current password, and each previous one
        under `previous_of(user)`."""
        return {**self.passwords, **{previous_of(u): p for u, p in self.previous.items()}}


def with_passwords(
    passwords: Mapping[str, pulumi.Output[str]], render: Callable[[dict[str, str]], Any]
) -> pulumi.Output[Any]:
    """`render({user: password})` inside an apply, as a secret Output: how every
    backend turns the secret passwords into rendered files."""
    names = sorted(passwords)
    return pulumi.Output.secret(
        pulumi.Output.all(*(passwords[n] for n in names)).apply(
            lambda values: render(dict(zip(names, values, strict=True)))
        )
    )
