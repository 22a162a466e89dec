"""The users of a deployment: the toolkit's own, the application roles and the config
keys of their passwords.

`redis-ha:roles` is read here (AppRole itself is in components/settings.py): every role
is checked for what its ACL line can hold and for grants that the denials every
application role gets (APP_ROLE_DENIALS, appended by components/security.py) would
silently take away again. Plain Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from redis_ha.components.settings import AppRole, Settings
from redis_ha.components.settings_base import REDACTED, SettingsError, read_bool

# Users the toolkit owns; application roles may not take these names.
RESERVED_USERS = (
    "default",
    "admin",
    "replica",
    "sentinel",
    "sentinel-client",
    "exporter",
    "sentinel-exporter",
    "backup",
)
# The toolkit's users that log in (`default` is always off), so each has a password.
SYSTEM_PASSWORD_USERS = tuple(u for u in RESERVED_USERS if u != "default")
PASSWORD_SUFFIX = "Password"

# On Kubernetes each role gets a Secret `<name>-<role>` (components/kubernetes/deployment.py);
# these would take the name of a Secret the deployment has already: a group's config
# (`<name>-redis`, `<name>-cluster`), the cluster's exporter, the TLS pair or the CA.
RESERVED_SECRET_NAMES = ("redis", "cluster", "cluster-exporter", "tls", "ca")

_ROLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
# Key and channel patterns: Redis glob syntax, no whitespace (an ACL line is
# space-separated) and no ACL rule characters at the start.
_PATTERN_RE = re.compile(r"^[^\s~&%+\-#<>][^\s]*$")
_COMMAND_RULE_RE = re.compile(r"^[+-](@[a-z]+|[a-z][a-z-]*(\|[a-z][a-z-]*)?)$")


def password_key(user: str) -> str:
    """The config key of a user's password, camelCase like every Pulumi config key:
    `admin` -> `adminPassword`, `sentinel-client` -> `sentinelClientPassword`,
    `my_app` -> `myAppPassword`."""
    first, *rest = re.split(r"[-_]", user)
    return first + "".join(part[:1].upper() + part[1:] for part in rest) + PASSWORD_SUFFIX


def password_owners(role_names: Iterable[str]) -> dict[str, str]:
    """Password key -> user, for the toolkit's users and the given roles in order.

    Distinct role names can share a key (`my-app` and `my_app`, `sentinel_client` and
    `sentinel-client`); such a role would take over another user's password, so the
    second one is refused, naming its `roles[i].name`."""
    owners = {password_key(u): u for u in SYSTEM_PASSWORD_USERS}
    for i, name in enumerate(role_names):
        key = password_key(name)
        if key in owners:
            raise SettingsError(
                f"roles[{i}].name", name, f"a name whose password key ({key}) is not already that of {owners[key]}"
            )
        owners[key] = name
    return owners


def is_password_key(key: str) -> bool:
    """A user's password key, or the previous password key of a rotation."""
    return key.endswith(PASSWORD_SUFFIX)


# A configured password lands in redis.conf / sentinel.conf lines (masterauth, sentinel
# auth-pass, sentinel-pass), which Redis splits like a shell (sdssplitargs: whitespace
# separates, quotes and backslashes quote and escape), in `>password` rules of anyone
# who sets it by hand (space-separated) and in the applications' redis:// URLs, where
# '@', ':', '/', '%', '#' and '?' are structure. What is literal in all of them, and
# survives CONFIG REWRITE's quoting and the healthcheck's unquoting: letters, digits
# and - _ . ~ + =.
_PASSWORD_RE = re.compile(r"[A-Za-z0-9_.~+=-]{16,512}")
PASSWORD_ALLOWED = (
    "16 to 512 characters: letters A-Z and a-z, digits and - _ . ~ + = "
    "(no spaces, quotes, backslashes, '#' or other punctuation)"
)


def password_keys(settings: Settings) -> dict[str, str]:
    """Password config key -> user, for every user of the deployment."""
    return password_owners(r.name for r in settings.roles)


# The key of a password that is being rotated out: `previousAdminPassword` next to the
# new `adminPassword` (docs/redis-notes.md#rotating-passwords).
PREVIOUS_PREFIX = "previous"


def previous_password_key(user: str) -> str:
    """`admin` -> `previousAdminPassword`: the old password during phase 1 of a rotation."""
    key = password_key(user)
    return PREVIOUS_PREFIX + key[:1].upper() + key[1:]


def _previous_owner(key: str, owners: Mapping[str, str]) -> str | None:
    """The user whose previous password `key` holds, if it is such a key."""
    if key in owners or not key.startswith(PREVIOUS_PREFIX) or len(key) <= len(PREVIOUS_PREFIX):
        return None
    rest = key[len(PREVIOUS_PREFIX) :]
    current = rest[:1].lower() + rest[1:]
    return owners.get(current)


def check_passwords(settings: Settings, values: Mapping[str, str]) -> dict[str, str]:
    """Validate configured passwords (config key -> plain value) and map them to their
    users. An error names the key and never the value. `previous<User>Password` keys
    are checked too (check_rotation) but not returned."""
    return check_all_passwords(settings, values)[0]


def check_all_passwords(settings: Settings, values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(user -> configured password, user -> previous password during a rotation)."""
    owners = password_keys(settings)
    passwords: dict[str, str] = {}
    previous_keys: dict[str, str] = {}
    for key in sorted(values):
        if key not in owners:
            owner = _previous_owner(key, owners)
            if owner is None:
                allowed = sorted(owners) + sorted(previous_password_key(u) for u in owners.values())
                raise SettingsError(key, REDACTED, "the password key of a user: " + ", ".join(allowed))
            previous_keys[owner] = key
        value = values[key]
        if not isinstance(value, str) or not _PASSWORD_RE.fullmatch(value):
            raise SettingsError(key, REDACTED, PASSWORD_ALLOWED)
        if key in owners:
            passwords[owners[key]] = value
    previous = check_rotation(settings, passwords, {u: values[k] for u, k in previous_keys.items()})
    return passwords, previous


def check_rotation(settings: Settings, passwords: Mapping[str, str], previous: Mapping[str, str]) -> dict[str, str]:
    """Phase 1 of a rotation of a configured password: the new one in `<user>Password`,
    the old one in `previous<User>Password` (both accepted until the previous key is
    removed). Generated passwords rotate with passwordGeneration instead."""
    for user in sorted(previous):
        key = previous_password_key(user)
        if settings.topology != "sentinel":
            raise SettingsError(
                key,
                REDACTED,
                f"unset: live rotation is implemented for topology sentinel only (this stack: {settings.topology})",
            )
        if user not in passwords:
            raise SettingsError(
                key,
                REDACTED,
                f"unset, or set together with {password_key(user)} (the new password); "
                "generated passwords rotate with passwordGeneration and previousPasswordGeneration",
            )
        if previous[user] == passwords[user]:
            raise SettingsError(key, REDACTED, f"the old password, different from the new one in {password_key(user)}")
    return dict(previous)


# Server-wide commands outside @dangerous: one application must not be able to flush
# or replace the Lua functions and scripts of another.
_SERVER_WIDE_WRITES = (
    "-function|flush",
    "-function|delete",
    "-function|load",
    "-function|restore",
    "-script|flush",
)

# What every application role loses after all it grants, whatever its commands say
# (refused_grant below refuses role grants these would take away again; components/security.py
# appends them to every application role).
# `~prefix:*` does not limit commands that take no key, hence -@dangerous (FLUSHALL,
# KEYS, CONFIG, DEBUG, CLIENT KILL/PAUSE/LIST, ...), the function/script flushes and
# SCRIPT DEBUG (its SYNC mode blocks the whole server while a script is debugged). Key
# patterns do not filter what a command reports about other keys either: RANDOMKEY names
# a random key of the whole keyspace, CLUSTER GETKEYSINSLOT lists a slot's keys, and
# CLIENT TRACKING ON BCAST sends the name of every key anyone modifies
# (`session:<token>` to the cache user): docs/redis-notes.md#key-listing-commands.
APP_ROLE_DENIALS = (
    "-@dangerous",
    *_SERVER_WIDE_WRITES,
    "-script|debug",
    "-randomkey",
    "-cluster|getkeysinslot",
    "-client|tracking",
)


# --- grants the denials would take away ----------------------------------------------

# What a `-@<category>` denial removes: `ACL CAT dangerous` of Redis 7.0.15, kept for 7.2
# too, whose new commands (CLIENT NO-TOUCH, CLIENT SETINFO, WAITAOF, CLUSTER MYSHARDID)
# are not @dangerous. tests/unit/test_settings_roles.py compares it with the installed
# redis-server and checks every refusal against ACL DRYRUN.
_DANGEROUS = {
    "": "bgrewriteaof bgsave debug failover flushall flushdb info keys lastsave migrate monitor pfdebug pfselftest "
    "psync replconf replicaof restore restore-asking role save shutdown slaveof sort sort_ro swapdb sync",
    "acl": "deluser dryrun getuser list load log save setuser users",
    "client": "kill list no-evict pause unblock unpause",
    "cluster": "addslots addslotsrange bumpepoch count-failure-reports delslots delslotsrange failover flushslots "
    "forget meet replicas replicate reset saveconfig set-config-epoch setslot slaves",
    "config": "get resetstat rewrite set",
    "latency": "doctor graph histogram history latest reset",
    "module": "list load loadex unload",
    "slowlog": "get len reset",
}
CATEGORY_COMMANDS: dict[str, frozenset[str]] = {
    "dangerous": frozenset(
        f"{command}|{sub}" if command else sub for command, subs in _DANGEROUS.items() for sub in subs.split()
    ),
}
# Categories wholly inside another: Redis gives every command flagged ADMIN both @admin
# and @dangerous, so a `-@dangerous` denial takes all of @admin away.
CATEGORIES_WITHIN: dict[str, tuple[str, ...]] = {"dangerous": ("admin",)}

_DENIED_REASON = "denied to every application role (server administration / data destruction)"


def denied_by(denials: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(categories, commands and `command|subcommand`s) that the `-` rules `denials`
    take away entirely."""
    categories: set[str] = set()
    commands: set[str] = set()
    for rule in denials:
        if not rule.startswith("-"):
            continue
        name = rule[1:]
        if name.startswith("@"):
            categories.add(name[1:])
            categories.update(CATEGORIES_WITHIN.get(name[1:], ()))
            commands.update(CATEGORY_COMMANDS.get(name[1:], ()))
        else:
            commands.add(name)
    return frozenset(categories), frozenset(commands)


def app_role_denials() -> tuple[str, ...]:
    """The rules components/security.py appends to every application role's own."""
    return APP_ROLE_DENIALS


def refused_grant(rule: str, denials: Iterable[str]) -> str | None:
    """Why the ACL would not give an application role what the granting `rule` asks
    for once `denials` follow it; None if it would.

    A category the denials remove entirely is refused, and so is +@all; other
    categories (+@write, +@keyspace) are the documented model: they grant what they
    hold minus the denials. A command is refused when the denials take it, or any of
    its subcommands, away."""
    if not rule.startswith("+"):
        return None
    categories, commands = denied_by(denials)
    name = rule[1:]
    if name == "@all":
        return f"{rule} includes commands {_DENIED_REASON}; grant the categories or commands the role needs"
    if name.startswith("@"):
        if name[1:] in categories:
            return f"{rule} is {_DENIED_REASON}; grant a narrower category or command"
        return None
    parent = name.split("|", 1)[0]
    if name in commands or parent in commands:
        return f"{rule} is {_DENIED_REASON}; grant a narrower command"
    lost = sorted(c for c in commands if c.startswith(f"{name}|"))
    if lost:
        return f"{rule} includes {', '.join(lost)}, {_DENIED_REASON}; grant only the subcommands the role needs"
    return None


# SCAN lists the whole keyspace whatever the key patterns, so it is not a command rule
# like the others: a role asks for it with `scan: true` (security.app_role_rules grants
# or denies it after every other rule; docs/redis-notes.md#key-listing-commands).
SCAN_GRANTS = ("+scan",)
SCAN_REASON = "not a command rule: SCAN lists every key whatever the key patterns; set the role's `scan: true`"


# --- reading redis-ha:roles ----------------------------------------------------------

_ROLE_FIELDS = ("name", "keys", "channels", "commands", "broker", "description", "scan")


def _str_list(key: str, value: Any, item_re: re.Pattern[str], allowed: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SettingsError(key, value, f"a list of {allowed}")
    for item in value:
        if not item_re.match(item):
            raise SettingsError(key, item, allowed)
    return tuple(value)


def _commands(key: str, value: Any) -> tuple[str, ...]:
    commands = _str_list(
        key, value, _COMMAND_RULE_RE, "ACL command rules such as +@read, -@write, +get, +client|setname"
    )
    if not commands or not any(c.startswith("+") for c in commands):
        raise SettingsError(key, list(commands), "at least one granting rule such as +@read")
    denials = app_role_denials()
    for rule in commands:
        reason = refused_grant(rule, denials)
        if reason is not None:
            raise SettingsError(key, rule, f"{reason}, or use the admin user")
        if rule in SCAN_GRANTS:
            raise SettingsError(key, rule, SCAN_REASON)
    return commands


def _role(where: str, raw: Any, earlier: list[AppRole]) -> AppRole:
    if not isinstance(raw, Mapping):
        raise SettingsError(where, raw, "an object with name, keys, channels, commands, broker")
    unknown = sorted(set(raw) - set(_ROLE_FIELDS))
    if unknown:
        raise SettingsError(f"{where}.{unknown[0]}", raw[unknown[0]], "one of the fields " + ", ".join(_ROLE_FIELDS))
    name = raw.get("name")
    if not isinstance(name, str) or not _ROLE_NAME_RE.match(name):
        raise SettingsError(
            f"{where}.name", name, "a user name of lowercase letters, digits, '_' or '-', starting with a letter"
        )
    if name in RESERVED_USERS:
        raise SettingsError(
            f"{where}.name", name, "any name except the toolkit's own users " + ", ".join(RESERVED_USERS)
        )
    if name in RESERVED_SECRET_NAMES:
        raise SettingsError(
            f"{where}.name",
            name,
            "a name whose Kubernetes Secret (<name>-<role>) is not one the deployment has: not "
            + ", ".join(RESERVED_SECRET_NAMES),
        )
    if name in (r.name for r in earlier):
        raise SettingsError(f"{where}.name", name, "a name no other role has")
    keys = _str_list(f"{where}.keys", raw.get("keys"), _PATTERN_RE, "key patterns without spaces (e.g. cache:*)")
    channels = _str_list(
        f"{where}.channels", raw.get("channels"), _PATTERN_RE, "channel patterns without spaces (e.g. filing:*)"
    )
    commands = _commands(f"{where}.commands", raw.get("commands"))
    if not keys and not channels:
        raise SettingsError(f"{where}.keys", [], "at least one key pattern or channel pattern for the role")
    broker = read_bool(f"{where}.broker", raw.get("broker", False))
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SettingsError(f"{where}.description", description, "a string")
    scan = read_bool(f"{where}.scan", raw.get("scan", False))
    return AppRole(name, keys, channels, commands, broker, description, scan)


def read_roles(key: str, value: Any) -> tuple[AppRole, ...]:
    """The `redis-ha:roles` reader."""
    if not isinstance(value, list | tuple) or not value:
        raise SettingsError(key, value, "a non-empty list of role objects {name, keys, channels, commands, broker}")
    roles: list[AppRole] = []
    for i, raw in enumerate(value):
        roles.append(_role(f"{key}[{i}]", raw, roles))
    password_owners(r.name for r in roles)
    return tuple(roles)
