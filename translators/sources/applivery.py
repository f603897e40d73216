"""Applivery App Distribution webhooks (workspace- or app-level integrations).

Docs: https://docs.applivery.com/en/app-distribution/integrations/webhooks (seed 001). The
``action`` field names the event; there is no event header and no signature. Applivery also has
MDM events (older docs list "MDM enrollment token created" and "device enrolled") whose bodies
are not documented: any action not in ``ACTIONS`` is acknowledged and ignored, not rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from translators.errors import FieldError, Ignored, PayloadInvalid
from translators.formats import clip
from translators.model import Link, Notification
from translators.sources import platform_name, validate_model

#: action -> event name. Applivery's own words for each are in the titles below.
ACTIONS: dict[str, str] = {
    "build_created": "build.uploaded",
    "build_processed": "build.ready",
    "feedback_created": "feedback.received",
    "bug_created": "bug.reported",
    "certificate_application_will_expire": "certificate.expiring",
}


def today() -> date:
    """The UTC date a certificate warning arrives on (tests pin it)."""
    return datetime.now(UTC).date()


#: Days left at or under which a certificate warning is red, then yellow; above both it is blue.
URGENT_DAYS = 3
SOON_DAYS = 14

_model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, defer_build=True)  # built on first use


class Organization(BaseModel):
    """The Applivery workspace (``organization`` in the payload)."""

    model_config = _model_config

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    url: str


class Application(BaseModel):
    model_config = _model_config

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    url: str


class Build(BaseModel):
    model_config = _model_config

    id: str = Field(min_length=1)
    # Only build_processed carries these; the seed's versionName is an empty string.
    os: str | None = None
    versionName: str | None = None
    url: str


class Report(BaseModel):
    model_config = _model_config

    # A report may carry screenshots only; an empty message is still a report.
    message: str
    url: str


class Team(BaseModel):
    """The Apple developer team whose enterprise certificate is expiring."""

    model_config = _model_config

    name: str = Field(min_length=1)
    identifier: str = Field(min_length=1)


class Base(BaseModel):
    model_config = _model_config

    action: str
    organization: Organization
    application: Application


class BuildPayload(Base):
    build: Build


class ReportPayload(Base):
    report: Report


class CertificatePayload(Base):
    numDays: int = Field(ge=0)
    team: Team

    @field_validator("numDays", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        # Applivery sends the number as a string ("5"); pydantic's int parsing would also take
        # "5.0" or " 5 ", so the string is checked here and the message says what is expected.
        if isinstance(value, str):
            if not value.strip().isdigit():
                raise ValueError('must be a whole number of days, like "5"')
            return int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError('must be a whole number of days, like "5"')
        return value


def expiry(arrived: date, days: int) -> date | None:
    """The day the certificate expires: ``days`` after the warning arrived (the payload has no
    date of its own); None when that is past the calendar's end (a broken ``numDays``)."""
    if days > (date.max - arrived).days:
        return None
    return arrived + timedelta(days=days)


class Applivery:
    name: ClassVar[str] = "applivery"
    label: ClassVar[str] = "Applivery"
    docs: ClassVar[str] = "https://docs.applivery.com/en/app-distribution/integrations/webhooks"
    signature: ClassVar[str] = "an 'action' string and an 'application' object"

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        return isinstance(payload.get("action"), str) and isinstance(payload.get("application"), Mapping)

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        action = payload.get("action")
        if not isinstance(action, str) or not action.strip():
            raise PayloadInvalid(
                "not an Applivery webhook payload",
                [FieldError("action", f"required: one of {sorted(ACTIONS)} (or another Applivery action)")],
            )
        action = action.strip()
        event = ACTIONS.get(action)
        if event is None:
            return Ignored(f"Applivery action {action!r} is not handled", event=action)
        what = f"Applivery {action}"
        if event in ("build.uploaded", "build.ready"):
            return self._build(event, validate_model(BuildPayload, payload, what))
        if event in ("feedback.received", "bug.reported"):
            return self._report(event, validate_model(ReportPayload, payload, what))
        return self._certificate(validate_model(CertificatePayload, payload, what))

    def _common(self, p: Base) -> dict[str, Any]:
        return {
            "source": self.name,
            "source_label": self.label,
            "app": p.application.name,
            "app_id": p.application.id,
            "app_key": p.application.id,
            # The workspace (organization) is left out: a team knows its own, and it cost a fact.
        }

    def _app_link(self, p: Base) -> Link:
        return Link(label="Open app", url=p.application.url)

    def _build(self, event: str, p: BuildPayload) -> Notification:
        version = (p.build.versionName or "").strip() or None
        # Titles are not clipped later; a version name is short unless something is wrong.
        named = f"Build {clip(version, 40)}" if version else "New build"
        if event == "build.uploaded":
            outcome, emoji, title = "running", "⏳", f"{named} uploaded, processing"
            summary = f"{p.application.name}: {named.lower()} uploaded to Applivery, processing"
        else:
            outcome, emoji, title = "success", "📲", f"{named} ready to install"
            summary = f"{p.application.name}: {named.lower()} is ready to install from Applivery"
        return Notification.model_validate(
            self._common(p)
            | {
                "event": event,
                "outcome": outcome,
                "emoji": emoji,
                "title": title,
                "summary": summary,
                "platform": platform_name(p.build.os),
                "version": version,
                "build_id": p.build.id,
                "event_id": f"applivery:{p.action.strip()}:{p.organization.id}:{p.build.id}",
                # build_created then build_processed: one build, one message in a Slack app channel.
                "message_key": f"applivery:build:{p.organization.id}:{p.build.id}",
                "url": p.build.url,
                "links": [Link(label="Open build", url=p.build.url), self._app_link(p)],
            }
        )

    def _report(self, event: str, p: ReportPayload) -> Notification:
        if event == "feedback.received":
            kind, outcome, emoji = "feedback", "info", "💬"
        else:
            kind, outcome, emoji = "bug report", "warning", "🐞"
        message = p.report.message.strip()
        first_line = message.splitlines()[0] if message else ""
        first_line = clip(first_line, 120)  # the summary is a one-line preview; details hold it all
        return Notification.model_validate(
            self._common(p)
            | {
                "event": event,
                "outcome": outcome,
                "emoji": emoji,
                "title": f"New {kind}",
                "summary": f"{p.application.name}: new {kind}" + (f": {first_line}" if first_line else ""),
                "url": p.report.url,
                # The report URL carries the report's id; the payload has no other identity for it.
                "event_id": f"applivery:{p.action.strip()}:{p.organization.id}:{p.report.url}",
                "links": [Link(label=f"Open {kind.split()[-1]}", url=p.report.url), self._app_link(p)],
                "details_title": f"{kind[0].upper()}{kind[1:]} from a tester",
                "details": message or "(no message; open the report for screenshots and device details)",
                "details_kind": "markdown" if message else "text",
            }
        )

    def _certificate(self, p: CertificatePayload) -> Notification:
        days = p.numDays
        if days == 0:
            when = "today"
        elif days == 1:
            when = "tomorrow"
        else:
            when = f"in {days} days"
        # Stands out more as the days run out: red and a siren, then yellow, then blue.
        if days <= URGENT_DAYS:
            outcome, emoji = "failure", "🚨"
        elif days <= SOON_DAYS:
            outcome, emoji = "warning", "⏰"
        else:
            outcome, emoji = "info", "📅"
        team = f"{p.team.name} ({p.team.identifier})"
        expires = expiry(today(), days)
        facts = [("Team", team)]
        if expires is not None:
            facts.append(("Expires", f"{expires.day} {expires:%b %Y}"))
        return Notification.model_validate(
            self._common(p)
            | {
                "event": "certificate.expiring",
                "outcome": outcome,
                "emoji": emoji,
                "title": f"Certificate expires {when}",
                "summary": f"{p.application.name}: the enterprise certificate of {team} expires {when}",
                "days_left": days,
                # Two teams' certificates can expire for one app on the same day, and next year's
                # warning must not be this year's duplicate: the expiry date tells them apart.
                "event_id": (
                    f"applivery:{p.action.strip()}:{p.organization.id}:{p.application.id}:"
                    f"{p.team.identifier}:{expires.isoformat() if expires else 'later'}:{days}"
                ),
                "url": p.application.url,
                "links": [self._app_link(p)],
                "facts": facts,
                "details_title": "What to do",
                "details": (
                    f"The enterprise distribution certificate of {team} expires {when}. Builds signed "
                    "with it stop installing and opening once it expires: renew it in the Apple "
                    "Developer account and upload builds signed with the new one."
                ),
            }
        )


SOURCE = Applivery()
