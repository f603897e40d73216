"""Expo EAS webhooks: builds and store submissions of an Expo project.

Docs: https://docs.expo.dev/eas/webhooks/ (expo/expo ``docs/pages/eas/webhooks.mdx``). A webhook
belongs to one project and one event, ``BUILD`` or ``SUBMIT`` (``eas webhook:create``); it is sent
when the build or submission completes, with ``status`` ``finished``, ``errored`` or ``canceled``.
There is no event header: a build has ``buildDetailsPageUrl``, a submission
``submissionDetailsPageUrl``. Deliveries are signed with the webhook's secret:
``expo-signature: sha1=<hex HMAC-SHA1 of the body>`` (see ``SIGNING``); EAS resends anything
answered outside 200-399 a few times, with back-off.

No branch is sent (only the commit); the build profile is the workflow. A retried build is a new
build (``parentBuildId``), so it is a new event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from translators.errors import FieldError, Ignored, PayloadInvalid
from translators.formats import clip
from translators.model import Fact, Link, Notification, Timestamp, duration_between
from translators.sources import Loose, Signing, platform_name, validate_model

SIGNING = Signing(header="expo-signature", setting="EAS_WEBHOOK_SECRET", digest="sha1", prefix="sha1=")

#: A build's status -> (event, outcome, verb).
BUILD_STATUSES: dict[str, tuple[str, str, str]] = {
    "finished": ("build.succeeded", "success", "succeeded"),
    "errored": ("build.failed", "failure", "failed"),
    "canceled": ("build.canceled", "canceled", "was canceled"),
}
#: A submission's status -> (event, outcome, what happened). Submitting uploads a build to a store.
SUBMIT_STATUSES: dict[str, tuple[str, str, str]] = {
    "finished": ("build.uploaded", "success", "submitted to {store}"),
    "errored": ("build.upload_failed", "failure", "submission to {store} failed"),
    "canceled": ("build.canceled", "canceled", "submission to {store} was canceled"),
}
STORES = {"ios": "App Store Connect", "android": "Google Play"}
EXPO = "https://expo.dev"


class Error(Loose):
    message: str | None = None
    errorCode: str | None = None


class Metadata(Loose):
    appName: str | None = None
    appIdentifier: str | None = None
    appVersion: str | None = None
    appBuildVersion: str | None = None
    buildProfile: str | None = None
    distribution: str | None = None
    channel: str | None = None
    gitCommitHash: str | None = None
    gitCommitMessage: str | None = None
    username: str | None = None
    message: str | None = None


class Artifacts(Loose):
    buildUrl: str | None = None


class Common(Loose):
    id: str = Field(min_length=1)
    accountName: str | None = None
    projectName: str = Field(min_length=1)
    appId: str | None = None
    platform: str | None = None
    status: str = Field(min_length=1)
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None
    completedAt: Timestamp | None = None


class BuildPayload(Common):
    buildDetailsPageUrl: str | None = None
    artifacts: Artifacts = Field(default_factory=Artifacts)
    metadata: Metadata = Field(default_factory=Metadata)
    error: Error | None = None
    workerStartedAt: Timestamp | None = None


class SubmissionInfo(Loose):
    error: Error | None = None
    logsUrl: str | None = None


class SubmitPayload(Common):
    submissionDetailsPageUrl: str | None = None
    submissionInfo: SubmissionInfo = Field(default_factory=SubmissionInfo)
    turtleBuildId: str | None = None


class Eas:
    name: ClassVar[str] = "eas"
    label: ClassVar[str] = "Expo EAS"
    docs: ClassVar[str] = "https://docs.expo.dev/eas/webhooks/"
    signature: ClassVar[str] = (
        "an 'expo-signature' header, or a 'buildDetailsPageUrl' or 'submissionDetailsPageUrl' string"
    )
    signing: ClassVar[Signing] = SIGNING

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        if SIGNING.value(headers):
            return True
        return isinstance(payload.get("buildDetailsPageUrl"), str) or isinstance(
            payload.get("submissionDetailsPageUrl"), str
        )

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        if "submissionDetailsPageUrl" in payload or "submissionInfo" in payload:
            return self._submission(validate_model(SubmitPayload, payload, "EAS submit"))
        if "buildDetailsPageUrl" in payload or "artifacts" in payload or "metadata" in payload:
            return self._build(validate_model(BuildPayload, payload, "EAS build"))
        raise PayloadInvalid(
            "not an EAS webhook payload",
            [
                FieldError(
                    "(body)",
                    "expected buildDetailsPageUrl (a build) or submissionDetailsPageUrl (a submission)",
                )
            ],
        )

    def _common(self, p: Common, kind: str, status: str) -> dict[str, Any]:
        platform = platform_name(p.platform)
        project = f"@{p.accountName}/{p.projectName}" if p.accountName else p.projectName
        return {
            "source": self.name,
            "source_label": self.label,
            "app_key": project,
            # EAS builds each platform apart: an Android failure is not mended by an iOS success.
            "app_id": f"{p.appId or project}:{(p.platform or '').lower()}",
            "platform": platform,
            "build_id": p.id,
            # A retry is a new build or submission with a new id; a resend of this one is a duplicate.
            "event_id": f"eas:{kind}:{p.id}:{status}",
            "message_key": f"eas:{kind}:{p.id}",
            "finished_at": p.completedAt or p.updatedAt,
        }

    def _build(self, p: BuildPayload) -> Notification | Ignored:
        status = p.status.strip().lower()
        if status not in BUILD_STATUSES:
            shown = clip(status, 40)
            return Ignored(
                f"EAS build status {shown!r} is not final; only {', '.join(BUILD_STATUSES)} are sent on",
                event=shown,
            )
        event, outcome, verb = BUILD_STATUSES[status]
        m = p.metadata
        version = " ".join(
            x
            for x in (
                clip(m.appVersion, 30) if m.appVersion else "",
                f"({clip(m.appBuildVersion, 20)})" if m.appBuildVersion else "",
            )
            if x
        )
        platform = platform_name(p.platform)
        kind = " ".join(x for x in (platform, "build" if platform else "Build", version) if x)
        title = f"{kind} {verb}"
        app = (m.appName or "").strip() or p.projectName
        links = [Link(label="Open build", url=p.buildDetailsPageUrl)] if p.buildDetailsPageUrl else []
        if outcome == "success" and p.artifacts.buildUrl:
            links.append(Link(label="Download", url=p.artifacts.buildUrl))
        # The app identifier, distribution and update channel are left out: identifiers and
        # settings that tell nobody anything at a glance (the profile says the kind of build).
        # EAS's metadata names no git remote, so the commit is not linked.
        facts = [Fact("Message", m.message.strip())] if m.message and m.message.strip() else []
        error = p.error if outcome == "failure" else None
        started = p.workerStartedAt or p.createdAt
        return Notification.model_validate(
            self._common(p, "build", status)
            | {
                "event": event,
                "outcome": outcome,
                "title": title,
                "summary": f"{app}: EAS {title}",
                "app": app,
                "version": m.appVersion,
                "build_number": m.appBuildVersion,
                "workflow": m.buildProfile,
                "fact_labels": [("Workflow", "Profile")],
                "commit": m.gitCommitHash,
                "commit_message": m.gitCommitMessage,
                "triggered_by": m.username,
                "people": (m.username,) if m.username else (),
                "url": p.buildDetailsPageUrl,
                "links": links,
                "started_at": started,
                "duration_seconds": duration_between(started, p.completedAt or p.updatedAt),
                "facts": facts,
                **_error_details(error),
            }
        )

    def _submission(self, p: SubmitPayload) -> Notification | Ignored:
        status = p.status.strip().lower()
        if status not in SUBMIT_STATUSES:
            shown = clip(status, 40)
            return Ignored(f"EAS submission status {shown!r} is not final", event=shown)
        event, outcome, what = SUBMIT_STATUSES[status]
        store = STORES.get((p.platform or "").strip().lower(), "the store")
        platform = platform_name(p.platform)
        title = f"{platform + ' build' if platform else 'Build'} {what.format(store=store)}"
        # Short labels: two buttons side by side must fit a phone.
        links = (
            [Link(label="Submission", url=p.submissionDetailsPageUrl)] if p.submissionDetailsPageUrl else []
        )
        if p.turtleBuildId and p.accountName:
            project = (
                f"{EXPO}/accounts/{quote(p.accountName, safe='')}/projects/{quote(p.projectName, safe='')}"
            )
            build = f"{project}/builds/{quote(p.turtleBuildId, safe='')}"
            links.append(Link(label="Open build", url=build))
        if p.submissionInfo.logsUrl:
            links.append(Link(label="Logs", url=p.submissionInfo.logsUrl))
        return Notification.model_validate(
            self._common(p, "submit", status)
            | {
                "event": event,
                "outcome": outcome,
                "emoji": "📤" if outcome == "success" else None,
                "title": title,
                "summary": f"{p.projectName}: {title}",
                "app": p.projectName,
                "url": p.submissionDetailsPageUrl,
                "links": links,
                **_error_details(p.submissionInfo.error if outcome == "failure" else None),
            }
        )


#: An error longer than this (or of several lines) is also kept whole in the details.
ERROR_CHARS = 160


def _error_details(error: Error | None) -> dict[str, Any]:
    """What went wrong: EAS's message and its error code as the message's ``error``; a long one
    is also kept whole in the details."""
    if error is None or not ((error.message or "").strip() or (error.errorCode or "").strip()):
        return {}
    message = (error.message or "").strip()
    code = f"({error.errorCode.strip()})" if error.errorCode and error.errorCode.strip() else ""
    said = {"error": " ".join(x for x in (" ".join(message.split()), code) if x)}
    if "\n" in message or len(said["error"]) > ERROR_CHARS:
        said |= {"details_title": "Error", "details": "\n".join(x for x in (message, code) if x)}
    return said


SOURCE = Eas()
