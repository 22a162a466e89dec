"""The prod stack keeps its Secrets mutable for the default Kubernetes provider, and the
program warns when they are not (components/program.py, docs/pulumi-engine.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from redis_ha.components import program

ROOT = Path(__file__).resolve().parents[2]


def test_the_prod_stack_makes_secrets_mutable() -> None:
    config = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert config[program.SECRET_MUTABLE_KEY] == "true"


@pytest.mark.parametrize(
    ("config", "env", "backend", "warned"),
    [
        ({}, {}, "kubernetes", True),
        ({program.SECRET_MUTABLE_KEY: "false"}, {}, "kubernetes", True),
        ({program.SECRET_MUTABLE_KEY: "true"}, {}, "kubernetes", False),
        ({program.SECRET_MUTABLE_KEY: "True"}, {}, "kubernetes", False),
        ({}, {program.SECRET_MUTABLE_ENV: "true"}, "kubernetes", False),
        ({}, {}, "docker", False),
    ],
)
def test_a_warning_unless_secrets_are_mutable(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, str], env: dict[str, str], backend: str, warned: bool
) -> None:
    monkeypatch.setattr(program.runtime_config, "get_config", config.get)
    monkeypatch.delenv(program.SECRET_MUTABLE_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    said: list[str] = []
    monkeypatch.setattr(program.pulumi.log, "warn", said.append)
    program.warn_unless_secrets_mutable(backend)
    assert bool(said) == warned, said
    if warned:
        assert "kubernetes:enableSecretMutable" in said[0] and "REPLACE" in said[0]
