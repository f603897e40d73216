"""Xcode Cloud webhooks: a build created, started and completed.

Docs: https://developer.apple.com/documentation/xcode/configuring-webhooks-in-xcode-cloud and
https://developer.apple.com/documentation/xcode/webhook-payload. A webhook is set per Xcode Cloud
product (App Store Connect -> the app -> Xcode Cloud -> Settings -> Webhooks) and gets every event;
none is signed. Xcode Cloud resends a delivery until it is answered with a success within 30 s, so
everything it sends that we handle or skip is answered 200, and each event has an identity.

The payload is one JSON object of JSON:API-like parts (``ciBuildRun``, ``ciWorkflow``,
``ciProduct``, ``scmGitReference``...). Keys Xcode Cloud does not know yet are left out (a started
build has no ``finishedDate`` or ``completionStatus``); early payloads had no ``metadata``, so
without ``eventType`` the build run's ``executionProgress`` says which event it is. There is no
commit message and no app name: the product's name stands for the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from translators.errors import FieldError, Ignored, PayloadInvalid
from translators.formats import clip
from translators.model import Fact, Link, Notification, Timestamp, duration_between, safe_url
from translators.sources import Loose, _repo, platform_name, validate_model
from translators.sources._apple import state_key, web_url

#: executionProgress -> the event type it stands for, for payloads without ``metadata``.
PROGRESS_EVENT_TYPES = {"PENDING": "BUILD_CREATED", "RUNNING": "BUILD_STARTED", "COMPLETE": "BUILD_COMPLETED"}
#: completionStatus of BUILD_COMPLETED -> (event, outcome, verb). SKIPPED builds never ran.
COMPLETIONS: dict[str, tuple[str, str, str]] = {
    "SUCCEEDED": ("build.succeeded", "success", "succeeded"),
    "FAILED": ("build.failed", "failure", "failed"),
    "ERRORED": ("build.failed", "failure", "errored"),
    "CANCELED": ("build.canceled", "canceled", "was canceled"),
    "CANCELLED": ("build.canceled", "canceled", "was canceled"),
}
#: Action outcomes worth naming on a failed build: what failed.
FAILED_ACTIONS = frozenset({"FAILED", "ERRORED"})
#: Action names shown at most (a workflow has a handful).
MAX_ACTIONS_SHOWN = 4


class Person(Loose):
    displayName: str | None = None


class Commit(Loose):
    commitSha: str | None = None
    author: Person | None = None
    htmlUrl: str | None = None


class RunAttributes(Loose):
    number: int | None = Field(default=None, ge=0)
    createdDate: Timestamp | None = None
    startedDate: Timestamp | None = None
    finishedDate: Timestamp | None = None
    sourceCommit: Commit | None = None
    isPullRequestBuild: bool | None = None
    executionProgress: str | None = None
    completionStatus: str | None = None


class BuildRun(Loose):
    id: str = Field(min_length=1)
    attributes: RunAttributes = Field(default_factory=RunAttributes)


class IssueCounts(Loose):
    analyzerWarnings: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    testFailures: int = Field(default=0, ge=0)
    warnings: int = Field(default=0, ge=0)


class ActionAttributes(Loose):
    name: str | None = None
    actionType: str | None = None
    issueCounts: IssueCounts = Field(default_factory=IssueCounts)
    completionStatus: str | None = None


class Action(Loose):
    attributes: ActionAttributes = Field(default_factory=ActionAttributes)
    #: ``{"builds": {"id", "type", "attributes": {"platform": "IOS"}}}`` once the action built something.
    relationships: dict[str, Any] = Field(default_factory=dict)

    @property
    def platform(self) -> str | None:
        builds = self.relationships.get("builds")
        for build in builds if isinstance(builds, list) else [builds]:
            attributes = build.get("attributes") if isinstance(build, dict) else None
            value = attributes.get("platform") if isinstance(attributes, dict) else None
            if isinstance(value, str) and value.strip():
                return value
        return None


class NameAttributes(Loose):
    name: str | None = None


class Named(Loose):
    """``ciWorkflow``, ``ciProduct``: what matters of them is their name."""

    id: str | None = None
    attributes: NameAttributes = Field(default_factory=NameAttributes)


class App(Loose):
    #: The app's Apple ID (numeric, as a string), as in App Store Connect's addresses.
    id: str | None = None


class PullRequestAttributes(Loose):
    title: str | None = None
    number: int | None = Field(default=None, ge=0)
    htmlUrl: str | None = None
    sourceBranchName: str | None = None
    destinationBranchName: str | None = None


class PullRequest(Loose):
    attributes: PullRequestAttributes = Field(default_factory=PullRequestAttributes)


class GitReferenceAttributes(Loose):
    name: str | None = None
    kind: str | None = None


class GitReference(Loose):
    attributes: GitReferenceAttributes = Field(default_factory=GitReferenceAttributes)


class MetadataAttributes(Loose):
    eventType: str | None = None
    createdDate: Timestamp | None = None


class RepositoryAttributes(Loose):
    httpCloneUrl: str | None = None
    sshCloneUrl: str | None = None


class Repository(Loose):
    attributes: RepositoryAttributes = Field(default_factory=RepositoryAttributes)


class Metadata(Loose):
    attributes: MetadataAttributes = Field(default_factory=MetadataAttributes)


class Payload(Loose):
    metadata: Metadata = Field(default_factory=Metadata)
    app: App = Field(default_factory=App)
    ciWorkflow: Named = Field(default_factory=Named)
    ciProduct: Named = Field(default_factory=Named)
    ciBuildRun: BuildRun
    ciBuildActions: list[Action] = Field(default_factory=list)
    scmPullRequest: PullRequest | None = None
    scmGitReference: GitReference = Field(default_factory=GitReference)
    scmRepository: Repository = Field(default_factory=Repository)

    @property
    def event_type(self) -> str | None:
        given = state_key(self.metadata.attributes.eventType)
        if given and given != "UNRECOGNIZED":
            return given
        progress = state_key(self.ciBuildRun.attributes.executionProgress)
        return PROGRESS_EVENT_TYPES.get(progress) or given or None


class XcodeCloud:
    name: ClassVar[str] = "xcodecloud"
    label: ClassVar[str] = "Xcode Cloud"
    docs: ClassVar[str] = "https://developer.apple.com/documentation/xcode/webhook-payload"
    signature: ClassVar[str] = "a 'ciBuildRun' object with a 'ciWorkflow' or 'ciProduct' object"

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        return isinstance(payload.get("ciBuildRun"), Mapping) and (
            isinstance(payload.get("ciWorkflow"), Mapping) or isinstance(payload.get("ciProduct"), Mapping)
        )

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        p = validate_model(Payload, payload, "Xcode Cloud")
        event_type = p.event_type
        if event_type is None:
            raise PayloadInvalid(
                "not an Xcode Cloud webhook payload: it does not say which build event it is",
                [
                    FieldError(
                        "metadata.attributes.eventType",
                        "required: BUILD_CREATED, BUILD_STARTED or BUILD_COMPLETED (or"
                        " ciBuildRun.attributes.executionProgress)",
                    )
                ],
            )
        if event_type == "BUILD_CREATED":
            return self._notification(p, event_type, "build.queued", "running", "queued")
        if event_type == "BUILD_STARTED":
            return self._notification(p, event_type, "build.started", "running", "started")
        if event_type != "BUILD_COMPLETED":
            shown = clip(event_type, 60)
            return Ignored(f"Xcode Cloud event type {shown!r} is not handled", event=shown)
        status = state_key(p.ciBuildRun.attributes.completionStatus)
        if status == "SKIPPED":
            return Ignored("Xcode Cloud skipped this build: it never ran", event="SKIPPED")
        if status not in COMPLETIONS:
            raise PayloadInvalid(
                "a completed Xcode Cloud build without a known completion status",
                [
                    FieldError(
                        "ciBuildRun.attributes.completionStatus",
                        f"must be one of {', '.join([*COMPLETIONS, 'SKIPPED'])}",
                    )
                ],
            )
        event, outcome, verb = COMPLETIONS[status]
        return self._notification(p, event_type, event, outcome, verb, status)

    def _notification(
        self, p: Payload, event_type: str, event: str, outcome: str, verb: str, status: str = ""
    ) -> Notification:
        run = p.ciBuildRun.attributes
        number = f" #{run.number}" if run.number is not None else ""
        product = (p.ciProduct.attributes.name or "").strip() or None
        workflow = (p.ciWorkflow.attributes.name or "").strip() or None
        branch = tag = target = pull = None
        pr = p.scmPullRequest.attributes if p.scmPullRequest else None
        reference = p.scmGitReference.attributes
        if pr is not None and (pr.number is not None or pr.sourceBranchName):
            branch, target = pr.sourceBranchName or reference.name, pr.destinationBranchName
            pull = str(pr.number) if pr.number is not None else None
        elif state_key(reference.kind) == "TAG":
            tag = reference.name
        else:
            branch = reference.name
        commit = run.sourceCommit
        author = (
            commit.author.displayName.strip()
            if commit and commit.author and commit.author.displayName
            else None
        )
        build_url = web_url(p.app.id, "ci", "builds", p.ciBuildRun.id, "summary") if p.app.id else None
        links = [Link(label="Open build", url=build_url)] if build_url else []
        # The commit and the pull request are links in the message (its short sha, its number),
        # not buttons: as Xcode Cloud gave them, else from the repository's clone URL.
        sha = commit.commitSha if commit and commit.commitSha else None
        repo = p.scmRepository.attributes
        clone = repo.httpCloneUrl or repo.sshCloneUrl
        commit_url = safe_url(commit.htmlUrl if commit else None) or _repo.commit_url(clone, sha)
        pull_url = safe_url(pr.htmlUrl if pr else None) or _repo.pull_request_url(clone, pull)
        workflow_part = f" ({clip(workflow, 80)})" if workflow else ""
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": event,
                "outcome": outcome,
                "opt_in": event == "build.queued",
                "title": f"Build{number} {verb}",
                "summary": f"{product or 'Xcode Cloud'}: Xcode Cloud build{number}{workflow_part} {verb}",
                "app": product,
                "app_id": p.app.id,
                "app_key": p.app.id,
                "platform": next((platform_name(a.platform) for a in p.ciBuildActions if a.platform), None),
                "build_number": str(run.number) if run.number is not None else None,
                "build_id": p.ciBuildRun.id,
                # One build run, one event per type (and outcome): a resend is the same event.
                "event_id": f"xcodecloud:{p.ciBuildRun.id}:{event_type}:{status}",
                "message_key": f"xcodecloud:{p.ciBuildRun.id}",
                "branch": branch or None,
                "target_branch": target or None,
                "pull_request": pull,
                "tag": tag or None,
                "workflow": workflow,
                "commit": sha,
                "commit_url": commit_url,
                "pull_request_url": pull_url if pull else None,
                "pull_request_title": pr.title.strip() if pr and pr.title and pr.title.strip() else None,
                "author": author,
                "people": (author,) if author else (),
                "url": build_url or web_url(None),
                "links": links,
                "started_at": run.startedDate,
                "finished_at": run.finishedDate,
                "sent_at": p.metadata.attributes.createdDate,
                "duration_seconds": duration_between(run.startedDate, run.finishedDate),
                "facts": self._facts(p, outcome),
            }
        )

    def _facts(self, p: Payload, outcome: str) -> list[Fact]:
        facts: list[Fact] = []
        if outcome == "failure":
            failed = [
                a.attributes.name.strip()
                for a in p.ciBuildActions
                if a.attributes.name
                and a.attributes.name.strip()
                and state_key(a.attributes.completionStatus) in FAILED_ACTIONS
            ]
            if failed:
                shown = ", ".join(clip(name, 60) for name in failed[:MAX_ACTIONS_SHOWN])
                more = (
                    f" and {len(failed) - MAX_ACTIONS_SHOWN} more" if len(failed) > MAX_ACTIONS_SHOWN else ""
                )
                facts.append(Fact("Failed", shown + more))
        issues = issue_summary(p.ciBuildActions)
        if issues:
            facts.append(Fact("Issues", issues))
        return facts


def issue_summary(actions: list[Action]) -> str | None:
    """'2 errors · 14 warnings · 1 test failure', the actions' counts added up; None when all are 0."""
    totals = {"error": 0, "test failure": 0, "warning": 0, "analyzer warning": 0}
    for action in actions:
        counts = action.attributes.issueCounts
        totals["error"] += counts.errors
        totals["test failure"] += counts.testFailures
        totals["warning"] += counts.warnings
        totals["analyzer warning"] += counts.analyzerWarnings
    parts = [f"{n} {what}{'' if n == 1 else 's'}" for what, n in totals.items() if n]
    return " · ".join(parts) or None


SOURCE = XcodeCloud()
