"""The Pulumi program of redis-ha: `run()` deploys the stack Pulumi is running.

The only module that reads `pulumi.Config`; everything below takes plain values.
Called by the project's `__main__.py` (what `pulumi up` runs) and, under mocks, by
redis_ha/mocked_program.py (`redis-ha render`, the tests).
"""

import pulumi
import pulumi.runtime.config as runtime_config

from redis_ha.components.program import OBJECT_KEYS, deploy, warn_unless_secrets_mutable
from redis_ha.components.settings_backup import S3_SECRET_KEYS
from redis_ha.components.settings_base import NAMESPACE, SettingsError
from redis_ha.components.settings_load import load_settings
from redis_ha.components.settings_roles import check_all_passwords, is_password_key


def configured_keys() -> list[str]:
    """Every `redis-ha:*` key set for this stack, so unknown keys can be reported."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    return sorted(k[len(prefix) :] for k in keys if k.startswith(prefix))


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
