"""GitHub Actions: ``workflow_run`` webhooks of a repository, an organisation or a GitHub App.

Docs: https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run (payload
examples: octokit/webhooks). The event is in ``X-GitHub-Event``; a webhook subscribed to more
than workflow runs sends those events to the same URL, and each is answered 200 ``ignored`` naming
it. GitHub sends ``ping`` when a webhook is created: it is posted as "GitHub webhook connected"
(and says so if the webhook does not send workflow runs). Deliveries are signed with the
webhook's secret: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``; see ``SIGNING``.

A run is ``requested`` (``build.started``, opt-in: a busy repository would double its messages),
``in_progress`` (ignored) and ``completed`` with a ``conclusion``: success, failure, cancelled,
timed_out, action_required, startup_failure, stale, neutral or skipped. The last two say nothing
went wrong and nothing ran: ``build.skipped``, opt-in as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from translators.errors import Ignored
from translators.formats import clip
from translators.model import Fact, Link, Notification, Timestamp, duration_between
from translators.sources import Loose, Signing, validate_model

EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
SIGNING = Signing(
    header="X-Hub-Signature-256", setting="GITHUB_WEBHOOK_SECRET", digest="sha256", prefix="sha256="
)
WEB = "https://github.com"

#: conclusion -> (event, outcome, verb). neutral and skipped are opt-in ``build.skipped``.
CONCLUSIONS: dict[str, tuple[str, str, str]] = {
    "success": ("build.succeeded", "success", "succeeded"),
    "failure": ("build.failed", "failure", "failed"),
    "timed_out": ("build.failed", "failure", "timed out"),
    "action_required": ("build.failed", "failure", "needs action"),
    "startup_failure": ("build.failed", "failure", "failed to start"),
    "cancelled": ("build.canceled", "canceled", "was canceled"),
    "stale": ("build.canceled", "canceled", "went stale"),
    "neutral": ("build.skipped", "info", "finished neutral"),
    "skipped": ("build.skipped", "canceled", "was skipped"),
}


class Account(Loose):
    login: str | None = None


class Person(Loose):
    name: str | None = None
    email: str | None = None


class HeadCommit(Loose):
    id: str | None = None
    message: str | None = None
    author: Person | None = None


class Ref(Loose):
    ref: str | None = None


class PullRequest(Loose):
    number: int | None = Field(default=None, ge=0)
    head: Ref = Field(default_factory=Ref)
    base: Ref = Field(default_factory=Ref)


class Run(Loose):
    id: int = Field(ge=0)
    name: str | None = None
    display_title: str | None = None
    run_number: int | None = Field(default=None, ge=0)
    run_attempt: int | None = Field(default=None, ge=0)
    event: str | None = None
    status: str | None = None
    conclusion: str | None = None
    head_branch: str | None = None
    head_sha: str | None = None
    head_commit: HeadCommit | None = None
    html_url: str | None = None
    pull_requests: list[PullRequest] = Field(default_factory=list)
    actor: Account | None = None
    triggering_actor: Account | None = None
    created_at: Timestamp | None = None
    run_started_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class Repository(Loose):
    id: int | None = None
    full_name: str = Field(min_length=1)
    html_url: str | None = None


class Workflow(Loose):
    name: str | None = None
    path: str | None = None


class WorkflowRunPayload(Loose):
    action: str = Field(min_length=1)
    workflow_run: Run
    repository: Repository
    workflow: Workflow = Field(default_factory=Workflow)
    sender: Account | None = None


class Hook(Loose):
    events: list[str] = Field(default_factory=list)


class OptionalRepository(Loose):
    full_name: str | None = None
    html_url: str | None = None


class PingPayload(Loose):
    hook_id: int | None = None
    hook: Hook = Field(default_factory=Hook)
    repository: OptionalRepository | None = None
    organization: Account | None = None


class GitHub:
    name: ClassVar[str] = "github"
    label: ClassVar[str] = "GitHub Actions"
    docs: ClassVar[str] = "https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run"
    signature: ClassVar[str] = "an 'X-GitHub-Event' header, or a 'workflow_run' object with a 'repository'"
    signing: ClassVar[Signing] = SIGNING

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        if headers.get(EVENT_HEADER, "").strip():
            return True
        return isinstance(payload.get("workflow_run"), Mapping) and isinstance(
            payload.get("repository"), Mapping
        )

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        event = headers.get(EVENT_HEADER, "").strip().lower()
        if not event:  # a manual replay without headers: the body says what it is
            event = "ping" if "zen" in payload and "hook_id" in payload else "workflow_run"
        if event == "ping":
            return self._ping(
                validate_model(PingPayload, payload, "GitHub ping"), headers.get(DELIVERY_HEADER)
            )
        if event != "workflow_run":
            shown = clip(event, 60)
            return Ignored(f"GitHub event {shown!r} is not handled; only workflow_run is", event=shown)
        p = validate_model(WorkflowRunPayload, payload, "GitHub workflow_run")
        action = p.action.strip().lower()
        if action == "requested":
            return self._notification(p, "build.started", "running", "started", action)
        if action != "completed":
            shown = clip(action, 40)
            return Ignored(
                f"GitHub workflow run {shown!r}: only requested and completed are sent on", event=shown
            )
        conclusion = (p.workflow_run.conclusion or "").strip().lower()
        if conclusion not in CONCLUSIONS:
            shown = clip(conclusion or "none", 40)
            return Ignored(f"GitHub workflow run completed with conclusion {shown!r}", event=shown)
        event_name, outcome, verb = CONCLUSIONS[conclusion]
        return self._notification(p, event_name, outcome, verb, action, conclusion)

    def _notification(
        self, p: WorkflowRunPayload, event: str, outcome: str, verb: str, action: str, conclusion: str = ""
    ) -> Notification:
        run, repo = p.workflow_run, p.repository
        workflow = (run.name or p.workflow.name or "").strip() or None
        number = f" #{run.run_number}" if run.run_number is not None else ""
        attempt = run.run_attempt if run.run_attempt and run.run_attempt > 1 else None
        again = f" (attempt {attempt})" if attempt else ""
        subject = clip(workflow, 60) if workflow else "Workflow run"
        title = f"{subject}{number}{again} {verb}"
        pr = next((pr for pr in run.pull_requests if pr.number is not None), None)
        repo_url = repo.html_url or f"{WEB}/{quote(repo.full_name, safe='/')}"
        commit = run.head_commit
        first_line = _first_line(commit.message if commit else None)
        author = commit.author if commit else None
        actor = (run.triggering_actor or run.actor or p.sender or Account()).login
        # A pull request's run is titled with the pull request's title; another run's title is its
        # commit's subject, or the workflow's run-name, said when it says something else.
        title_shown = (run.display_title or "").strip() or None
        facts: list[Fact] = []
        if pr is None and title_shown and title_shown != first_line:
            facts.append(Fact("Title", title_shown))
        # The commit and the pull request are links in the message (the repository's own pages,
        # on github.com or a GitHub Enterprise host alike); the run is the one button.
        links = [Link(label="Open run", url=run.html_url)] if run.html_url else []
        sha = run.head_sha or (commit.id if commit else None)
        started = run.run_started_at or run.created_at
        key = f"github:{repo.id or repo.full_name}:{run.id}:{run.run_attempt or 1}"
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": event,
                "outcome": outcome,
                "opt_in": event in ("build.started", "build.skipped"),
                "title": title,
                "summary": f"{repo.full_name}: {title}",
                "app": repo.full_name,
                "app_id": repo.full_name,
                "app_key": repo.full_name,
                "build_number": str(run.run_number) if run.run_number is not None else None,
                "build_id": str(run.id),
                # The run, its attempt and what became of it: a redelivery of the same is the same event.
                "event_id": f"{key}:{action}:{conclusion}",
                "message_key": key,
                "branch": (pr.head.ref if pr is not None and pr.head.ref else run.head_branch) or None,
                "target_branch": pr.base.ref if pr is not None and pr.base.ref else None,
                "pull_request": str(pr.number) if pr is not None else None,
                "workflow": workflow,
                "commit": sha,
                "commit_url": f"{repo_url}/commit/{quote(sha, safe='')}" if sha else None,
                "pull_request_url": f"{repo_url}/pull/{pr.number}" if pr is not None else None,
                "pull_request_title": title_shown if pr is not None else None,
                "commit_message": first_line,
                "author": (author.name or author.email) if author else None,
                "triggered_by": actor,
                "people": tuple(
                    k for k in (actor, author.email if author else None, author.name if author else None) if k
                ),
                "url": run.html_url or repo_url,
                "links": links,
                "started_at": started,
                "finished_at": run.updated_at if action == "completed" else None,
                "duration_seconds": duration_between(started, run.updated_at)
                if action == "completed"
                else None,
                "facts": facts,
            }
        )

    def _ping(self, p: PingPayload, delivery: str | None) -> Notification:
        repo = p.repository.full_name if p.repository and p.repository.full_name else None
        where = repo or (p.organization.login if p.organization else None)
        events = {e.strip().lower() for e in p.hook.events}
        sends_runs = not events or bool(events & {"workflow_run", "*"})
        title = (
            "GitHub webhook connected" if sends_runs else "GitHub webhook connected, without workflow runs"
        )
        facts = [] if sends_runs else [Fact("To do", "tick Workflow runs in the webhook's events")]
        url = p.repository.html_url if p.repository and p.repository.html_url else WEB
        return Notification.model_validate(
            {
                "source": self.name,
                "source_label": self.label,
                "event": "webhook.ping",
                "outcome": "info" if sends_runs else "warning",
                "emoji": "🔌",
                "title": title,
                "summary": f"{where or 'GitHub'}: {title}",
                "app": where,
                "app_id": repo,
                "app_key": repo,
                # Each ping is news (a redelivery of one is not): the delivery's id, else the hook's.
                "event_id": f"github:ping:{clip(delivery or str(p.hook_id), 80)}",
                "url": url,
                "links": [Link(label="Open repo" if repo else "Open GitHub", url=url)],
                "facts": facts,
            }
        )


def _first_line(message: str | None) -> str | None:
    lines = (message or "").strip().splitlines()
    return lines[0].strip() if lines else None


SOURCE = GitHub()
