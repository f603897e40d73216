"""Configuration from app settings (environment variables; ``local.settings.json`` Values locally).

A channel is ``CHANNEL_<NAME>_URL`` plus optional ``CHANNEL_<NAME>_FORMAT``,
``CHANNEL_<NAME>_TEMPLATES`` and the notification rules ``CHANNEL_<NAME>_EVENTS``,
``CHANNEL_<NAME>_BUILD_SUCCESS`` and ``CHANNEL_<NAME>_BUILD_FAILURE`` (see translators/rules.py).
Channel URLs are secrets: they are held as ``SecretStr`` and no message here ever includes one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from translators.errors import ConfigurationError
from translators.model import EVENTS

FormatName = Literal["slack", "teams", "teams-messagecard"]
FORMAT_NAMES: tuple[str, ...] = ("slack", "teams", "teams-messagecard")
#: When a channel hears of a build outcome (App Center's modes, for every source).
SuccessMode = Literal["always", "after-failure", "never"]
FailureMode = Literal["always", "after-success", "never"]
SUCCESS_MODES: tuple[SuccessMode, ...] = ("always", "after-failure", "never")
FAILURE_MODES: tuple[FailureMode, ...] = ("always", "after-success", "never")

_SETTING = re.compile(
    r"^CHANNEL_([A-Z0-9_]+?)_(URL|FORMAT|TEMPLATES|EVENTS|BUILD_SUCCESS|BUILD_FAILURE)$", re.IGNORECASE
)
#: fnmatch patterns over event names: letters, digits, . _ - and the wildcards * ? [ ] !
_EVENT_PATTERN = re.compile(r"^[a-z0-9._\-*?\[\]!]+$")

#: Hosts whose webhooks settle the format, checked as exact host or dot-suffix.
FORMAT_BY_HOST: tuple[tuple[str, FormatName], ...] = (
    ("hooks.slack.com", "slack"),
    ("webhook.office.com", "teams-messagecard"),
    ("outlook.office.com", "teams-messagecard"),
    ("outlook.office365.com", "teams-messagecard"),
    ("logic.azure.com", "teams"),
    ("powerplatform.com", "teams"),
    ("powerautomate.com", "teams"),
)


def channel_key(name: str) -> str:
    """Channel names are case-insensitive and ``_`` and ``-`` are the same (env vars cannot hold ``-``)."""
    return name.strip().lower().replace("_", "-")


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    url: SecretStr
    format: FormatName
    templates: str | None = None
    #: Event-name patterns this channel takes (``build.failed``, ``crash.*``); empty: every event.
    events: tuple[str, ...] = ()
    build_success: SuccessMode = "always"
    build_failure: FailureMode = "always"

    def public(self) -> dict[str, object]:
        """What may be shown to anyone: never the URL."""
        out: dict[str, object] = {
            "name": self.name,
            "format": self.format,
            "custom_templates": bool(self.templates),
        }
        if self.events:
            out["events"] = list(self.events)
        if (self.build_success, self.build_failure) != ("always", "always"):
            out["build_success"], out["build_failure"] = self.build_success, self.build_failure
        return out


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    channels: dict[str, Channel]
    #: Channels whose settings are wrong, with what is wrong (no URLs).
    channel_errors: dict[str, str]
    templates_dir: str | None = None

    def channel(self, name: str) -> Channel:
        key = channel_key(name)
        if key in self.channel_errors:
            raise ConfigurationError(self.channel_errors[key], channel=key)
        return self.channels[key]

    def known(self) -> list[str]:
        return sorted({*self.channels, *self.channel_errors})

    def secrets(self) -> list[str]:
        return [c.url.get_secret_value() for c in self.channels.values()]


def format_for_host(url: str) -> FormatName | None:
    host = (urlsplit(url).hostname or "").lower()
    for suffix, fmt in FORMAT_BY_HOST:
        if host == suffix or host.endswith("." + suffix):
            return fmt
    return None


def load(env: Mapping[str, str]) -> Settings:
    """The settings ``env`` holds; channels with wrong settings are listed in ``channel_errors``."""
    # Every request asks; parsing and validating the channels again cost more than the rest of the
    # settings lookups, so the result is kept per distinct set of the items it is made from.
    items = tuple((key, value) for key, value in env.items() if key[:8].upper() == "CHANNEL_")
    return _load(items, env.get("TEMPLATES_DIR", ""))


@lru_cache(maxsize=32)
def _load(items: tuple[tuple[str, str], ...], templates_dir: str) -> Settings:
    raw: dict[str, dict[str, str]] = {}
    for key, value in items:
        match = _SETTING.match(key)
        if match:
            raw.setdefault(channel_key(match[1]), {})[match[2].upper()] = value.strip()
    channels: dict[str, Channel] = {}
    errors: dict[str, str] = {}
    for name, values in sorted(raw.items()):
        env_name = f"CHANNEL_{name.upper().replace('-', '_')}"
        url = values.get("URL", "")
        if not url:
            errors[name] = f"channel '{name}': {env_name}_URL is not set"
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors[name] = f"channel '{name}': {env_name}_URL is not an http(s) URL"
            continue
        fmt = values.get("FORMAT", "").lower() or format_for_host(url)
        if fmt is None:
            errors[name] = (
                f"channel '{name}': the URL's host does not say which format it takes; "
                f"set {env_name}_FORMAT to one of {', '.join(FORMAT_NAMES)}"
            )
            continue
        if fmt not in FORMAT_NAMES:
            errors[name] = f"channel '{name}': {env_name}_FORMAT must be one of {', '.join(FORMAT_NAMES)}"
            continue
        try:
            events, success, failure = _rules(values, env_name)
        except ValueError as exc:
            errors[name] = f"channel '{name}': {exc}"
            continue
        channels[name] = Channel(
            name=name,
            url=SecretStr(url),
            format=fmt,
            templates=values.get("TEMPLATES") or None,
            events=events,
            build_success=success,
            build_failure=failure,
        )
    return Settings(channels=channels, channel_errors=errors, templates_dir=templates_dir.strip() or None)


def _rules(values: Mapping[str, str], env_name: str) -> tuple[tuple[str, ...], SuccessMode, FailureMode]:
    """A channel's EVENTS patterns and build modes; ValueError naming the setting when one is wrong."""
    events = tuple(dict.fromkeys(p.strip().lower() for p in values.get("EVENTS", "").split(",") if p.strip()))
    for pattern in events:
        if not _EVENT_PATTERN.match(pattern):
            raise ValueError(f"{env_name}_EVENTS has an invalid pattern {pattern!r}")
        if not any(fnmatchcase(event, pattern) for event in EVENTS):
            # A typo would silently mute the channel; every event name is known, so say so now.
            raise ValueError(
                f"{env_name}_EVENTS pattern {pattern!r} matches no event; events are {', '.join(EVENTS)}"
            )
    success = _mode(values, "BUILD_SUCCESS", SUCCESS_MODES, env_name)
    failure = _mode(values, "BUILD_FAILURE", FAILURE_MODES, env_name)
    return events, success, failure


def _mode[M: str](values: Mapping[str, str], key: str, modes: tuple[M, ...], env_name: str) -> M:
    given = values.get(key, "").strip().lower().replace("_", "-")
    if not given:
        return modes[0]
    for mode in modes:
        if mode == given:
            return mode
    raise ValueError(f"{env_name}_{key} must be one of {', '.join(modes)}")
