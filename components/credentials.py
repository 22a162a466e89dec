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


@dataclass(frozen=True)
class CredentialsArgs:
    users: tuple[str, ...]
    # user -> password given in the stack config (already a secret Output)
    configured: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    length: int = 32


class Credentials(pulumi.ComponentResource):
    """One secret password per user."""

    passwords: dict[str, pulumi.Output[str]]
    """user name -> secret password"""

    def __init__(self, name: str, args: CredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("redis-ha:index:Credentials", name, None, opts)
        self.passwords = {}
        for user in args.users:
            if user in args.configured:
                self.passwords[user] = pulumi.Output.secret(args.configured[user])
                continue
            # Letters and digits only: the values go into redis.conf/sentinel.conf
            # lines and redis-cli arguments, where quoting rules differ.
            generated = random.RandomPassword(
                f"{name}-{user}",
                length=args.length,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.passwords[user] = pulumi.Output.secret(generated.result)
        self.register_outputs({})


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
