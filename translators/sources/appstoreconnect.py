"""App Store Connect API webhooks: versions through review, build uploads, TestFlight, feedback.

Docs: https://developer.apple.com/documentation/appstoreconnectapi/configuring-and-parsing-app-store-connect-api-webhook-notifications
and "Understanding webhook events" beside it. A webhook belongs to one app (Users and Access ->
Integrations -> Webhooks) and posts a thin JSON:API envelope: the event in ``data.type``, its id
in ``data.id``, what changed in ``data.attributes`` and the resource in
``data.relationships.instance``. It names no app, version or build: with an API key the message is
completed from the App Store Connect API (sources/_asc_api.py); without one it says what changed.

Where Apple's documentation is uncertain the model accepts every spelling it shows: the old and
new state are ``oldValue``/``newValue`` (versions), ``oldState``/``newState`` (build uploads,
background assets) or ``oldExternalBuildState``/``newExternalBuildState`` (TestFlight), each read
from whichever is present; the instance is ``instance.data`` or, in the background-asset
examples, ``instance`` itself; state names are open strings (Apple's examples use names outside
their enums). A type we do not know is answered 200 ``ignored``, never refused. Deliveries are
signed (``x-apple-signature: hmacsha256=<hex>``) with the secret chosen on the webhook; see
``SIGNING``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from translators.errors import Ignored
from translators.formats import clip
from translators.model import Fact, Link, Notification, Timestamp
from translators.sources import Enrichment, Loose, Signing, validate_model
from translators.sources._apple import OPEN_ASC, state_key, web_url, words

if TYPE_CHECKING:
    from translators.settings import AppSettings

SIGNING = Signing(
    header="x-apple-signature",
    setting="APPSTORECONNECT_WEBHOOK_SECRET",
    digest="sha256",
    prefix="hmacsha256=",
)

#: A new state -> (event, outcome, what happened), for versions, TestFlight builds and background
#: asset releases alike (their state names do not clash). A state not here is ``release.updated``.
STATE_EVENTS: dict[str, tuple[str, str, str]] = {
    "WAITING_FOR_REVIEW": ("review.submitted", "running", "submitted for review"),
    "WAITING_FOR_BETA_REVIEW": ("review.submitted", "running", "submitted for beta review"),
    "IN_REVIEW": ("review.started", "running", "in review"),
    "IN_BETA_REVIEW": ("review.started", "running", "in beta review"),
    "ACCEPTED": ("review.approved", "success", "approved"),
    "APPROVED": ("review.approved", "success", "approved"),
    "BETA_APPROVED": ("review.approved", "success", "approved for external testing"),
    "PENDING_DEVELOPER_RELEASE": ("review.approved", "success", "approved, waiting for you to release it"),
    "PENDING_APPLE_RELEASE": ("review.approved", "success", "approved, to be released by Apple"),
    "REJECTED": ("review.rejected", "failure", "rejected"),
    "METADATA_REJECTED": ("review.rejected", "failure", "rejected (metadata)"),
    "INVALID_BINARY": ("review.rejected", "failure", "rejected (invalid binary)"),
    "BETA_REJECTED": ("review.rejected", "failure", "rejected in beta review"),
    "DEVELOPER_REJECTED": ("review.canceled", "canceled", "removed from review"),
    "READY_FOR_DISTRIBUTION": ("release.published", "success", "is live"),
    "READY_FOR_SALE": ("release.published", "success", "is live"),
    "PREORDER_READY_FOR_SALE": ("release.published", "success", "is ready for pre-order"),
    "PREORDER_READY_FOR_DISTRIBUTION": ("release.published", "success", "is ready for pre-order"),
    "IN_BETA_TESTING": ("release.published", "success", "is available to external testers"),
}
#: Outcomes of states that only update (``release.updated``); any other is ``info``.
UPDATE_OUTCOMES: dict[str, str] = {
    "FAILED": "failure",
    "PROCESSING_EXCEPTION": "failure",
    "EXPIRED": "warning",
    "MISSING_EXPORT_COMPLIANCE": "warning",
    "WAITING_FOR_EXPORT_COMPLIANCE": "warning",
    "PENDING_CONTRACT": "warning",
    "REMOVED_FROM_SALE": "warning",
    "DEVELOPER_REMOVED_FROM_SALE": "warning",
    "COMPLETE": "success",
    "READY_FOR_BETA_TESTING": "success",
}
#: Build upload states -> (event, outcome, what happened); AWAITING_UPLOAD and others say nothing yet.
UPLOAD_EVENTS: dict[str, tuple[str, str, str]] = {
    "PROCESSING": ("build.uploaded", "running", "uploaded, processing"),
    "COMPLETE": ("build.ready", "success", "processed, ready for TestFlight"),
    "FAILED": ("build.upload_failed", "failure", "failed processing"),
}
#: Emoji of the events that have a fitting one (the others show their outcome's).
EMOJI = {
    "review.submitted": "📝",
    "review.started": "🔍",
    "review.rejected": "⛔",
    "review.canceled": "↩️",
    "release.published": "🚀",
    "release.updated": "🔄",
    "build.ready": "📲",
    "feedback.received": "💬",
    "crash.reported": "💥",
    "webhook.ping": "🔌",
}

#: ``data.type`` (lower case) of state changes -> (instance type, subject of the title). The
#: enrichment names the subject ("Version 2.4.0", "Build 2.4.0 (112)") where the API says more.
STATE_CHANGES: dict[str, tuple[str, str]] = {
    "appstoreversionappversionstateupdated": ("appStoreVersions", "App Store version"),
    "buildbetadetailexternalbuildstateupdated": ("buildBetaDetails", "TestFlight build"),
    "backgroundassetversionstateupdated": ("backgroundAssetVersions", "Background asset version"),
    "backgroundassetversionexternalbetareleasestateupdated": (
        "backgroundAssetVersionExternalBetaReleases",
        "Background asset TestFlight release",
    ),
    "backgroundassetversionappstorereleasestateupdated": (
        "backgroundAssetVersionAppStoreReleases",
        "Background asset App Store release",
    ),
}
UPLOAD = "builduploadstateupdated"
FEEDBACK: dict[str, tuple[str, str, str]] = {
    # data.type -> (instance type, event, title)
    "betafeedbackscreenshotsubmissioncreated": (
        "betaFeedbackScreenshotSubmissions",
        "feedback.received",
        "New TestFlight feedback",
    ),
    "betafeedbackcrashsubmissioncreated": (
        "betaFeedbackCrashSubmissions",
        "crash.reported",
        "New TestFlight crash report",
    ),
}
ASSET_RELEASE = "backgroundassetversioninternalbetareleasecreated"
ALTERNATIVE = (
    "alternativedistributionpackageversioncreated",
    "alternativedistributionpackageavailableupdated",
    "alternativedistributionterritoryavailabilityupdated",
)
#: Resource types ``_asc_api`` can look up, as ``message_key`` carries them.
LOOKED_UP = frozenset(
    {"appStoreVersions", "buildUploads", "buildBetaDetails", *(kind for kind, *_ in FEEDBACK.values())}
)


class Reference(Loose):
    type: str | None = None
    id: str | None = None


class Relationship(Loose):
    data: Reference | None = None
    #: Background-asset events put ``type`` and ``id`` here, without ``data``.
    type: str | None = None
    id: str | None = None

    @property
    def ref(self) -> Reference:
        return self.data if self.data is not None and self.data.id else Reference(type=self.type, id=self.id)


class Attributes(Loose):
    timestamp: Timestamp | None = None
    oldValue: str | None = None
    newValue: str | None = None
    oldState: str | None = None
    newState: str | None = None
    oldExternalBuildState: str | None = None
    newExternalBuildState: str | None = None
    appId: str | None = None
    available: bool | None = None
    territories: list[str] = Field(default_factory=list)

    @property
    def old(self) -> str | None:
        return _first(self.oldValue, self.oldState, self.oldExternalBuildState)

    @property
    def new(self) -> str | None:
        return _first(self.newValue, self.newState, self.newExternalBuildState)


class Data(Loose):
    type: str = Field(min_length=1)
    id: str = Field(min_length=1)
    attributes: Attributes = Field(default_factory=Attributes)
    relationships: dict[str, Relationship] = Field(default_factory=dict)

    @property
    def instance(self) -> Reference:
        found = self.relationships.get("instance")
        return found.ref if found is not None else Reference()


class Envelope(Loose):
    data: Data


class AppStoreConnect:
    name: ClassVar[str] = "appstoreconnect"
    label: ClassVar[str] = "App Store Connect"
    docs: ClassVar[str] = (
        "https://developer.apple.com/documentation/appstoreconnectapi/"
        "configuring-and-parsing-app-store-connect-api-webhook-notifications"
    )
    signature: ClassVar[str] = (
        "an 'x-apple-signature' header, or a 'data' object with a 'type' string and 'attributes' or"
        " 'relationships'"
    )
    signing: ClassVar[Signing] = SIGNING

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        if SIGNING.value(headers):
            return True
        data = payload.get("data")
        return (
            isinstance(data, Mapping)
            and isinstance(data.get("type"), str)
            and (
                isinstance(data.get("attributes"), Mapping) or isinstance(data.get("relationships"), Mapping)
            )
        )

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        d = validate_model(Envelope, payload, "App Store Connect webhook").data
        kind = d.type.strip().lower()
        if kind in STATE_CHANGES:
            return self._state_change(d, *STATE_CHANGES[kind])
        if kind == UPLOAD:
            return self._upload(d)
        if kind in FEEDBACK:
            return self._feedback(d, *FEEDBACK[kind])
        if kind == ASSET_RELEASE:
            return self._note(
                d,
                "release.published",
                "success",
                "Background asset version released to internal testers",
                "backgroundAssetVersions",
            )
        if kind in ALTERNATIVE:
            return self._alternative(d, kind)
        if "ping" in kind:
            return self._note(d, "webhook.ping", "info", "App Store Connect webhook connected", None)
        shown = clip(d.type, 80)
        return Ignored(f"App Store Connect event type {shown!r} is not handled", event=shown)

    def enrich(self, n: Notification, app: AppSettings) -> Enrichment | None:
        """With ``ASC_ISSUER_ID``, ``ASC_KEY_ID`` and ``ASC_PRIVATE_KEY``: names from the API."""
        if app.asc_issuer_id is None or app.asc_key_id is None or app.asc_private_key is None:
            return None
        if lookup_target(n) is None:
            return None  # a ping, a background asset: nothing the API would add
        from translators.sources import _asc_api  # JWT, cryptography and requests only when used

        key = _asc_api.Credentials(app.asc_issuer_id, app.asc_key_id, app.asc_private_key.get_secret_value())
        return _asc_api.enrich(n, key, app.asc_api_url)

    def replay(self, n: Notification, answers: Mapping[str, Any]) -> Notification:
        from translators.sources import _asc_api

        return _asc_api.recorded(n, dict(answers))

    def _common(self, d: Data, event: str, outcome: str, title: str, resource: str | None) -> dict[str, Any]:
        """What every message has; ``resource``: the instance's type, which keys its message (the
        payload's own spelling of it is not always Apple's: see the module's docstring)."""
        instance = d.instance
        return {
            "source": self.name,
            "source_label": self.label,
            "event": event,
            "outcome": outcome,
            "emoji": EMOJI.get(event),
            "title": title,
            "summary": f"{self.label}: {title}",
            # data.id is the event's own id: a redelivery of the same event has it too.
            "event_id": f"appstoreconnect:{d.id}",
            "message_key": f"appstoreconnect:{resource}:{instance.id}" if resource and instance.id else None,
            "sent_at": d.attributes.timestamp,
            # Until the API says which app this is, the way in is the list of apps.
            "url": web_url(None),
            "links": [Link(label=OPEN_ASC, url=web_url(None))],
        }

    def _state_change(self, d: Data, instance_type: str, subject: str) -> Notification:
        new, old = state_key(d.attributes.new), state_key(d.attributes.old)
        shown = words(new) or "an unknown state"
        if new in STATE_EVENTS:
            event, outcome, what = STATE_EVENTS[new]
            title = f"{subject} {what}"
        else:
            event, outcome = "release.updated", UPDATE_OUTCOMES.get(new, "info")
            title = f"{subject}: {shown}"
        common = self._common(d, event, outcome, title, instance_type)
        return Notification.model_validate(
            common | {"status_text": shown, "facts": [Fact("Status", _change(old, new))]}
        )

    def _upload(self, d: Data) -> Notification | Ignored:
        new, old = state_key(d.attributes.new), state_key(d.attributes.old)
        if new not in UPLOAD_EVENTS:
            return Ignored(
                f"App Store Connect build upload state {clip(new or 'missing', 60)!r}: nothing to tell yet"
                f" (only {', '.join(UPLOAD_EVENTS)} are sent on)",
                event=clip(d.type, 80),
            )
        event, outcome, what = UPLOAD_EVENTS[new]
        common = self._common(d, event, outcome, f"Build {what}", "buildUploads")
        return Notification.model_validate(
            common
            | {
                "build_id": d.instance.id,
                "status_text": words(new),
                "facts": [Fact("Status", _change(old, new))],
            }
        )

    def _feedback(self, d: Data, instance_type: str, event: str, title: str) -> Notification:
        outcome = "failure" if event == "crash.reported" else "info"
        return Notification.model_validate(self._common(d, event, outcome, title, instance_type))

    def _note(self, d: Data, event: str, outcome: str, title: str, resource: str | None) -> Notification:
        common = self._common(d, event, outcome, title, resource)
        if event == "webhook.ping":
            common["summary"] = f"{self.label}: webhook test received; its events will be posted here"
        return Notification.model_validate(common)

    def _alternative(self, d: Data, kind: str) -> Notification:
        a = d.attributes
        count = len(a.territories)
        where = f" in {count} territor{'y' if count == 1 else 'ies'}" if count else ""
        if kind == "alternativedistributionpackageversioncreated":
            title = "Alternative distribution package version created"
        elif kind == "alternativedistributionpackageavailableupdated":
            state = "available" if a.available else "no longer available"
            title = f"Alternative distribution package {state}{where}"
        else:
            title = f"Alternative distribution {'available' if a.available else 'unavailable'}{where}"
        facts = [Fact("Territories", clip(", ".join(a.territories), 300), code=True)] if a.territories else []
        common = self._common(d, "release.updated", "info", title, None)
        app_id = (a.appId or "").strip() or None
        return Notification.model_validate(
            common
            | {
                "app_id": app_id,
                "app_key": app_id,
                "url": web_url(app_id, "distribution") if app_id else web_url(None),
                "links": [
                    Link(label="Open app" if app_id else OPEN_ASC, url=web_url(app_id, "distribution"))
                ],
                "facts": facts,
            }
        )


def lookup_target(n: Notification) -> tuple[str, str] | None:
    """What the API can say more about: ``(resource type, id)`` from the message key, ``("apps", id)``
    for an event that names only its app, or None."""
    if n.message_key:
        _, kind, resource = n.message_key.split(":", 2)
        if kind in LOOKED_UP:
            return kind, resource
    if n.app_id:
        return "apps", n.app_id
    return None


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v is not None and v.strip()), None)


def _change(old: str, new: str) -> str:
    """'In Review → Rejected', the old state beside the new; just the new one when there was none."""
    if old and old != new:
        return f"{words(old)} → {words(new)}"
    return words(new) or "unknown"


SOURCE = AppStoreConnect()
