"""Appcircle: events recognised by the words of their action and title (only Build|BuildStart is
documented by name), the branch and profile read from the message, and identities."""

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

translate = partial(sourcetools.translate, "appcircle")
notification = partial(sourcetools.notification, "appcircle")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "appcircle")

START = json.loads(sample("appcircle/build-start").body())  # the docs' only example


def event(action: str, title: str | None = None, message: str | None = None) -> dict[str, Any]:
    body = copy.deepcopy(START)
    body["action"] = action
    body["title"] = title
    if message is not None:
        body["message"] = message
    return body


@pytest.mark.parametrize(
    ("action", "title", "expected"),
    [
        ("Build|BuildStart", "Build Started", ("build.started", "running")),
        ("Build|BuildSuccess", "Build Success", ("build.succeeded", "success")),
        ("Build|BuildSucceeded", None, ("build.succeeded", "success")),
        ("Build|BuildCompletedWithWarning", "Build Complete with Warnings", ("build.succeeded", "warning")),
        ("Build|BuildFailed", "Build Failed", ("build.failed", "failure")),
        ("Build|BuildTimeout", "Build Timeout", ("build.failed", "failure")),
        ("Build|BuildCanceled", "Build Canceled", ("build.canceled", "canceled")),
        ("build|buildcancelled", None, ("build.canceled", "canceled")),
        (
            "Build|Unknown",
            "Build Failed",
            ("build.failed", "failure"),
        ),  # the title says what the action does not
        (
            "TestingDistribution|AppShared",
            "App Shared for Testing Distribution",
            ("release.published", "success"),
        ),
        ("Distribution|NewVersionUploaded", None, ("build.uploaded", "info")),
        ("Publish|PublishFlowSucceeded", None, ("release.published", "success")),
        ("Publish|VersionRejected", "A Version is Rejected on Publish", ("review.rejected", "failure")),
        ("Publish|PublishFlowFailed", None, ("release.updated", "failure")),
        ("EnterpriseStore|AppShared", None, ("release.published", "success")),
        ("SigningIdentity|IosCertificateExpirationReminder", None, ("certificate.expiring", "warning")),
    ],
)
def test_events_are_recognised_by_their_words(
    action: str, title: str | None, expected: tuple[str, str]
) -> None:
    n = notification(event(action, title))
    assert (n.event, n.outcome) == expected


@pytest.mark.parametrize(
    ("action", "title"),
    [
        ("Build|FetchStart", "Fetch Started"),
        ("Build|TestReportCreated", "Test Report Created"),
        ("Publish|PublishStepStarted", "Publish Step Started"),
        ("SigningIdentity|AppleDeviceRegistered", "Apple Device Registered"),
        ("Something|New", None),
    ],
)
def test_events_with_nothing_to_tell_are_acknowledged(action: str, title: str | None) -> None:
    result = translate(event(action, title))
    assert isinstance(result, Ignored) and result.event == action


def test_the_docs_example_reads_branch_profile_and_links() -> None:
    n = notification(START)
    assert (n.title, n.app, n.branch, n.app_key) == (
        "Build started",
        "pr_mr_tag_test",
        "develop",
        "7f17fdb4-46e7-40c3-a01d-1ef18de06890",
    )
    assert n.build_id == "9e3c7dcd-d292-4144-9844-ca07df6a8924", "the task, not the all-zero build id"
    # The build's own view (its logs) first; the profile's page second.
    assert [link.label for link in n.links] == ["Open build", "Open profile"]
    assert n.url == START["links"]["viewlogs"] and n.links[1].url == START["links"]["detail"]
    assert n.sent_at is not None and n.sent_at.year == 2022, "seven fractional digits and +00:00 are read"


def test_a_message_of_another_shape_is_shown_as_it_is() -> None:
    n = notification(
        event("Build|BuildFailed", "Build Failed", "Build #12 of Acme failed https://my.appcircle.io/x")
    )
    assert n.branch is None and n.details == "Build #12 of Acme failed"
    assert n.title == "Build failed" and "Message" not in plain_facts(n)


def test_a_distribution_says_its_message_as_its_title() -> None:
    n = notification(json.loads(sample("appcircle/distribution-shared").body()))
    assert n.title == "Acme Field iOS 2.4.0 (212) was shared with the QA testing group"
    assert n.status_text == "Shared with testers" and n.details is None and n.facts == ()
    assert n.url == "https://my.appcircle.io/distribute/detail/8b9c0d1e-2f3a-4b4c-8d5e-6f7a8b9c0d1e"
    assert [link.label for link in n.links] == ["Open profile"]
    long = "The publish flow of Acme Field Android 2.4.0 (212) succeeded. " * 5
    n = notification(event("Publish|PublishFlowSucceeded", None, long))
    assert len(n.title) <= 150 and n.title.endswith("…") and n.details == long.strip()
    n = notification(event("Publish|PublishFlowSucceeded", None, ""))
    assert n.title == "Publish flow succeeded" and n.details is None


@pytest.mark.parametrize(("change", "path"), [({"action": ""}, "action"), ({"item": "x"}, "item")])
def test_a_body_appcircle_would_not_send_is_422_naming_the_field(change: dict[str, Any], path: str) -> None:
    assert path in errors_of({**START, **change})


def test_start_and_end_of_a_build_share_its_message_and_each_is_sent_once(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    done = sample("appcircle/build-succeeded").body()
    for body in (sample("appcircle/build-start").body(), done, done):
        assert post(channels, "appcircle", "slack", body).status == 200
    assert len(chat.at(path_of(channels, "slack"))) == 2
    start, end = (notification(json.loads(b)) for b in (sample("appcircle/build-start").body(), done))
    assert start.message_key == end.message_key and start.event_id != end.event_id
