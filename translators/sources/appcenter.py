"""Visual Studio App Center webhooks (build, crash, distribute).

Docs: https://learn.microsoft.com/en-us/appcenter/dashboard/webhooks/ (seed 000). App Center sends
no event header, so the kind of payload is told by its keys. App Center was retired on
31 March 2025; this source serves existing users and replays of its format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from translators.errors import FieldError, Ignored, PayloadInvalid
from translators.model import Fact, Link, Notification, Timestamp, duration_between
from translators.sources import platform_name, validate_model

BUILD_KEYS = frozenset({"build_id", "build_status", "build_link"})
CRASH_KEYS = frozenset({"crash_count", "stack_trace", "reason", "affected_users"})
DISTRIBUTE_KEYS = frozenset({"release_id", "install_link", "short_version", "distribution_group_id"})

#: App Center's build result words (case-insensitive) -> (event, outcome, verb).
BUILD_STATUSES: dict[str, tuple[str, str, str]] = {
    "succeeded": ("build.succeeded", "success", "succeeded"),
    "success": ("build.succeeded", "success", "succeeded"),
    "partiallysucceeded": ("build.succeeded", "warning", "partially succeeded"),
    "failed": ("build.failed", "failure", "failed"),
    "failure": ("build.failed", "failure", "failed"),
    "broken": ("build.failed", "failure", "failed"),
    "canceled": ("build.canceled", "canceled", "was canceled"),
    "cancelled": ("build.canceled", "canceled", "was canceled"),
    "started": ("build.started", "running", "started"),
    "inprogress": ("build.started", "running", "started"),
    "queued": ("build.started", "running", "was queued"),
    "notstarted": ("build.started", "running", "was queued"),
}

_model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, defer_build=True)  # built on first use


class BuildPayload(BaseModel):
    model_config = _model_config

    app_name: str = Field(min_length=1)
    branch: str | None = None
    build_status: str = Field(min_length=1)
    build_id: str = Field(min_length=1)
    build_link: str | None = None
    build_reason: str | None = None
    start_time: Timestamp | None = None
    finish_time: Timestamp | None = None
    icon_link: str | None = None
    notification_settings_link: str | None = None
    os: str | None = None
    source_version: str | None = None
    sent_at: Timestamp | None = None

    @field_validator("build_status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        if _status_key(value) not in BUILD_STATUSES:
            raise ValueError(f"unknown build status; expected one of {sorted({*BUILD_STATUSES})}")
        return value


class CrashPayload(BaseModel):
    model_config = _model_config

    id: str = Field(min_length=1)
    name: str | None = None
    reason: str | None = None
    url: str | None = None
    app_display_name: str | None = None
    #: The app's language ("Java", "Objective-C"), not its OS: never shown as the platform.
    app_platform: str | None = None
    #: Not in the documented body (App Center's API has it on apps); the platform when sent.
    app_os: str | None = None
    app_version: str | None = None
    stack_trace: list[Any] = Field(default_factory=list)
    affected_users: int | None = None
    crash_count: int | None = None
    sent_at: Timestamp | None = None
    app_id: str | None = None

    @field_validator("stack_trace", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value


class DistributePayload(BaseModel):
    model_config = _model_config

    app_name: str | None = None
    app_display_name: str | None = None
    release_id: str = Field(min_length=1)
    platform: str | None = None
    uploaded_at: Timestamp | None = None
    fingerprint: str | None = None
    release_notes: str | None = None
    version: str | None = None
    short_version: str | None = None
    min_os: str | None = None
    mandatory_update: bool | None = None
    size: int | None = None
    provisioning_profile_name: str | None = None
    provisioning_profile_type: str | None = None
    bundle_identifier: str | None = None
    install_link: str | None = None
    icon_link: str | None = None
    distribution_group_id: str | None = None
    installable: bool | None = None
    sent_at: Timestamp | None = None
    app_id: str | None = None


#: The owner (a user or an organization) and app that App Center's links name.
_APP_PATH = re.compile(r"/(users|orgs)/([^/?#]+)/apps/([^/?#]+)")


def _owner_app(*links: str | None) -> str | None:
    """``users/dana/apps/acme``, from the first App Center link that names an app, else None.

    Apps of two owners may share a name and count builds and releases from 1 alike, so an event's
    identity needs the owner: the payloads carry it only in their links.
    """
    for link in links:
        found = _APP_PATH.search(link or "")
        if found:
            return "/".join(found.groups())
    return None


def _status_key(value: str) -> str:
    return value.replace(" ", "").replace("_", "").lower()


def _stack_text(frames: list[Any], limit: int = 15) -> str | None:
    """Stack frames arrive as strings or objects; show the first few as lines."""
    lines = []
    for frame in frames[:limit]:
        if isinstance(frame, str):
            lines.append(frame)
        elif isinstance(frame, Mapping):
            parts = [
                str(frame[k]) for k in ("className", "method", "file", "line", "code_raw") if frame.get(k)
            ]
            lines.append(" ".join(parts) if parts else str(dict(frame)))
        else:
            lines.append(str(frame))
    if len(frames) > limit:
        lines.append(f"… {len(frames) - limit} more frames")
    return "\n".join(lines) or None


class AppCenter:
    name: ClassVar[str] = "appcenter"
    label: ClassVar[str] = "App Center"
    docs: ClassVar[str] = "https://learn.microsoft.com/en-us/appcenter/dashboard/webhooks/"
    signature: ClassVar[str] = (
        f"two of the build keys {sorted(BUILD_KEYS)}, two of the distribute keys "
        f"{sorted(DISTRIBUTE_KEYS)}, or 'id' and two of the crash keys {sorted(CRASH_KEYS)}"
    )

    def kind(self, payload: Mapping[str, Any]) -> str | None:
        keys = payload.keys()
        if keys & BUILD_KEYS:
            return "build"
        if keys & DISTRIBUTE_KEYS:
            return "distribute"
        if keys & CRASH_KEYS:
            return "crash"
        return None

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        keys = payload.keys()
        return (
            len(keys & BUILD_KEYS) >= 2
            or len(keys & DISTRIBUTE_KEYS) >= 2
            or (len(keys & CRASH_KEYS) >= 2 and "id" in keys)
        )

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        kind = self.kind(payload)
        if kind == "build":
            return self._build(validate_model(BuildPayload, payload, "App Center build"))
        if kind == "distribute":
            return self._distribute(validate_model(DistributePayload, payload, "App Center distribute"))
        if kind == "crash":
            return self._crash(validate_model(CrashPayload, payload, "App Center crash"))
        if set(payload.keys()) <= {"text", "title", "message", "summary", "@type", "@context"}:
            # The "test" button in App Center's webhook settings sends a short message of its own
            # (exact body unconfirmed); acknowledge it rather than reject it.
            return Ignored("App Center test message; nothing to forward", event="test")
        raise PayloadInvalid(
            "not an App Center build, crash or distribute payload",
            [
                FieldError("(body)", f"expected build keys {sorted(BUILD_KEYS)}"),
                FieldError("(body)", f"or crash keys {sorted(CRASH_KEYS)}"),
                FieldError("(body)", f"or distribute keys {sorted(DISTRIBUTE_KEYS)}"),
            ],
        )

    def _build(self, b: BuildPayload) -> Notification:
        event, outcome, verb = BUILD_STATUSES[_status_key(b.build_status)]
        # The notification settings link is left out: nobody needs it in a build's message.
        links = [Link(label="Open build", url=b.build_link)] if b.build_link else []
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": event,
                "outcome": outcome,
                "title": f"Build #{b.build_id} {verb}",
                "summary": f"{b.app_name}: App Center build #{b.build_id} {verb}",
                "app": b.app_name,
                "app_key": b.app_name,
                "platform": b.os,
                "build_number": b.build_id,
                "build_id": b.build_id,
                # build_id counts per app, and app names repeat across owners: both are the identity.
                "event_id": (
                    f"appcenter:build:{_owner_app(b.build_link, b.notification_settings_link) or b.app_name}"
                    f":{b.build_id}:{_status_key(b.build_status)}"
                ),
                "message_key": (
                    f"appcenter:build:{_owner_app(b.build_link, b.notification_settings_link) or b.app_name}"
                    f":{b.build_id}"
                ),
                "branch": b.branch or None,
                "commit": b.source_version or None,
                # "manual", "continuous integration": why it ran, never who (no people are set, so
                # nobody is looked up or shown as the person behind it).
                "triggered_by": b.build_reason,
                "url": b.build_link,
                "links": links,
                "started_at": b.start_time,
                "finished_at": b.finish_time if event != "build.started" else None,
                "sent_at": b.sent_at,
                "duration_seconds": duration_between(b.start_time, b.finish_time),
            }
        )

    def _crash(self, c: CrashPayload) -> Notification:
        app = c.app_display_name or c.app_id or "App"
        facts: list[Fact] = []
        if c.crash_count:  # 0 or unknown says nothing worth a line
            facts.append(Fact("Crashes", str(c.crash_count)))
        if c.affected_users:
            facts.append(Fact("Users", str(c.affected_users)))
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": "crash.new_group",
                "outcome": "failure",
                "emoji": "💥",
                "title": "New crash group",
                "summary": f"{app}: new crash group {c.name or c.id}",
                "app": app,
                "app_id": c.app_id,
                "app_key": c.app_id,
                "platform": platform_name(c.app_os),
                "version": c.app_version,
                "build_id": c.id,
                "event_id": f"appcenter:crash:{c.app_id or '-'}:{c.id}",
                "url": c.url,
                "links": [Link(label="Open crash", url=c.url)] if c.url else [],
                "sent_at": c.sent_at,
                # The exception and its message; where it happened (the group's name is its top
                # frame); the stack below them.
                "error": c.reason or None,
                "error_location": c.name or None,
                "details_title": "Stack trace",
                "details": _stack_text(c.stack_trace),
                "details_kind": "code",
                "facts": facts,
            }
        )

    def _distribute(self, d: DistributePayload) -> Notification:
        app = d.app_display_name or d.app_name or d.app_id or "App"
        version = d.short_version
        if d.short_version and d.version and d.version != d.short_version:
            version = f"{d.short_version} ({d.version})"
        version = version or d.version
        # The bundle id and minimum OS help nobody at a glance; a mandatory update does.
        facts = [Fact("Mandatory", "yes")] if d.mandatory_update else []
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": "release.published",
                "outcome": "info",
                "title": f"Release {version or d.release_id} published",
                "summary": f"{app}: release {version or d.release_id} is available",
                "app": app,
                "app_id": d.app_id,
                "app_key": d.app_name or d.app_id,
                "platform": d.platform,
                "version": version,
                "build_id": d.release_id,
                # release_id counts per app, and app names repeat across owners.
                "event_id": (
                    f"appcenter:release:{d.app_id or _owner_app(d.install_link) or d.app_name or '-'}"
                    f":{d.release_id}"
                ),
                "size_bytes": d.size,
                "url": d.install_link,
                "links": [Link(label="Install", url=d.install_link)] if d.install_link else [],
                "finished_at": d.uploaded_at,
                "sent_at": d.sent_at,
                "details_title": "Release notes" if d.release_notes else None,
                "details": d.release_notes or None,
                "details_kind": "markdown",
                "facts": facts,
            }
        )


SOURCE = AppCenter()
