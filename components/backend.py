"""What the two backends (components/docker, components/kubernetes) share: the typed
protocol each deployment module implements, where a program places the components, the
arguments of one plan part's component and the content digest both put in names and
labels. components/program.py looks a backend up by name in a plain mapping."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
from redis_ha.components.plan import Part
from redis_ha.components.settings import Settings


def digest(data: Any) -> str:
    """sha256 of `data` as canonical JSON: a change of any value changes it."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# user -> secret password (components/credentials.py), as the backends receive them
Passwords = Mapping[str, pulumi.Output[str]]
# a backend's stack-output description of each part it deployed (no secrets)
Descriptions = list[pulumi.Output[dict[str, Any]]]


@dataclass(frozen=True)
class PartArgs:
    """The inputs of one plan part's component, on either backend."""

    settings: Settings
    part: Part
    passwords: Passwords
    # Kubernetes only: the namespace a part deployed before this one created; None creates it
    namespace: pulumi.Input[str] | None = None
    # Kubernetes only: deploy the alert rules and the dashboard with this part (once per stack)
    monitoring_files: bool = True
    # Kubernetes only: make the applications' Secret of every role (once per stack: the
    # Sentinel group's when there is one, else the cluster's)
    role_secrets: bool = True

    # Docker only: a network of the program's own the Redis nodes and Sentinels join
    # too (by their hostnames), besides the part's private network
    network: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class Placement:
    """Where a program puts the components: `opts` become those of every component (a
    parent, whose provider flows down to every resource, or an explicit `providers`);
    `namespace` is an existing Kubernetes namespace to deploy into (None: the
    deployment creates `settings.namespace`); `network` a Docker network of the
    program's own, which the nodes join too."""

    opts: pulumi.ResourceOptions | None = None
    namespace: str | None = None
    network: pulumi.Input[str] | None = None


class Backend(Protocol):
    """A deployment module (components/docker/deployment.py,
    components/kubernetes/deployment.py)."""

    def deploy(
        self, settings: Settings, parts: tuple[Part, ...], passwords: Passwords, placement: Placement = ...
    ) -> Descriptions:
        """One component per part; returns their stack-output descriptions."""
        ...

    def check(self, settings: Settings, parts: tuple[Part, ...]) -> None:
        """Raises SettingsError for settings this backend cannot deploy; called before
        the program registers any resource."""
        ...


# The stack program's placement: no parent, the namespace the deployment creates, no
# network but the parts' own.
DEFAULT_PLACEMENT = Placement()
