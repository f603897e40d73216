"""Bitrise outgoing webhooks.

Docs: https://devcenter.bitrise.io/en/apps/webhooks/outgoing-webhooks.html (seed 004) and
https://api-docs.bitrise.io/ (build_status values). Bitrise delivers once and never retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from translators.errors import FieldError, Ignored, PayloadInvalid
from translators.model import Link, Notification
from translators.sources import Enrichment, validate_model

if TYPE_CHECKING:
    from translators.settings import AppSettings

EVENT_HEADER = "bitrise-event-type"
BITRISE_URL = "https://app.bitrise.io"

#: build_status -> (event, outcome, verb). 0 is "not finished": only valid for build/triggered.
FINISHED_STATUSES: dict[int, tuple[str, str, str]] = {
    1: ("build.succeeded", "success", "succeeded"),
    2: ("build.failed", "failure", "failed"),
    3: ("build.canceled", "canceled", "was aborted"),
    4: ("build.canceled", "canceled", "was aborted (marked successful)"),
}


class Git(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    provider: str | None = None
    src_branch: str | None = None
    dst_branch: str | None = None
    # Real payloads send 0 and null for builds that are not PR or tag builds.
    pull_request_id: int | None = None
    tag: str | None = None
    commit_hash: str | None = None
    commit_message: str | None = None


class BuildPayload(BaseModel):
    """The body of ``build/triggered`` and ``build/finished``."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    build_slug: str = Field(min_length=1)
    build_number: int
    app_slug: str = Field(min_length=1)
    build_status: int = Field(ge=0, le=4)
    build_triggered_workflow: str | None = None
    git: Git = Field(default_factory=Git)
    # Not in the documented body; picked up when a proxy or a newer Bitrise adds them.
    app_title: str | None = None
    triggered_by: str | None = None

    @field_validator("git", mode="before")
    @classmethod
    def _null_git(cls, value: Any) -> Any:
        return {} if value is None else value


class Bitrise:
    name: ClassVar[str] = "bitrise"
    label: ClassVar[str] = "Bitrise"
    docs: ClassVar[str] = "https://devcenter.bitrise.io/en/apps/webhooks/outgoing-webhooks.html"
    signature: ClassVar[str] = (
        "a 'Bitrise-Event-Type: build/...' header, or the keys build_slug, app_slug and build_status"
    )

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        if headers.get(EVENT_HEADER, "").startswith("build/"):
            return True
        return {"build_slug", "app_slug", "build_status"} <= payload.keys()

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        event_type = headers.get(EVENT_HEADER, "").strip().lower()
        if event_type and event_type not in ("build/triggered", "build/finished"):
            return Ignored(f"Bitrise event type {event_type!r} is not handled", event=event_type)
        build = validate_model(BuildPayload, payload, "Bitrise build")
        if not event_type:
            # Without the header (a manual replay, a proxy that drops headers) the status settles it.
            event_type = "build/triggered" if build.build_status == 0 else "build/finished"
        if event_type == "build/triggered":
            return self._notification(build, "build.started", "running", "started")
        if build.build_status == 0:
            raise PayloadInvalid(
                "build/finished with build_status 0 (not finished)",
                [FieldError("build_status", "must be 1-4 for build/finished")],
            )
        event, outcome, verb = FINISHED_STATUSES[build.build_status]
        return self._notification(build, event, outcome, verb)

    def enrich(self, n: Notification, app: AppSettings) -> Enrichment | None:
        """With ``BITRISE_API_TOKEN``, the build's details from Bitrise's API (sources/_bitrise_api.py)."""
        if app.bitrise_api_token is None:
            return None
        from translators.sources import _bitrise_api  # requests and the thread pool only when used

        return _bitrise_api.enrich(n, app.bitrise_api_token.get_secret_value(), app.bitrise_api_url)

    def replay(self, n: Notification, answers: Mapping[str, Any]) -> Notification:
        from translators.sources import _bitrise_api

        return _bitrise_api.recorded(n, dict(answers))

    def _notification(self, b: BuildPayload, event: str, outcome: str, verb: str) -> Notification:
        git = b.git
        # No name in the payload: the app is None, so the heading leads with the workflow and the
        # footer shows the slug (app_id); APP_NAMES or the API's title name it. The summary then
        # starts "Bitrise: ", which Notification.named replaces with the name.
        app = b.app_title.strip() if b.app_title and b.app_title.strip() else None
        said = f"{app}: Bitrise build" if app else f"{self.label}: build"
        build_url = f"{BITRISE_URL}/build/{quote(b.build_slug, safe='')}"
        pr = str(git.pull_request_id) if git.pull_request_id else None
        workflow = f" ({b.build_triggered_workflow})" if b.build_triggered_workflow else ""
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": event,
                "outcome": outcome,
                "title": f"Build #{b.build_number} {verb}",
                "summary": f"{said} #{b.build_number}{workflow} {verb}",
                "app": app,
                "app_id": b.app_slug,
                "app_key": b.app_slug,
                "build_number": str(b.build_number),
                "build_id": b.build_slug,
                # Slug + status (+ our event, which says triggered or finished): a redelivery of the
                # same webhook has the same id.
                "event_id": f"bitrise:{b.build_slug}:{b.build_status}:{event}",
                "message_key": f"bitrise:{b.build_slug}",
                "branch": git.src_branch or None,
                "target_branch": git.dst_branch or None,
                "pull_request": pr,
                "tag": git.tag or None,
                "workflow": b.build_triggered_workflow or None,
                "commit": git.commit_hash or None,
                "commit_message": git.commit_message or None,
                "triggered_by": trigger(b.triggered_by)[0],
                "people": trigger(b.triggered_by)[1],
                "url": build_url,
                "links": [
                    Link(label="Open build", url=build_url),
                    Link(label="Open app", url=f"{BITRISE_URL}/app/{quote(b.app_slug, safe='')}"),
                ],
            }
        )


def trigger(value: str | None) -> tuple[str | None, tuple[str, ...]]:
    """Bitrise's ``triggered_by`` as shown, and the keys MENTIONS may know it by.

    ``manual-dana`` (a person started it) shows as ``dana``; ``webhook``, ``schedule`` and the
    like are shown as they are and name nobody.
    """
    if not value or not value.strip():
        return None, ()
    value = value.strip()
    if value.lower().startswith("manual-") and len(value) > len("manual-"):
        user = value[len("manual-") :]
        return user, (user, value)
    if value.lower() in MACHINES or value.lower().startswith("api-"):
        return value, ()
    return value, (value,)


#: ``triggered_by`` words that name a mechanism, never a person: not looked up in MENTIONS.
MACHINES = frozenset(
    {"webhook", "schedule", "scheduled", "api", "manual", "pipeline", "build-trigger", "trigger"}
)


SOURCE = Bitrise()
