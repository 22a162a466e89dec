"""What every settings module shares: the config namespace, the error and its redaction.

A module of its own, imported by every settings module but settings.py (the dataclass,
which imports nothing of the package).
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "redis-ha"


class _Redacted:
    """Stands in for a secret value in an error: its repr is all a message shows."""

    def __repr__(self) -> str:
        return "<secret>"


# Passed as the value of a SettingsError about a password, so that neither the message
# nor the exception's attributes ever hold the password.
REDACTED: Any = _Redacted()


class SettingsError(ValueError):
    """A configuration value that cannot be deployed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key = f"{NAMESPACE}:{key}"
        self.value = value
        self.allowed = allowed
        super().__init__(f"{self.key}: invalid value {value!r}; allowed: {allowed}")


def read_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SettingsError(key, value, "true or false")
