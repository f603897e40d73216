"""Expo EAS: build and submit statuses, the facts a developer reads first, identities, build modes
per project, platform and profile."""

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

translate = partial(sourcetools.translate, "eas")
notification = partial(sourcetools.notification, "eas")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "eas")

ERRORED = json.loads(sample("eas/build-errored").body())  # the docs' example
FINISHED = json.loads(sample("eas/build-finished").body())
SUBMIT = json.loads(sample("eas/submit-errored").body())  # the docs' example


def with_status(base: dict[str, Any], status: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body.update(status=status, **changes)
    return body


@pytest.mark.parametrize(
    ("status", "event", "outcome", "title"),
    [
        ("finished", "build.succeeded", "success", "Android build 1.0.2 (123) succeeded"),
        ("errored", "build.failed", "failure", "Android build 1.0.2 (123) failed"),
        ("canceled", "build.canceled", "canceled", "Android build 1.0.2 (123) was canceled"),
        ("ERRORED", "build.failed", "failure", "Android build 1.0.2 (123) failed"),
    ],
)
def test_build_statuses(status: str, event: str, outcome: str, title: str) -> None:
    n = notification(with_status(ERRORED, status))
    assert (n.event, n.outcome, n.title) == (event, outcome, title)


@pytest.mark.parametrize(
    ("status", "event", "title"),
    [
        ("finished", "build.uploaded", "Android build submitted to Google Play"),
        ("errored", "build.upload_failed", "Android build submission to Google Play failed"),
        ("canceled", "build.canceled", "Android build submission to Google Play was canceled"),
    ],
)
def test_submit_statuses(status: str, event: str, title: str) -> None:
    n = notification(with_status(SUBMIT, status))
    assert (n.event, n.title) == (event, title)
    assert (n.error is not None) == (status == "errored")


@pytest.mark.parametrize("status", ["in-progress", "new", "in-queue"])
def test_a_status_that_is_not_final_is_acknowledged(status: str) -> None:
    assert isinstance(translate(with_status(ERRORED, status)), Ignored)
    assert isinstance(translate(with_status(SUBMIT, status)), Ignored)


def test_a_failed_build_says_why_and_a_finished_one_links_its_artifact() -> None:
    failed = notification(ERRORED)
    assert failed.error == "Unknown error. Please see logs. (UNKNOWN_ERROR)"
    assert failed.details is None, "a short error is said once"
    assert [link.label for link in failed.links] == ["Open build"], "no download for a failed build"
    ok = notification(FINISHED)
    facts = plain_facts(ok)
    assert (facts["App"], facts["Profile"], facts["Triggered by"]) == ("Acme Field", "preview", "danalee")
    assert (
        facts["Commit"] == "9fceb02d Fix the login button on small screens" and facts["Duration"] == "14m 44s"
    )
    for noise in ("App identifier", "Distribution", "Update channel"):
        assert noise not in facts
    assert ok.error is None and ok.commit_url is None, "EAS names no git remote"
    assert ok.title == "iOS build 2.4.0 (212) succeeded"
    assert ok.links[1].url == "https://expo.dev/artifacts/eas/q8Hn2vXk4bTt7PzR1sLm.ipa"


def test_a_submission_links_its_page_its_build_and_its_logs() -> None:
    n = notification(SUBMIT)
    assert [link.label for link in n.links] == ["Submission", "Open build", "Logs"]
    assert n.links[1].url.endswith(
        "/accounts/dsokal/projects/example/builds/8c84111e-6d39-449c-9895-071d85fd3e61"
    )


def test_a_long_error_is_also_kept_whole() -> None:
    text = "Gradle build failed.\n" + "> Task :app:compileReleaseKotlin FAILED\n" * 3
    body = {**ERRORED, "error": {"message": text, "errorCode": "EAS_BUILD_UNKNOWN_GRADLE_ERROR"}}
    n = notification(body)
    assert n.error is not None and n.error.startswith("Gradle build failed. > Task")
    assert n.error.endswith("(EAS_BUILD_UNKNOWN_GRADLE_ERROR)") and "\n" not in n.error
    assert n.details == text.strip() + "\n(EAS_BUILD_UNKNOWN_GRADLE_ERROR)"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"buildDetailsPageUrl": "https://expo.dev/x", "status": "finished", "projectName": "p"}, "id"),
        ({"submissionDetailsPageUrl": "https://expo.dev/x", "id": "i", "projectName": "p"}, "status"),
        ({"hello": "world"}, "(body)"),
    ],
)
def test_a_body_eas_would_not_send_is_422_naming_the_field(body: dict[str, Any], path: str) -> None:
    assert path in errors_of(body)


def test_a_resend_is_a_duplicate_and_a_retried_build_is_news(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    assert post(channels, "eas", "slack", ERRORED).body["status"] == "delivered"
    assert post(channels, "eas", "slack", ERRORED).body["channels"][0]["reason"] == "duplicate"
    retried = with_status(
        ERRORED, "errored", id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", parentBuildId=ERRORED["id"]
    )
    assert post(channels, "eas", "slack", retried).body["status"] == "delivered"
    assert len(chat.at(path_of(channels, "slack"))) == 2


def test_build_modes_per_platform_and_profile(chat: ChatServer, channels: dict[str, str]) -> None:
    env = channels | {"CHANNEL_SLACK_BUILD_SUCCESS": "after-failure"}

    def build(number: int, status: str, platform: str, profile: str) -> dict[str, Any]:
        body = with_status(FINISHED, status, id=f"build-{number}", platform=platform)
        body["metadata"]["buildProfile"] = profile
        return post(env, "eas", "slack", body).body

    assert build(1, "errored", "android", "production")["status"] == "delivered"
    assert build(2, "finished", "ios", "production")["status"] == "skipped", "iOS does not mend Android"
    assert build(3, "finished", "android", "preview")["status"] == "skipped", "nor another profile"
    fixed = build(4, "finished", "android", "production")
    assert fixed["status"] == "delivered" and fixed["previous_outcome"] == "failure"
