"""GitHub Actions: workflow_run actions and conclusions, other events, the ping, signatures
(X-Hub-Signature-256) and identities."""

from __future__ import annotations

import copy
import json
from functools import partial
from typing import Any

import pytest

from tests import sourcetools
from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from translators.errors import Ignored
from translators.sources.github import SIGNING

translate = partial(sourcetools.translate, "github")
notification = partial(sourcetools.notification, "github")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "github")

FAILED = json.loads(sample("github/run-failed").body())
PR = json.loads(sample("github/run-succeeded-pr").body())
PING = json.loads(sample("github/ping").body())
RUN = {"X-GitHub-Event": "workflow_run"}
SECRET = "github-webhook-secret-5c1d"


def concluded(conclusion: str | None, action: str = "completed") -> dict[str, Any]:
    body = copy.deepcopy(FAILED)
    body["action"] = action
    body["workflow_run"]["conclusion"] = conclusion
    return body


@pytest.mark.parametrize(
    ("conclusion", "event", "outcome", "title"),
    [
        ("success", "build.succeeded", "success", "iOS CI #412 succeeded"),
        ("failure", "build.failed", "failure", "iOS CI #412 failed"),
        ("timed_out", "build.failed", "failure", "iOS CI #412 timed out"),
        ("action_required", "build.failed", "failure", "iOS CI #412 needs action"),
        ("startup_failure", "build.failed", "failure", "iOS CI #412 failed to start"),
        ("cancelled", "build.canceled", "canceled", "iOS CI #412 was canceled"),
        ("stale", "build.canceled", "canceled", "iOS CI #412 went stale"),
        ("skipped", "build.skipped", "canceled", "iOS CI #412 was skipped"),
        ("neutral", "build.skipped", "info", "iOS CI #412 finished neutral"),
    ],
)
def test_conclusions(conclusion: str, event: str, outcome: str, title: str) -> None:
    n = notification(concluded(conclusion), RUN)
    assert (n.event, n.outcome, n.title) == (event, outcome, title)
    assert n.opt_in == (event == "build.skipped")


def test_requested_is_an_opt_in_start_and_in_progress_is_acknowledged() -> None:
    n = notification(concluded(None, "requested"), RUN)
    assert (n.event, n.opt_in, n.duration_seconds) == ("build.started", True, None)
    result = translate(concluded(None, "in_progress"), RUN)
    assert isinstance(result, Ignored) and "in_progress" in result.reason


def test_a_completed_run_without_a_conclusion_is_acknowledged() -> None:
    assert isinstance(translate(concluded(None), RUN), Ignored)
    assert isinstance(translate(concluded("exploded"), RUN), Ignored)


@pytest.mark.parametrize("event", ["push", "check_run", "workflow_job", "pull_request"])
def test_other_events_are_200_ignored_naming_them(event: str, channels: dict[str, str]) -> None:
    answer = post(
        channels,
        "github",
        "slack",
        {"action": "x", "repository": {"full_name": "a/b"}},
        {"X-GitHub-Event": event},
    )
    assert answer.status == 200 and answer.body["status"] == "ignored" and answer.body["event"] == event


def test_what_a_developer_reads_first() -> None:
    n = notification(FAILED, RUN)
    facts = plain_facts(n)
    assert facts["App"] == "acme/field-ios" and facts["Branch"] == "main"
    assert facts["Commit"] == "9fceb02d Fix the login button on small screens"
    assert (facts["Author"], facts["Triggered by"], facts["Duration"]) == ("Dana Lee", "danalee", "11m 37s")
    assert n.url == "https://github.com/acme/field-ios/actions/runs/12873460712"
    # The commit is a link in the message (its short sha), not a second button.
    assert [link.label for link in n.links] == ["Open run"]
    assert n.commit_url == "https://github.com/acme/field-ios/commit/9fceb02d0ae598e95dc970b74767f19372d61af8"
    assert n.pull_request_url is None and n.pull_request_title is None


def test_a_pull_request_run_names_both_branches_and_links_the_pr() -> None:
    n = notification(PR, RUN)
    assert plain_facts(n)["Branch"] == "annejohnson/order-form-a11y → main · PR #123"
    # The run's title is the pull request's: said beside its number, not as a fact of its own.
    assert "Title" not in plain_facts(n)
    assert n.pull_request_title == "Add accessibility labels to the order form"
    assert n.pull_request_url == "https://github.com/acme/field-ios/pull/123"
    assert [link.label for link in n.links] == ["Open run"]
    assert str(dict(n.top_facts)["PR"]) == "#123 → main Add accessibility labels to the order form"


def test_a_run_name_that_is_not_the_commits_subject_is_said() -> None:
    n = notification(
        {**FAILED, "workflow_run": {**FAILED["workflow_run"], "display_title": "Nightly for QA"}}, RUN
    )
    assert plain_facts(n)["Title"] == "Nightly for QA" and n.pull_request_title is None


def test_a_rerun_is_its_own_event_and_message() -> None:
    first = notification(FAILED, RUN)
    body = copy.deepcopy(FAILED)
    body["workflow_run"]["run_attempt"] = 2
    again = notification(body, RUN)
    assert again.title == "iOS CI #412 (attempt 2) failed"
    assert again.event_id != first.event_id and again.message_key != first.message_key


def test_without_the_header_the_body_says_what_it_is() -> None:
    assert notification(FAILED).event == "build.failed"
    assert notification(PING).event == "webhook.ping"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"repository": None}, "repository"),
        ({"workflow_run": {"name": "x"}}, "workflow_run.id"),
        ({"action": ""}, "action"),
    ],
)
def test_a_body_github_would_not_send_is_422_naming_the_field(change: dict[str, Any], path: str) -> None:
    body = {k: v for k, v in {**FAILED, **change}.items() if v is not None}
    assert path in errors_of(body, RUN)


def test_the_ping_posts_connected_and_says_when_runs_are_not_sent(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(channels, "github", "slack", PING, {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d1"})
    assert answer.status == 200 and answer.body["status"] == "delivered", answer.body
    (got,) = chat.at(path_of(channels, "slack"))
    text = json.dumps(got.json())
    assert "GitHub webhook connected" in text and "azurewebsites" not in text, "the hook's URL is not shown"
    pushes = copy.deepcopy(PING)
    pushes["hook"]["events"] = ["push"]
    n = notification(pushes, {"X-GitHub-Event": "ping"})
    assert n.outcome == "warning" and "Workflow runs" in plain_facts(n)["To do"]


def test_each_run_reaches_a_channel_once(chat: ChatServer, channels: dict[str, str]) -> None:
    for _ in range(2):  # GitHub's "Redeliver" sends the same body again
        post(channels, "github", "slack", FAILED, RUN)
    answer = post(channels, "github", "slack", FAILED, RUN)
    assert answer.body["channels"][0]["reason"] == "duplicate"
    assert len(chat.at(path_of(channels, "slack"))) == 1


def test_requested_runs_go_only_to_channels_that_ask(chat: ChatServer, channels: dict[str, str]) -> None:
    requested = sample("github/run-requested").body()
    assert post(channels, "github", "slack", requested, RUN).body["status"] == "ignored"
    asking = channels | {"CHANNEL_SLACK_EVENTS": "build.started,build.failed"}
    assert post(asking, "github", "slack", requested, RUN).body["status"] == "delivered"


def test_build_modes_per_repository_workflow_and_branch(chat: ChatServer, channels: dict[str, str]) -> None:
    env = channels | {"CHANNEL_SLACK_BUILD_FAILURE": "after-success"}
    for run, conclusion, expected in (
        (1, "failure", "delivered"),
        (2, "failure", "skipped"),
        (3, "success", "delivered"),
        (4, "failure", "delivered"),
    ):
        body = concluded(conclusion)
        body["workflow_run"]["id"] = run
        assert post(env, "github", "slack", body, RUN).body["status"] == expected, run


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401),
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, 401),  # the old SHA-1 header does not count
        ("signed", 200),
    ],
)
def test_with_a_secret_only_a_right_signature_is_delivered(
    chat: ChatServer, channels: dict[str, str], headers: dict[str, str] | str, status: int
) -> None:
    env = channels | {"GITHUB_WEBHOOK_SECRET": SECRET}
    raw = json.dumps(FAILED).encode()
    given = {"X-Hub-Signature-256": SIGNING.sign(SECRET, raw)} if headers == "signed" else headers
    assert isinstance(given, dict)
    answer = post(env, "github", "slack", raw, RUN | given)
    assert answer.status == status, answer.body
    if status == 401:
        assert answer.body["header"] == "X-Hub-Signature-256" and chat.at(path_of(env, "slack")) == []


def test_githubs_documented_signature_example() -> None:
    """GitHub's "Validating webhook deliveries": secret "It's a Secret to Everybody", body "Hello, World!"."""
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert SIGNING.sign("It's a Secret to Everybody", b"Hello, World!") == expected


def test_octokits_example_payload_an_older_shape_is_read() -> None:
    """octokit/webhooks' workflow_run/completed.with-pull-requests example (held out from the samples):
    an empty run name, no run number, attempt or actor; its keys kept, its URLs' noise trimmed."""
    body = {
        "action": "completed",
        "organization": {"login": "octo-org", "id": 41548062},
        "repository": {
            "id": 300029405,
            "full_name": "octo-org/octo-repo",
            "html_url": "https://github.com/octo-org/octo-repo",
            "default_branch": "master",
        },
        "sender": {"login": "Codertocat", "id": 15669918, "type": "User"},
        "workflow": {"id": 2823525, "name": "test", "path": ".github/workflows/test.yml", "state": "active"},
        "workflow_run": {
            "name": "",
            "check_suite_id": 1291536064,
            "conclusion": "success",
            "created_at": "2020-10-05T16:33:24Z",
            "event": "repository_dispatch",
            "head_branch": "master",
            "head_commit": {
                "author": {"email": "matfax@users.noreply.github.com", "name": "Matthias Fax"},
                "committer": {"email": "noreply@github.com", "name": "GitHub"},
                "id": "3484a3fb816e0859fd6e1cea078d76385ff50625",
                "message": "build(test): check workflow run event payload",
                "timestamp": "2020-10-05T16:32:07Z",
                "tree_id": "c30f6c3377009c4c91c85d1f15deb6f2b7c2eb37",
            },
            "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
            "html_url": "https://github.com/octo-org/octo-repo/actions/runs/289782451",
            "id": 289782451,
            "pull_requests": [
                {
                    "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/2",
                    "id": 279147437,
                    "number": 2,
                    "head": {"ref": "changes", "sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
                    "base": {"ref": "master", "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"},
                }
            ],
            "status": "completed",
            "updated_at": "2020-10-05T16:33:45Z",
            "workflow_id": 2823525,
        },
    }
    n = notification(body, RUN)
    assert (n.event, n.title, n.triggered_by) == ("build.succeeded", "test succeeded", "Codertocat")
    facts = plain_facts(n)
    assert facts["Branch"] == "changes → master · PR #2"
    assert facts["Commit"] == "3484a3fb build(test): check workflow run event payload"
    assert (facts["Author"], facts["Duration"]) == ("Matthias Fax", "21s")
