"""Xcode Cloud webhooks: event types (and payloads without them), completion statuses, opt-in
created events, the facts a developer reads first, build modes per workflow and branch, identities."""

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

translate = partial(sourcetools.translate, "xcodecloud")
notification = partial(sourcetools.notification, "xcodecloud")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "xcodecloud")

FAILED = json.loads(sample("xcodecloud/build-failed").body())
PR = json.loads(sample("xcodecloud/build-succeeded-pr").body())
CREATED = json.loads(sample("xcodecloud/build-created").body())


def changed(base: dict[str, Any], **run: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body["ciBuildRun"]["attributes"].update(run)
    return body


def event_type(base: dict[str, Any], value: str | None) -> dict[str, Any]:
    body = copy.deepcopy(base)
    if value is None:
        del body["metadata"]
    else:
        body["metadata"]["attributes"]["eventType"] = value
    return body


@pytest.mark.parametrize(
    ("status", "event", "outcome", "title"),
    [
        ("SUCCEEDED", "build.succeeded", "success", "Build #212 succeeded"),
        ("FAILED", "build.failed", "failure", "Build #212 failed"),
        ("ERRORED", "build.failed", "failure", "Build #212 errored"),
        ("CANCELED", "build.canceled", "canceled", "Build #212 was canceled"),
        ("succeeded", "build.succeeded", "success", "Build #212 succeeded"),
    ],
)
def test_completion_statuses(status: str, event: str, outcome: str, title: str) -> None:
    n = notification(changed(FAILED, completionStatus=status))
    assert (n.event, n.outcome, n.title) == (event, outcome, title)
    assert n.event_id == f"xcodecloud:349aca4f-4e7a-4a9a-ae75-13812a2ac372:BUILD_COMPLETED:{status.upper()}"


def test_a_skipped_build_is_acknowledged_and_not_sent() -> None:
    result = translate(changed(FAILED, completionStatus="SKIPPED"))
    assert isinstance(result, Ignored) and "never ran" in result.reason


def test_a_completed_build_without_a_known_status_is_422_naming_it() -> None:
    assert errors_of(changed(FAILED, completionStatus="EXPLODED")) == [
        "ciBuildRun.attributes.completionStatus"
    ]


@pytest.mark.parametrize(
    ("progress", "event"),
    [("PENDING", "build.queued"), ("RUNNING", "build.started"), ("COMPLETE", "build.failed")],
)
def test_without_metadata_the_progress_says_which_event(progress: str, event: str) -> None:
    body = changed(event_type(FAILED, None), executionProgress=progress)
    assert notification(body).event == event
    assert (
        notification(changed(event_type(FAILED, "UNRECOGNIZED"), executionProgress=progress)).event == event
    )


def test_an_event_type_apple_adds_later_is_acknowledged() -> None:
    assert isinstance(translate(event_type(FAILED, "BUILD_ARCHIVED")), Ignored)
    body = changed(event_type(FAILED, "UNRECOGNIZED"), executionProgress=None)
    assert isinstance(translate(body), Ignored)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"ciBuildRun": None}, "ciBuildRun"),
        ({"ciBuildRun": {"attributes": {}}}, "ciBuildRun.id"),
        ({"ciBuildRun": {"id": "x", "attributes": {"number": "twelve"}}}, "ciBuildRun.attributes.number"),
        ({"ciBuildActions": {"not": "a list"}}, "ciBuildActions"),
    ],
)
def test_a_body_xcode_cloud_would_not_send_is_422_naming_the_field(change: dict[str, Any], path: str) -> None:
    body = {k: v for k, v in {**FAILED, **change}.items() if v is not None}
    assert path in errors_of(body)


def test_a_payload_without_the_event_is_422_naming_where_it_goes() -> None:
    body = changed(event_type(FAILED, None), executionProgress=None)
    assert errors_of(body) == ["metadata.attributes.eventType"]


def test_a_branch_build_shows_what_a_developer_reads_first() -> None:
    n = notification(FAILED)
    assert (n.app, n.app_key, n.workflow, n.branch, n.author) == (
        "Acme Field",
        "6450012345",
        "Release",
        "main",
        "Dana Lee",
    )
    facts = plain_facts(n)
    assert facts["Commit"] == "10c5e40f" and facts["Duration"] == "12m 27s" and facts["Platform"] == "iOS"
    assert facts["Failed"] == "Test - iOS"
    assert facts["Issues"] == "3 test failures · 14 warnings"
    # The commit is a link in the message (its short sha), not a button.
    assert [link.label for link in n.links] == ["Open build"]
    assert n.commit_url == "https://github.com/acme/field-ios/commit/10c5e40fcdad562e05ffc87a4c85651670f24161"
    assert n.url == (
        "https://appstoreconnect.apple.com/apps/6450012345/ci/builds/349aca4f-4e7a-4a9a-ae75-13812a2ac372/summary"
    )


def test_a_pull_request_build_shows_source_target_and_title() -> None:
    n = notification(PR)
    assert plain_facts(n)["Branch"] == "annejohnson/order-form-a11y → main · PR #123"
    assert "PR title" not in plain_facts(n)
    assert n.pull_request_title == "Add accessibility labels to the order form"
    assert n.pull_request_url == "https://github.com/acme/field-ios/pull/123"
    assert n.commit_url == "https://github.com/acme/field-ios/commit/4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    assert [link.label for link in n.links] == ["Open build"]
    pr = dict(n.top_facts)["PR"]
    assert str(pr) == "#123 → main Add accessibility labels to the order form"


def test_without_xcode_clouds_links_the_repository_makes_them() -> None:
    body = copy.deepcopy(PR)
    del body["ciBuildRun"]["attributes"]["sourceCommit"]["htmlUrl"]
    del body["scmPullRequest"]["attributes"]["htmlUrl"]
    n = notification(body)
    assert n.commit_url == "https://github.com/acme/field-ios/commit/4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    assert n.pull_request_url == "https://github.com/acme/field-ios/pull/123"
    body["scmRepository"]["attributes"] = {"httpCloneUrl": "https://git.acme.example/field-ios.git"}
    unknown = notification(body)
    assert (unknown.commit_url, unknown.pull_request_url) == (None, None), "no guess for an unknown host"


def test_a_tag_build_shows_the_tag() -> None:
    n = notification(json.loads(sample("xcodecloud/build-canceled-tag").body()))
    assert (n.tag, n.branch, n.platform) == ("v2.4.0", None, "macOS")


def test_many_failed_actions_are_counted_not_listed() -> None:
    body = copy.deepcopy(FAILED)
    action = body["ciBuildActions"][0]
    body["ciBuildActions"] = [
        {**action, "attributes": {**action["attributes"], "name": f"Test {i}"}} for i in range(6)
    ]
    assert plain_facts(notification(body))["Failed"] == "Test 0, Test 1, Test 2, Test 3 and 2 more"


def test_unsafe_links_are_dropped_and_ids_are_quoted() -> None:
    body = changed(FAILED, sourceCommit={"commitSha": "abc", "htmlUrl": "javascript:alert(1)"})
    body["ciBuildRun"]["id"] = "../x y"
    n = notification(body)
    assert [link.label for link in n.links] == ["Open build"] and n.commit_url is None
    assert n.url is not None and n.url.endswith("/ci/builds/..%2Fx%20y/summary")


def test_missing_and_null_parts_are_read_as_absent() -> None:
    body = copy.deepcopy(CREATED)
    body["scmPullRequest"] = None
    body["ciBuildRun"]["attributes"]["completionStatus"] = None
    for key in ("app", "ciProduct", "scmGitReference", "ciBuildActions"):
        del body[key]
    n = notification(body)
    assert n.event == "build.queued" and n.app is None and n.branch is None
    assert n.url == "https://appstoreconnect.apple.com/apps"


# -- through the pipeline --------------------------------------------------------------------------


def test_a_created_build_is_ignored_unless_a_channel_asks_for_it(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(channels, "xcodecloud", "slack+teams", CREATED)
    assert answer.status == 200 and answer.body["status"] == "ignored", answer.body
    assert answer.body["event"] == "build.queued" and "CHANNEL_<NAME>_EVENTS" in answer.body["reason"]
    asking = channels | {"CHANNEL_TEAMS_EVENTS": "build.queued,build.failed"}
    answer = post(asking, "xcodecloud", "slack+teams", CREATED)
    assert answer.body["status"] == "delivered"
    slack, teams = answer.body["channels"]
    assert slack["status"] == "skipped" and "CHANNEL_SLACK_EVENTS" in slack["message"]
    assert teams["status"] == "delivered"
    assert chat.at(path_of(channels, "slack")) == [] and len(chat.at(path_of(channels, "teams"))) == 1
    wildcard = channels | {"CHANNEL_SLACK_EVENTS": "build.*"}
    another = copy.deepcopy(CREATED)
    another["ciBuildRun"]["id"] = "another-run"
    answer = post(wildcard, "xcodecloud", "slack", another)
    assert answer.body["channels"][0]["status"] == "delivered", "a pattern that matches it asks for it"


def test_started_and_completed_are_each_sent_once(chat: ChatServer, channels: dict[str, str]) -> None:
    started = sample("xcodecloud/build-started").body()
    for body in (started, started, FAILED, FAILED):  # Xcode Cloud resends until it hears 2xx
        assert post(channels, "xcodecloud", "slack", body).status == 200
    titles = [json.dumps(r.json()) for r in chat.at(path_of(channels, "slack"))]
    assert len(titles) == 2 and "Build #212 started" in titles[0] and "Build #212 failed" in titles[1]


def test_build_modes_judge_each_workflow_and_branch_apart(chat: ChatServer, channels: dict[str, str]) -> None:
    env = channels | {"CHANNEL_SLACK_BUILD_SUCCESS": "after-failure"}

    def run(number: int, status: str, workflow: str, branch: str) -> dict[str, Any]:
        body = changed(FAILED, number=number, completionStatus=status)
        body["ciBuildRun"]["id"] = f"run-{number}"
        body["ciWorkflow"]["attributes"]["name"] = workflow
        body["scmGitReference"]["attributes"]["name"] = branch
        return post(env, "xcodecloud", "slack", body).body

    assert run(1, "FAILED", "Release", "main")["status"] == "delivered"
    assert run(2, "SUCCEEDED", "Nightly", "main")["channels"][0]["reason"] == "build_mode", "another workflow"
    assert run(3, "SUCCEEDED", "Release", "develop")["channels"][0]["reason"] == "build_mode", (
        "another branch"
    )
    fixed = run(4, "SUCCEEDED", "Release", "main")
    assert fixed["status"] == "delivered" and fixed["previous_outcome"] == "failure"
    assert "Fixed: Acme Field · Build #4 succeeded" in json.dumps(
        chat.at(path_of(env, "slack"))[-1].json(), ensure_ascii=False
    )
