"""Ionic Appflow: final states, skipped states (200), package and web fields, 422 paths, end to end."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

from tests import sourcetools
from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from translators.errors import Ignored
from translators.sources.appflow import DOWNLOAD_LABEL

PACKAGE = json.loads(sample("appflow/package-success").body())
WEB = json.loads(sample("appflow/web-success").body())


translate = partial(sourcetools.translate, "appflow")
notification = partial(sourcetools.notification, "appflow")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "appflow")


@pytest.mark.parametrize(
    ("base", "state", "event", "outcome", "title"),
    [
        (PACKAGE, "success", "build.succeeded", "success", "Android build #777 succeeded"),
        (PACKAGE, "failed", "build.failed", "failure", "Android build #777 failed"),
        (PACKAGE, "canceled", "build.canceled", "canceled", "Android build #777 was canceled"),
        (PACKAGE, "FAILED", "build.failed", "failure", "Android build #777 failed"),
        # A web build with a live update channel is a deploy: the title says where to.
        (WEB, "success", "build.succeeded", "success", "Web build #101 deployed to threeve"),
        (WEB, "failed", "build.failed", "failure", "Web build #101 failed to deploy to threeve"),
        (WEB, "canceled", "build.canceled", "canceled", "Web build #101 was canceled"),
        (WEB, "FAILED", "build.failed", "failure", "Web build #101 failed to deploy to threeve"),
    ],
)
def test_final_states(base: dict[str, Any], state: str, event: str, outcome: str, title: str) -> None:
    n = notification({**base, "state": state})
    assert (n.event, n.outcome, n.title) == (event, outcome, title)


@pytest.mark.parametrize("state", ["created", "pending", "running", "Running"])
@pytest.mark.parametrize("base", [PACKAGE, WEB], ids=["package", "web"])
def test_other_states_are_ignored(base: dict[str, Any], state: str) -> None:
    result = translate({**base, "state": state})
    assert isinstance(result, Ignored)
    assert state.lower() in result.reason and result.event == state.lower()


def test_skipped_state_is_ignored_even_when_the_rest_is_incomplete() -> None:
    # Appflow would resend a 422 five times; a build that is still running is never forwarded.
    assert isinstance(translate({"state": "running", "buildInfo": {"id": 1}}), Ignored)


def test_package_build_fields() -> None:
    n = notification(PACKAGE)
    assert n.title == "Android build #777 succeeded"
    assert (n.app, n.platform, n.build_number, n.build_id) == (
        "Awesome App",
        "Android",
        "777",
        "2216322b-35be-4af2-aaad-2b4e57354f88",
    )
    assert (n.workflow, n.environment, n.branch, n.tag) == (
        "my-awesome-automation",
        "staging",
        "different-branch",
        None,
    )
    assert (n.commit, n.commit_message, n.author) == (
        "e900ae1863482df4f9c24ee759d15a9250de77a7",
        "github 🦊",
        "Ionitron (ionitron)",
    )
    assert n.duration_text == "7m 37s"
    assert n.started_at is not None and n.finished_at is not None
    facts = plain_facts(n)
    assert facts["Automation"] == "my-awesome-automation" and "Workflow" not in facts
    assert "Build type" not in facts and "debug" not in n.title, "the build type helps nobody at a glance"
    assert "Platform" not in facts and "Android" in n.title, "the title says the platform"
    assert "Certificate" not in facts, "said on failures only"
    assert "Channel" not in facts
    assert n.commit_url is None, "Appflow's payload names no repository, only its id"


def test_download_link_says_it_expires() -> None:
    n = notification(PACKAGE)
    # Appflow documents no page of one build: the app's builds list is the main button.
    assert n.url == "https://dashboard.ionicframework.com/app/abcd1234/build/builds"
    assert n.links[0].url == n.url and n.links[0].label == "Open builds"
    assert n.links[1].url == "https://www.ionicjs.com/one-awesome-app"
    assert n.links[1].label == DOWNLOAD_LABEL and "24h" in DOWNLOAD_LABEL and len(DOWNLOAD_LABEL) <= 14


def test_no_download_link_without_download_url_or_on_failure() -> None:
    without = {k: v for k, v in PACKAGE.items() if k != "downloadUrl"}
    assert [link.label for link in notification(without).links] == ["Open builds"]
    assert DOWNLOAD_LABEL not in [link.label for link in notification({**PACKAGE, "state": "failed"}).links]


def test_web_build_fields() -> None:
    n = notification(WEB)
    assert n.title == "Web build #101 deployed to threeve"
    assert n.platform == "Web"
    facts = plain_facts(n)
    assert "Channel" not in facts and "Build type" not in facts, "the title says the channel"
    assert [link.label for link in n.links] == ["Open builds"]
    canceled = notification({**WEB, "state": "canceled"})
    assert plain_facts(canceled)["Channel"] == "threeve", "said where the title does not"


def test_web_failed_sample_says_the_deploy_failed() -> None:
    n = notification(json.loads(sample("appflow/web-failed").body()))
    assert n.title == "Web build #4527502 failed to deploy to Production"
    assert "Channel" not in plain_facts(n)
    assert n.summary == (
        "Awesome App: Web build #4527502 failed to deploy to Production"
        " (Appflow automation deploy-web-production)"
    )


def test_build_type_typo_and_corrected_spelling_are_both_read() -> None:
    # Read to tell a signing certificate that merely repeats the build type, not shown.
    top_level_dropped = {k: v for k, v in PACKAGE.items() if k != "type"}
    failed = {**top_level_dropped, "state": "failed"}
    assert "Certificate" not in plain_facts(notification(failed)), "profile 'debug' is the build type"
    automation = {k: v for k, v in PACKAGE["automation"].items() if k != "buidType"}
    fixed = {**failed, "automation": {**automation, "buildType": "release"}}
    assert plain_facts(notification(fixed))["Certificate"] == "debug"
    assert notification(fixed).title == "Android build #777 failed"


def test_ios_failed_sample() -> None:
    n = notification(json.loads(sample("appflow/package-ios-failed").body()))
    assert n.title == "iOS build #4527329 failed"
    assert plain_facts(n)["Certificate"] == "Acme Distribution 2025", "a failure's possible cause"
    assert n.commit_message is not None and n.commit_message.startswith("Bump version to 2.4.0")
    assert plain_facts(n).get("Commit") == "3f9c2a71 Bump version to 2.4.0"


def test_tag_ref_is_a_tag() -> None:
    n = notification(json.loads(sample("appflow/package-canceled").body()))
    assert (n.tag, n.branch) == ("v2.4.0", None)
    assert "Certificate" not in plain_facts(n), "a canceled build's certificate is not its cause"


def test_platform_comes_from_the_job_type_when_not_sent() -> None:
    payload = {k: v for k, v in PACKAGE.items() if k != "platform"}
    payload["automation"] = {k: v for k, v in PACKAGE["automation"].items() if k != "platform"}
    payload["buildInfo"] = {**PACKAGE["buildInfo"], "job_type": "package-ios"}
    assert notification(payload).platform == "iOS"


def test_doubled_zone_timestamp_is_read() -> None:
    n = notification({**PACKAGE, "finished": "2018-08-24T14:56:45.986317Z+00:00"})
    assert n.duration_text == "7m 37s"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"state": "exploded"}, "state"),
        ({"state": 3}, "state"),
        ({"id": None}, "id"),
        ({"automation": None}, "automation"),
        ({"automation": {"id": 1}}, "automation.name"),
        ({"started": "yesterday"}, "started"),
        ({"commit": "e900ae1"}, "commit"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, Any], path: str) -> None:
    assert path in errors_of({**PACKAGE, **change})


def test_missing_state_is_named() -> None:
    assert errors_of({k: v for k, v in PACKAGE.items() if k != "state"}) == ["state"]


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["package-success", "package-ios-failed", "package-canceled", "web-success", "web-failed"]
)
def test_every_sample_is_delivered_200(name: str, chat: ChatServer, channels: dict[str, str]) -> None:
    answer = post(channels, "appflow", "slack+teams+legacy", sample(f"appflow/{name}").body())
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "delivered" and answer.body["source"] == "appflow"
    for channel in ("slack", "teams", "legacy"):
        [got] = chat.at(path_of(channels, channel))
        assert "Awesome App" in got.body.decode()


@pytest.mark.parametrize("state", ["created", "pending", "running"])
def test_running_states_are_200_ignored_and_nothing_is_sent(
    state: str, chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(channels, "appflow", "slack+teams+legacy", {**PACKAGE, "state": state})
    assert answer.status == 200, "Appflow resends anything but 200"
    assert answer.body["status"] == "ignored" and state in answer.body["reason"]
    assert all(chat.at(path_of(channels, c)) == [] for c in ("slack", "teams", "legacy"))


def test_dry_run_shows_automation_and_expiring_download(channels: dict[str, str]) -> None:
    answer = post(channels, "appflow", "slack+teams", PACKAGE, query={"dry_run": "1"})
    assert answer.status == 200 and answer.body["status"] == "dry_run"
    slack, teams = (json.dumps(c["body"], ensure_ascii=False) for c in answer.body["channels"])
    for text in (slack, teams):
        assert "Automation" in text and "my-awesome-automation" in text
        assert DOWNLOAD_LABEL in text and "staging" in text


def test_invalid_payload_is_422_with_paths(chat: ChatServer, channels: dict[str, str]) -> None:
    answer = post(channels, "appflow", "slack", {**PACKAGE, "state": "done", "id": None})
    assert answer.status == 422
    assert answer.body["error"] == "invalid_payload"
    assert [e["path"] for e in answer.body["errors"]] == ["state"]
    answer = post(channels, "appflow", "slack", {**PACKAGE, "id": None, "automation": {}})
    assert answer.status == 422
    assert {e["path"] for e in answer.body["errors"]} == {"id", "automation.name"}
    assert chat.at(path_of(channels, "slack")) == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"", "empty"), (b'[{"state": "success"}]', "array"), (b'{"state": "success",', "not valid JSON")],
)
def test_bad_bodies_are_400(raw: bytes, words: str, channels: dict[str, str]) -> None:
    answer = post(channels, "appflow", "slack", raw)
    assert answer.status == 400
    assert answer.body["error"] == "invalid_body" and words in answer.body["message"]
