"""The environment a real-engine test runs the Pulumi CLI in (tests/pulumi_engine)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def engine_env(tmp: Path, path: list[str]) -> tuple[dict[str, str], Path]:
    """A private PULUMI_HOME, a local file backend and a passphrase file, all under
    `tmp`; the CLI never downloads a plugin. Returns the env and the secrets dir (0700)."""
    secret_dir = tmp / "secrets"
    secret_dir.mkdir(mode=0o700)
    passphrase = secret_dir / "passphrase"
    passphrase.write_text(secrets.token_urlsafe(32))
    (tmp / "backend").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBECONFIG", "VIRTUAL_ENV"))}
    env.update(
        PATH=os.pathsep.join(path),
        PULUMI_HOME=str(tmp / "pulumi-home"),
        PULUMI_BACKEND_URL=f"file://{tmp / 'backend'}",
        PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase),
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PULUMI_DIY_BACKEND_NO_LEGACY_WARNING="true",
    )
    return env, secret_dir
