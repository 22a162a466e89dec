"""The Pulumi program of redis-ha: `run()` deploys the stack Pulumi is running.

The only module that reads `pulumi.Config`; everything below takes plain values.
Called by the project's `__main__.py` (what `pulumi up` runs) and, under mocks, by
redis_ha/mocked_program.py (`redis-ha render`, the tests).
"""

import os

import pulumi
import pulumi.runtime.config as runtime_config

from redis_ha.components.program import OBJECT_KEYS, deploy
from redis_ha.components.settings_backup import S3_SECRET_KEYS
from redis_ha.components.settings_base import NAMESPACE, SettingsError
from redis_ha.components.settings_load import load_settings
from redis_ha.components.settings_roles import check_all_passwords, is_password_key


def configured_keys() -> list[str]:
    """Every `redis-ha:*` key set for this stack, so unknown keys can be reported."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    return sorted(k[len(prefix) :] for k in keys if k.startswith(prefix))


# pulumi-kubernetes replaces a Secret whose data changed (delete, then create: same
# name) unless Secrets are mutable for its provider; the config Secret must be updated
# in place (docs/pulumi-engine.md "Secrets must be mutable").
SECRET_MUTABLE_KEY = "kubernetes:enableSecretMutable"
SECRET_MUTABLE_ENV = "PULUMI_K8S_ENABLE_SECRET_MUTABLE"


def secrets_mutable() -> bool:
    """Whether the default Kubernetes provider updates Secrets in place."""
    value = runtime_config.get_config(SECRET_MUTABLE_KEY) or os.environ.get(SECRET_MUTABLE_ENV) or ""
    return value.strip().lower() == "true"


def warn_unless_secrets_mutable(backend: str) -> None:
    if backend == "kubernetes" and not secrets_mutable():
        pulumi.log.warn(
            f'{SECRET_MUTABLE_KEY} is not "true": the provider will REPLACE the config Secret (delete, then '
            "create) on every change of it, instead of updating it in place as a password rotation needs; "
            f"set `pulumi config set {SECRET_MUTABLE_KEY} true` (Pulumi.prod.yaml has it)"
        )


def run() -> None:
    """Read the stack's `redis-ha:*` config, deploy, export the outputs."""
    config = pulumi.Config(NAMESPACE)
    raw = {}
    plain_passwords = {}
    for key in configured_keys():
        if is_password_key(key) or key in S3_SECRET_KEYS:
            # The plain value, to be validated; get_config, unlike Config.get, does not
            # warn about reading a secret. It is wrapped as a secret before anything uses it.
            plain_passwords[key] = runtime_config.get_config(f"{NAMESPACE}:{key}") or ""
        elif key in OBJECT_KEYS:
            raw[key] = config.get_object(key)
        else:
            raw[key] = config.get(key)

    try:
        # Which password keys exist depends on the roles; every password is checked
        # before deploy registers the first resource.
        s3_keys = {k: v for k, v in plain_passwords.items() if k in S3_SECRET_KEYS}
        user_passwords = {k: v for k, v in plain_passwords.items() if k not in S3_SECRET_KEYS}
        settings = load_settings(raw | s3_keys)
        passwords, previous = check_all_passwords(settings, user_passwords)
        warn_unless_secrets_mutable(settings.backend)
        outputs = deploy(
            raw | s3_keys,
            {user: pulumi.Output.secret(value) for user, value in passwords.items()},
            {user: pulumi.Output.secret(value) for user, value in previous.items()},
            {key: pulumi.Output.secret(value) for key, value in s3_keys.items()},
        )
    except SettingsError as error:
        # A clean one-line error, before any resource exists.
        raise pulumi.RunError(str(error)) from None

    for name, value in outputs.items():
        pulumi.export(name, value)
