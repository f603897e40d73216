"""Bitrise build details from its API, for what the webhook body leaves out.

Bitrise's outgoing webhook carries slugs, the build number, the status and git refs. Its API
(https://api-docs.bitrise.io/, token in the ``Authorization`` header) has the rest:

- ``GET /v0.1/apps/{app}``: the app's ``title`` and ``repo_url`` (kept for an hour per app);
- ``GET /v0.1/apps/{app}/builds/{build}``: ``commit_hash``, ``commit_message``, ``triggered_by``,
  ``triggered_workflow``, ``triggered_at``, ``started_on_worker_at``, ``finished_at``,
  ``status_text``, ``abort_reason``, ``pull_request_target_branch``, ``commit_view_url``,
  ``pull_request_view_url`` (the commit's and pull request's pages; else built from ``repo_url``
  for GitHub, GitLab and Bitbucket repositories);
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
from translators.sources import Enrichment, Loose, _repo
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
    repo_url: str | None = None


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
    commit_view_url: str | None = None
    pull_request_view_url: str | None = None


class ArtifactItem(Loose):
    slug: str
    title: str | None = None
    artifact_type: str | None = None
    is_public_page_enabled: bool = False


class ArtifactAnswer(Loose):
    title: str | None = None
    artifact_type: str | None = None
    public_install_page_url: str | None = None


@dataclass(frozen=True)
class Details:
    """What the API said about one build; any part may be missing."""

    app_title: str | None = None
    build: BuildAnswer | None = None
    artifacts: tuple[ArtifactAnswer, ...] = ()
    repo_url: str | None = None


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
    # The commit's and the pull request's pages: as the API gave them, else from the repository.
    commit = n.commit or (b.commit_hash if b else None)
    if commit and not n.commit_url:
        given = b.commit_view_url if b and b.commit_hash in (None, commit) else None
        update["commit_url"] = safe_url(given) or _repo.commit_url(details.repo_url, commit)
    if n.pull_request and not n.pull_request_url:
        given = b.pull_request_view_url if b else None
        update["pull_request_url"] = safe_url(given) or _repo.pull_request_url(
            details.repo_url, n.pull_request
        )
    if details.artifacts and n.event == "build.succeeded":
        pages = [a for a in details.artifacts if safe_url(a.public_install_page_url)]
        installs = [
            Link(label=_install_label(a, len(pages)), url=str(a.public_install_page_url)) for a in pages
        ]
        if installs:
            # After "Open build", which stays the main button; an install page is a better second
            # button than the app's page, which is dropped.
            update["links"] = (*n.links[:1], *installs)
    enriched = n.model_copy(update=update) if update else n
    if details.app_title and details.app_title.strip() and not n.app_name:
        enriched = enriched.named(details.app_title.strip())
    return enriched


#: A button's words, short enough for two side by side on a phone.
_KINDS = {"android-apk": "APK", "ios-ipa": "IPA"}


def _install_label(artifact: ArtifactAnswer, count: int) -> str:
    """ "Install"; "Install APK" / "Install IPA" when the build has several install pages."""
    kind = _KINDS.get(artifact.artifact_type or "")
    return f"Install {kind}" if count > 1 and kind else "Install"


class Client:
    """The calls for one build, under one budget. Thread-safe; one per process."""

    def __init__(self) -> None:
        self.api = JsonApi(
            "the Bitrise API", budget=BUDGET_SECONDS, credential="token", unknown="this app or build"
        )
        #: (title, repo_url) per app.
        self._apps: TimedCache[tuple[str, str], AppAnswer] = TimedCache(APP_TITLE_SECONDS)

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

        cached = self._apps.get((base, app))
        jobs: dict[str, Future[Any]] = {"build": api.submit(call, builds)}
        if cached is None:
            jobs["app"] = api.submit(call, root)
        if finished_ok:
            jobs["artifacts"] = api.submit(call, f"{builds}/artifacts")
        answers, problems = api.collect(jobs, deadline)

        app_answer = cached[0] if cached is not None else AppAnswer()
        if "app" in answers:
            app_answer = api.model(AppAnswer, answers["app"])
            self._apps.put((base, app), app_answer)
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
            kinds = {f"artifact {i}": a.artifact_type for i, a in enumerate(wanted[:MAX_ARTIFACTS])}
            artifacts = tuple(
                _typed(api.model(ArtifactAnswer, more[k]), kinds[k]) for k in detail_jobs if k in more
            )
        problem = problems[0] if problems else None
        return Fetched(Details(app_answer.title, build_answer, artifacts, app_answer.repo_url), problem)

    def forget(self) -> None:
        """Drop cached titles and pauses (tests)."""
        self._apps.clear()
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
    app = AppAnswer.model_validate(answers.get("app", {}))
    return apply(
        n,
        Details(
            app.title,
            BuildAnswer.model_validate(answers["build"]) if "build" in answers else None,
            tuple(ArtifactAnswer.model_validate(a) for a in answers.get("artifacts", [])),
            app.repo_url,
        ),
    )


def _typed(artifact: ArtifactAnswer, kind: str | None) -> ArtifactAnswer:
    """The artifact's own answer, with the list's type where it left the type out."""
    return artifact if artifact.artifact_type else artifact.model_copy(update={"artifact_type": kind})


__all__ = ["BUDGET_SECONDS", "Details", "apply", "client", "enrich", "recorded"]
