"""The self-fence settings (docs/partitions.md): `fence` turns it on (the default) or
off (the baseline of the partition drills); `fenceAfterMilliseconds` is how long a
master that no majority of the Sentinels names keeps taking writes.

The fence must be in place before the Sentinels can have promoted another node: they
start a failover no sooner than `downAfterMilliseconds` after the master stopped
answering them, so fenceAfter plus one check interval (FENCE_INTERVAL_MS) stays below
it. Read by components/settings.py; the
cross-field rule is `check_fence`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis_ha.components.settings_base import SettingsError, read_bool

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis_ha.components.settings import Settings

# A round of questions to the Sentinels starts every 250 ms; its answers count as of its
# start, and a question unanswered after 1 s is dropped (fence.sh's defaults).
FENCE_INTERVAL_MS = 250
FENCE_TIMEOUT_MS = 1000


def _positive_ms(key: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingsError(key, value, "a positive number of milliseconds, below downAfterMilliseconds - 250")
    return value


READERS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "fence": ("fence", read_bool),
    "fenceAfterMilliseconds": ("fence_after_milliseconds", _positive_ms),
}


def check_fence(s: Settings) -> None:
    highest = s.down_after_milliseconds - FENCE_INTERVAL_MS - 1
    if s.fence and not 0 < s.fence_after_milliseconds <= highest:
        raise SettingsError(
            "fenceAfterMilliseconds",
            s.fence_after_milliseconds,
            f"1 to {highest}: below downAfterMilliseconds ({s.down_after_milliseconds}) "
            f"minus one check round ({FENCE_INTERVAL_MS} ms)",
        )
