"""Ionic Appflow automation webhooks: package (native) and web (deploy) builds.

Docs: https://ionic.io/docs/appflow/automation/webhooks (seed 002). Appflow POSTs when an
automation's build changes state and retries up to five times, with growing delay, until it gets
a 200; so everything it sends that we handle or deliberately skip (the non-final states) is
answered 200. No signature is documented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from translators.errors import Ignored
from translators.formats import clip
from translators.model import Fact, Link, Notification, Timestamp, duration_between
from translators.sources import platform_name, validate_model

DASHBOARD_URL = "https://dashboard.ionicframework.com"

#: Final states -> (event, outcome, verb). created, pending and running are not final.
FINAL_STATES: dict[str, tuple[str, str, str]] = {
    "success": ("build.succeeded", "success", "succeeded"),
    "failed": ("build.failed", "failure", "failed"),
    "canceled": ("build.canceled", "canceled", "was canceled"),
}
State = Literal["created", "pending", "running", "success", "failed", "canceled"]

#: Label of the signed download link: the reader may see the message after it stopped working.
#: Short: two buttons side by side must fit a phone.
DOWNLOAD_LABEL = "Download (24h)"

_model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, defer_build=True)  # built on first use


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class StatePayload(BaseModel):
    """Just enough to tell a final state from one we skip."""

    model_config = _model_config

    state: State

    _state = field_validator("state", mode="before")(_lower)


class Person(BaseModel):
    model_config = _model_config

    name: str | None = None
    username: str | None = None

    def keys(self) -> tuple[str, ...]:
        """How MENTIONS may name this person: the username first, then the full name."""
        return tuple(k.strip() for k in (self.username, self.name) if k and k.strip())

    @property
    def display(self) -> str | None:
        if self.name and self.username and self.name != self.username:
            return f"{self.name} ({self.username})"
        return self.name or self.username or None


class Channel(BaseModel):
    """The Deploy (live update) channel a web automation publishes to."""

    model_config = _model_config

    id: str | None = None
    name: str | None = None


class Automation(BaseModel):
    model_config = _model_config

    id: str | None = None
    name: str = Field(min_length=1)
    # The documented payload spells it "buidType"; accept the corrected spelling too.
    buildType: str | None = Field(default=None, validation_alias=AliasChoices("buildType", "buidType"))
    environmentName: str | None = None
    nativeConfigName: str | None = None
    platform: str | None = None
    profile: str | None = None
    channel: Channel | None = None
    creator: Person | None = None


class BuildInfo(BaseModel):
    model_config = _model_config

    id: str | None = None
    state: str | None = None
    job_type: str | None = None


class App(BaseModel):
    model_config = _model_config

    id: str | None = None
    slug: str | None = None
    name: str | None = None


class Commit(BaseModel):
    model_config = _model_config

    sha: str | None = None
    note: str | None = None
    ref: str | None = None
    refType: str | None = None
    user: Person | None = None


class BuildPayload(BaseModel):
    """The body of a package or web automation webhook (both in the seed)."""

    model_config = _model_config

    state: State
    id: str = Field(min_length=1)
    automationId: str | None = None
    automation: Automation
    environmentName: str | None = None
    type: str | None = None
    profile: str | None = None
    platform: str | None = None
    downloadUrl: str | None = None
    appId: str | None = None
    created: Timestamp | None = None
    started: Timestamp | None = None
    finished: Timestamp | None = None
    buildInfo: BuildInfo | None = None
    app: App | None = None
    commit: Commit | None = None

    _state = field_validator("state", mode="before")(_lower)

    @field_validator("created", "started", "finished", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        # The seed's channel timestamps read "...Z+00:00" (two zones); if a build timestamp ever
        # comes like that, read it as UTC rather than refuse a payload Appflow would resend.
        if isinstance(value, str):
            return re.sub(r"Z([+-]\d\d:?\d\d)$", r"\1", value.strip())
        return value

    @property
    def is_web(self) -> bool:
        job = (self.buildInfo.job_type if self.buildInfo else None) or ""
        if job:
            return job == "snapshot"
        return self.automation.channel is not None and not (self.platform or self.automation.platform)

    @property
    def platform_name(self) -> str | None:
        if self.is_web:
            return "Web"
        job = (self.buildInfo.job_type if self.buildInfo else None) or ""
        from_job = job.removeprefix("package-") if job.startswith("package-") else None
        return platform_name(self.platform or self.automation.platform or from_job)


class Appflow:
    name: ClassVar[str] = "appflow"
    label: ClassVar[str] = "Appflow"
    docs: ClassVar[str] = "https://ionic.io/docs/appflow/automation/webhooks"
    signature: ClassVar[str] = "a 'state' string and an 'automation' or 'buildInfo' object"

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        return isinstance(payload.get("state"), str) and (
            isinstance(payload.get("automation"), Mapping) or isinstance(payload.get("buildInfo"), Mapping)
        )

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        # The state first: a build that is not finished is skipped (200) whatever else it holds,
        # so that Appflow does not resend it five times.
        state = validate_model(StatePayload, payload, "Appflow automation").state
        if state not in FINAL_STATES:
            return Ignored(
                f"Appflow build state {state!r} is not final; only success, failed and canceled are sent on",
                event=state,
            )
        return self._notification(validate_model(BuildPayload, payload, "Appflow automation"))

    def _notification(self, b: BuildPayload) -> Notification:
        event, outcome, verb = FINAL_STATES[b.state]
        a = b.automation
        app_id = b.appId or (b.app.id if b.app else None)
        app = (b.app.name or b.app.slug if b.app else None) or app_id or "App"
        build_number = b.buildInfo.id if b.buildInfo and b.buildInfo.id else None
        build_type = None if b.is_web else (b.type or a.buildType)
        platform = b.platform_name
        # "iOS build #4527329 failed": the build type ("app-store", "debug") is Appflow's word for
        # the signing setup, which the reader does not need in the title, nor as a fact.
        # Payload words are clipped here because titles are not clipped later.
        kind = f"{clip(platform, 40)} build" if platform else "Build"
        number = f" #{clip(build_number, 20)}" if build_number else ""
        channel = a.channel.name.strip() if a.channel and a.channel.name and a.channel.name.strip() else None
        # A web build with a live update channel is a deploy: the title says where it went.
        deploy = b.is_web and channel is not None and b.state in ("success", "failed")
        if deploy:
            verb = {"success": "deployed to", "failed": "failed to deploy to"}[b.state]
            verb = f"{verb} {clip(channel or '', 40)}"
        title = f"{kind}{number} {verb}"

        commit = b.commit
        branch = tag = None
        if commit and commit.ref:
            if (commit.refType or "branch").lower() == "tag":
                tag = commit.ref
            else:
                branch = commit.ref

        # The app's builds list, not the build's own page: the webhook carries no build page URL and
        # Appflow documents no address of one build (guessing one could open a 404).
        builds_url = f"{DASHBOARD_URL}/app/{quote(app_id, safe='')}/build/builds" if app_id else None
        links = []
        if builds_url:
            links.append(Link(label="Open builds", url=builds_url))
        if b.downloadUrl and outcome == "success":
            links.append(Link(label=DOWNLOAD_LABEL, url=b.downloadUrl))

        facts: list[Fact] = []
        if channel and not deploy:
            facts.append(Fact("Channel", channel, code=True))
        environment = b.environmentName or a.environmentName
        if a.nativeConfigName and a.nativeConfigName != environment:
            facts.append(Fact("Config", a.nativeConfigName, code=True))
        profile = b.profile or a.profile
        if profile and profile != build_type and outcome == "failure":
            # Appflow's "signing certificate", where a failed build may have gone wrong; on any
            # other build it is noise. With debug builds it merely repeats the build type.
            facts.append(Fact("Certificate", profile))
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": event,
                "outcome": outcome,
                "title": title,
                "summary": f"{app}: {kind.lower() if not platform else kind}{number} {verb}"
                f" (Appflow automation {a.name})",
                "app": app,
                "app_id": app_id,
                "app_key": app_id,
                "platform": platform,
                "build_number": build_number,
                "build_id": b.id,
                # Appflow retries a webhook up to five times: the same build and state is one event.
                "event_id": f"appflow:{b.id}:{b.state}",
                "message_key": f"appflow:{b.id}",
                "branch": branch,
                "tag": tag,
                "workflow": a.name,
                "environment": environment,
                "commit": commit.sha if commit else None,
                "commit_message": commit.note if commit else None,
                "author": commit.user.display if commit and commit.user else None,
                "people": commit.user.keys() if commit and commit.user else (),
                "url": builds_url,
                "links": links,
                "started_at": b.started,
                "finished_at": b.finished,
                "duration_seconds": duration_between(b.started, b.finished),
                "facts": facts,
                "fact_labels": [("Workflow", "Automation")],
            }
        )


SOURCE = Appflow()
