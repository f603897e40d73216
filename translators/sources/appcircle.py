"""Appcircle webhooks: builds, testing distribution, store publishing, the enterprise store.

Docs: https://docs.appcircle.io/account/my-organization/notifications/webhooks. Every delivery is
one envelope: ``deliveryId``, ``timestamp``, ``action`` (``<Scope>|<Event>``), ``title`` (the event
as Appcircle's UI names it, "Build Started"), ``message`` (a sentence; the only place the branch
and the profile's name appear), ``item`` (ids) and ``links`` (``detail``, ``viewlogs``).

Appcircle documents one ``action`` string, ``Build|BuildStart``, and the other events only by their
UI labels (Build Success, Build Complete with Warnings, Build Failed, Build Canceled, Build
Timeout; New Version Uploaded for Distribution, App Shared for Testing Distribution; Publish Flow
Succeeded, A Version is Rejected on Publish...). So an event is recognised by the words of its
action and title, not by an exact string: ``Build|BuildSuccess``, ``Build|BuildSucceeded`` and a
title "Build Success" all read as a success. What is not recognised is answered 200 ``ignored``
with its title. Deliveries are signed with the webhook's secret: ``ac_signature`` is the hex
HMAC-SHA256 of the body, no prefix (see ``SIGNING``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from translators.errors import Ignored
from translators.formats import clip
from translators.model import Link, Notification, Timestamp
from translators.sources import Loose, Signing, validate_model

SIGNING = Signing(header="ac_signature", setting="APPCIRCLE_WEBHOOK_SECRET", digest="sha256")

#: (scope words, event words, event, outcome, emoji, title), the first match wins: scope and event
#: are the action's two halves, or the title, squashed to lower-case letters ("buildstart").
RULES: tuple[tuple[str, tuple[str, ...], str, str, str | None, str], ...] = (
    ("build", ("fetch", "testreport", "retention", "cache"), "", "", None, ""),
    ("build", ("warning",), "build.succeeded", "warning", "⚠️", "Build succeeded with warnings"),
    ("build", ("success", "succeeded", "successful"), "build.succeeded", "success", None, "Build succeeded"),
    ("build", ("fail",), "build.failed", "failure", None, "Build failed"),
    ("build", ("timeout", "timedout"), "build.failed", "failure", "⏱️", "Build timed out"),
    ("build", ("cancel",), "build.canceled", "canceled", None, "Build was canceled"),
    ("build", ("start",), "build.started", "running", None, "Build started"),
    ("distribut", ("shared",), "release.published", "success", "📲", "Shared with testers"),
    (
        "distribut",
        ("uploaded", "added"),
        "build.uploaded",
        "info",
        None,
        "New version for testing distribution",
    ),
    ("publish", ("reject",), "review.rejected", "failure", "⛔", "Version rejected on publish"),
    (
        "publish",
        ("flowsucceeded", "flowsuccess"),
        "release.published",
        "success",
        "🚀",
        "Publish flow succeeded",
    ),
    ("publish", ("flowfailed",), "release.updated", "failure", None, "Publish flow failed"),
    ("publish", ("flowtimedout", "flowtimeout"), "release.updated", "failure", "⏱️", "Publish flow timed out"),
    (
        "publish",
        ("flowcanceled", "flowcancelled"),
        "release.updated",
        "canceled",
        None,
        "Publish flow canceled",
    ),
    ("publish", ("storestatus",), "release.updated", "info", None, "Store status changed"),
    ("publish", ("deployed", "uploaded"), "build.uploaded", "info", None, "New version in Publish"),
    (
        "enterprise",
        ("shared", "deployed"),
        "release.published",
        "success",
        "📲",
        "On the Enterprise App Store",
    ),
    ("enterprise", ("uploaded",), "build.uploaded", "info", None, "New version in the Enterprise App Store"),
    (
        "signing",
        ("expiration", "expiring", "reminder"),
        "certificate.expiring",
        "warning",
        "⏰",
        "Expiring soon",
    ),
)
#: "Build started for the develop branch for the profile pr_mr_tag_test https://...": the docs' message.
MESSAGE = re.compile(
    r"for the (?P<branch>\S.*?) branch for the profile (?P<profile>\S.*?)(?:\s+https?://\S+)?\s*$"
)
_NOT_LETTERS = re.compile(r"[^a-z]+")
#: A message that becomes the title is cut here (the whole stays in the details).
TITLE_CHARS = 150
#: The all-zero id Appcircle sends for a build that has none yet.
NO_ID = "00000000-0000-0000-0000-000000000000"


class Item(Loose):
    id: str | None = None
    organizationId: str | None = None
    profileId: str | None = None
    branchId: str | None = None
    buildId: str | None = None
    commitId: str | None = None
    taskId: str | None = None


class Links(Loose):
    detail: str | None = None
    viewlogs: str | None = None


class Envelope(Loose):
    deliveryId: str | None = None
    timestamp: Timestamp | None = None
    action: str = Field(min_length=1)
    title: str | None = None
    message: str | None = None
    item: Item = Field(default_factory=Item)
    links: Links = Field(default_factory=Links)


class Appcircle:
    name: ClassVar[str] = "appcircle"
    label: ClassVar[str] = "Appcircle"
    docs: ClassVar[str] = "https://docs.appcircle.io/account/my-organization/notifications/webhooks"
    signature: ClassVar[str] = (
        "an 'ac_signature' header, or an 'action' like 'Build|BuildStart' with an 'item'"
    )
    signing: ClassVar[Signing] = SIGNING

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        if SIGNING.value(headers):
            return True
        action = payload.get("action")
        return isinstance(action, str) and "|" in action and isinstance(payload.get("item"), Mapping)

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        p = validate_model(Envelope, payload, "Appcircle webhook")
        scope, _, event = p.action.partition("|")
        words = _squash(event) or _squash(p.title)
        titled = _squash(p.title)
        for scope_words, event_words, name, outcome, emoji, title in RULES:
            if scope_words in _squash(scope) and any(w in words or w in titled for w in event_words):
                if not name:
                    break
                return self._notification(p, name, outcome, emoji, title)
        shown = clip((p.title or "").strip() or p.action, 80)
        return Ignored(f"Appcircle event {shown!r} is not sent on", event=clip(p.action, 80))

    def _notification(
        self, p: Envelope, event: str, outcome: str, emoji: str | None, title: str
    ) -> Notification:
        found = MESSAGE.search((p.message or "").strip())
        branch = found["branch"].strip() if found else None
        profile = found["profile"].strip() if found else None
        item = p.item
        run = next((x for x in (item.taskId, item.id, item.buildId) if x and x != NO_ID), None)
        subject = run or p.deliveryId or "?"
        kind = event.split(".")[0]
        # ``detail`` is the profile's page (build/detail/<profileId>), not the build's: Appcircle
        # has no page of one build, but ``viewlogs`` opens that build (its logs) over the profile,
        # so a build's message opens it first.
        own = p.links.viewlogs if kind == "build" and event != "build.uploaded" else None
        links = [Link(label="Open build", url=own)] if own else []
        if p.links.detail:
            links.append(Link(label="Open profile", url=p.links.detail))
        # A message of another shape than the builds' is the only thing said about the event:
        # the title of a distribution, publish or signing event (the rule's words are then the
        # status), the details of a build, whose title says its outcome. Never a fact beside a
        # heading that says the same.
        rest = re.sub(r"\s+https?://\S+\s*$", "", (p.message or "").strip()) if not found else ""
        status = (p.title or "").strip() or None
        said: dict[str, Any] = {}
        first = rest.splitlines()[0].strip() if rest else ""
        if first and kind != "build":
            status = title
            title = clip(first, TITLE_CHARS)
            if title != rest:
                said = {"details": rest}
        elif rest:
            said = {"details": rest}
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": event,
                "outcome": outcome,
                "emoji": emoji,
                "title": title,
                "summary": f"{profile or self.label}: {title}",
                "app": profile,
                "app_id": item.profileId,
                "app_key": item.profileId,
                "branch": branch,
                "build_id": run,
                # The same event of the same build is one event, whichever delivery brings it.
                "event_id": f"appcircle:{clip(p.action, 80)}:{subject}",
                "message_key": f"appcircle:{kind}:{run}" if run and kind == "build" else None,
                "status_text": status,
                "url": own or p.links.detail,
                "links": links,
                "sent_at": p.timestamp,
                **said,
            }
        )


def _squash(text: str | None) -> str:
    """``Build|BuildStart``'s ``BuildStart``, or "Build Started", as ``buildstart(ed)``: letters only."""
    return _NOT_LETTERS.sub("", (text or "").lower())


SOURCE = Appcircle()
