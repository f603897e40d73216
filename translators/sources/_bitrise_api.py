"""Bitrise build details from its API, for what the webhook body leaves out.

Bitrise's outgoing webhook carries slugs, the build number, the status and git refs. Its API
(https://api-docs.bitrise.io/, token in the ``Authorization`` header) has the rest:

- ``GET /v0.1/apps/{app}``: the app's ``title`` (kept for an hour per app);
- ``GET /v0.1/apps/{app}/builds/{build}``: ``commit_hash``, ``commit_message``, ``triggered_by``,
  ``triggered_workflow``, ``triggered_at``, ``started_on_worker_at``, ``finished_at``,
  ``status_text``, ``abort_reason``, ``pull_request_target_branch``;
- ``GET .../builds/{build}/artifacts`` and ``.../artifacts/{artifact}``: installable artifacts and
  their ``public_install_page_url``, for a successful build.

Enrichment is a nicety, never a condition: every call shares one budget (``BUDGET_SECONDS``), and
on any problem (refused token, unknown build, slow or malformed answers, a rate limit) the
message goes with what the webhook had, and the answer says ``enrichment: "unavailable: ..."``.
A 429's ``Retry-After`` is honoured: no call is made until it has passed. The token is sent in a
header and is in no message, log line or exception text; reasons name status codes and failure
classes only.

``apply`` is pure: it completes a notification from answers already fetched, so the tests, the
golden files and the preview use it on recorded answers without any network.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from translators import logs
from translators.model import Link, Notification, Timestamp, duration_between, safe_url
from translators.sources import Enrichment, Loose
from translators.sources._api import JsonApi, TimedCache, Unavailable, per_process

#: All the calls of one event share this budget: a message waits for its details at most this long.
BUDGET_SECONDS = 2.0
#: App titles rarely change; one lookup an hour per app.
APP_TITLE_SECONDS = 3600.0
#: Artifacts linked on a successful build (each is one more call).
MAX_ARTIFACTS = 3
#: Artifact types with an install page worth a button.
INSTALLABLE = frozenset({"android-apk", "ios-ipa"})

log = logs.logger("translators.sources.bitrise")


class AppAnswer(Loose):
    title: str | None = None


class BuildAnswer(Loose):
    commit_hash: str | None = None
    commit_message: str | None = None
    triggered_by: str | None = None
    triggered_workflow: str | None = None
    triggered_at: Timestamp | None = None
    started_on_worker_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    status_text: str | None = None
    abort_reason: str | None = None
    pull_request_target_branch: str | None = None


class ArtifactItem(Loose):
    slug: str
    title: str | None = None
    artifact_type: str | None = None
    is_public_page_enabled: bool = False


class ArtifactAnswer(Loose):
    title: str | None = None
    public_install_page_url: str | None = None


@dataclass(frozen=True)
class Details:
    """What the API said about one build; any part may be missing."""

    app_title: str | None = None
    build: BuildAnswer | None = None
    artifacts: tuple[ArtifactAnswer, ...] = ()


@dataclass(frozen=True)
class Fetched:
    details: Details
    #: None when every call answered; else why not, in words fit for an answer.
    problem: str | None = None


def apply(n: Notification, details: Details) -> Notification:
    """``n`` completed with what the API said; what the webhook already had is kept."""
    from translators.sources.bitrise import trigger

    update: dict[str, Any] = {}
    b = details.build
    if b is not None:
        if b.commit_hash and not n.commit:
            update["commit"] = b.commit_hash
        if b.commit_message and not n.commit_message:
            lines = b.commit_message.strip().splitlines()
            update["commit_message"] = lines[0].strip() if lines else None
        shown, keys = trigger(b.triggered_by)
        if shown and not n.triggered_by:
            update["triggered_by"] = shown
            update["people"] = tuple(dict.fromkeys((*n.people, *keys)))
        if b.triggered_workflow and not n.workflow:
            update["workflow"] = b.triggered_workflow
        if b.pull_request_target_branch and not n.target_branch:
            update["target_branch"] = b.pull_request_target_branch
        started = b.started_on_worker_at or b.triggered_at
        if started and not n.started_at:
            update["started_at"] = started
        if b.finished_at and not n.finished_at:
            update["finished_at"] = b.finished_at
        if n.duration_seconds is None:
            update["duration_seconds"] = duration_between(started, b.finished_at)
        update["status_text"] = b.status_text or n.status_text
        if b.abort_reason and n.event == "build.canceled":
            update["abort_reason"] = b.abort_reason
    if details.artifacts and n.event == "build.succeeded":
        installs = [
            Link(label=f"Install {a.title}" if a.title else "Install", url=a.public_install_page_url)
            for a in details.artifacts
            if safe_url(a.public_install_page_url)
        ]
        # After "Open build": the build page stays the main button.
        update["links"] = (*n.links[:1], *installs, *n.links[1:])
    enriched = n.model_copy(update=update) if update else n
    if details.app_title and details.app_title.strip() and not n.app_name:
        enriched = enriched.named(details.app_title.strip())
    return enriched


class Client:
    """The calls for one build, under one budget. Thread-safe; one per process."""

    def __init__(self) -> None:
        self.api = JsonApi(
            "the Bitrise API", budget=BUDGET_SECONDS, credential="token", unknown="this app or build"
        )
        self._titles: TimedCache[tuple[str, str], str | None] = TimedCache(APP_TITLE_SECONDS)

    def fetch(self, base: str, token: str, app: str, build: str, *, finished_ok: bool) -> Fetched:
        api = self.api
        deadline = api.deadline()
        paused = api.paused_reason(base)
        if paused:
            return Fetched(Details(), paused)
        root = f"{base.rstrip('/')}/v0.1/apps/{quote(app, safe='')}"
        builds = f"{root}/builds/{quote(build, safe='')}"

        def call(url: str) -> Any:
            data = api.get(base, url, {"Authorization": token}, deadline)
            if not isinstance(data, dict) or "data" not in data:
                raise api.unexpected()
            return data["data"]

        title = self._titles.get((base, app))
        jobs: dict[str, Future[Any]] = {"build": api.submit(call, builds)}
        if title is None:
            jobs["app"] = api.submit(call, root)
        if finished_ok:
            jobs["artifacts"] = api.submit(call, f"{builds}/artifacts")
        answers, problems = api.collect(jobs, deadline)

        app_title = title[0] if title is not None else None
        if "app" in answers:
            app_title = api.model(AppAnswer, answers["app"]).title
            self._titles.put((base, app), app_title)
        build_answer = api.model(BuildAnswer, answers["build"]) if "build" in answers else None
        artifacts: tuple[ArtifactAnswer, ...] = ()
        if "artifacts" in answers:
            if not isinstance(answers["artifacts"], list):
                raise api.unexpected()
            listed = [api.model(ArtifactItem, item) for item in answers["artifacts"]]
            wanted = [a for a in listed if a.is_public_page_enabled and a.artifact_type in INSTALLABLE]
            detail_jobs = {
                f"artifact {i}": api.submit(call, f"{builds}/artifacts/{quote(a.slug, safe='')}")
                for i, a in enumerate(wanted[:MAX_ARTIFACTS])
            }
            more, more_problems = api.collect(detail_jobs, deadline)
            problems += more_problems
            artifacts = tuple(api.model(ArtifactAnswer, more[k]) for k in detail_jobs if k in more)
        problem = problems[0] if problems else None
        return Fetched(Details(app_title, build_answer, artifacts), problem)

    def forget(self) -> None:
        """Drop cached titles and pauses (tests)."""
        self._titles.clear()
        self.api.forget()


#: The process's client (its session, pool, caches and pauses are shared by every request).
client = per_process(Client)


def enrich(n: Notification, token: str, base: str) -> Enrichment:
    """``n`` completed from the API within the budget; on any problem, ``n`` as it was, said so."""
    if not n.app_id or not n.build_id:
        return Enrichment(n, "unavailable: the webhook named no app or build")
    try:
        fetched = client().fetch(base, token, n.app_id, n.build_id, finished_ok=n.event == "build.succeeded")
    except Unavailable as exc:  # an answer that parsed but did not fit the models
        return Enrichment(n, f"unavailable: {exc}")
    enriched = apply(n, fetched.details)
    if fetched.problem:
        log.warning("Bitrise API details incomplete for build %s: %s", n.build_id, fetched.problem)
        return Enrichment(enriched, f"unavailable: {fetched.problem}")
    return Enrichment(enriched, "complete")


def recorded(n: Notification, answers: dict[str, Any]) -> Notification:
    """``n`` completed from recorded API answers (``{"app": ..., "build": ..., "artifacts": [...]}``),
    as ``enrich`` would: for golden files and the preview, without a network."""
    return apply(
        n,
        Details(
            AppAnswer.model_validate(answers.get("app", {})).title,
            BuildAnswer.model_validate(answers["build"]) if "build" in answers else None,
            tuple(ArtifactAnswer.model_validate(a) for a in answers.get("artifacts", [])),
        ),
    )


__all__ = ["BUDGET_SECONDS", "Details", "apply", "client", "enrich", "recorded"]
