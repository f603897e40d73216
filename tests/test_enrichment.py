"""Bitrise messages completed from its API (translators/sources/_bitrise_api.py), against a loopback
stand-in answering with recorded answers, and failing every way the issue names: 401, 404, slow,
429 and malformed. The message always goes, within the budget; the token is never shown."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from tests.fakebitrise import TOKEN, Failure, FakeBitrise
from translators import settings
from translators.model import Notification
from translators.sources import _bitrise_api

HEADERS = {"Bitrise-Event-Type": "build/finished"}
MENTIONS = {"dana": {"slack": "U012AB3CD", "teams": "dana@contoso.com", "name": "Dana"}}


@pytest.fixture
def api() -> Iterator[FakeBitrise]:
    server = FakeBitrise()
    _bitrise_api.client().forget()
    yield server
    server.close()
    _bitrise_api.client().forget()


@pytest.fixture
def env(channels: dict[str, str], api: FakeBitrise) -> dict[str, str]:
    return channels | {
        "BITRISE_API_TOKEN": TOKEN,
        "BITRISE_API_URL": api.url,
        "MENTIONS": json.dumps(MENTIONS),
    }


def bodies(answer: Any) -> dict[str, Any]:
    return {c["channel"]: c["body"] for c in answer.body["channels"]}


def test_a_failed_build_gets_title_commit_trigger_workflow_duration_and_a_mention(
    env: dict[str, str],
) -> None:
    answer = post(
        env, "bitrise", "slack+teams+legacy", sample("bitrise/build-failed").body(), HEADERS, {"dry_run": "1"}
    )
    assert answer.status == 200 and answer.body["enrichment"] == "complete"
    drawn = bodies(answer)
    for channel, body in drawn.items():
        text = json.dumps(body, ensure_ascii=False)
        for expected in (
            "acme-ios",
            "9fceb02d",
            "Fix the login button on small screens",
            "dana",
            "primary",
            "7m 27s",
        ):
            assert expected in text, (channel, expected)
        assert "305da28f92b6b419: " not in text, "the summary names the app by its title, not its slug"
    slack = json.dumps(drawn["slack"])
    assert '{"type": "user", "user_id": "U012AB3CD"}' in slack
    card = drawn["teams"]["attachments"][0]["content"]
    assert card["msteams"]["entities"] == [
        {"type": "mention", "text": "<at>Dana</at>", "mentioned": {"id": "dana@contoso.com", "name": "Dana"}}
    ]
    assert any(b.get("text") == "cc @<at>Dana</at>" for b in card["body"]), "one mention, in a TextBlock"
    legacy = json.dumps(drawn["legacy"])
    assert "cc @Dana" in legacy and "<at>" not in legacy and "U012AB3CD" not in legacy


def test_app_names_win_over_the_apis_title(env: dict[str, str]) -> None:
    named = env | {"APP_NAMES": "bitrise:305da28f92b6b419=Acme iOS"}
    answer = post(named, "bitrise", "slack", sample("bitrise/build-failed").body(), HEADERS, {"dry_run": "1"})
    text = json.dumps(bodies(answer)["slack"], ensure_ascii=False)
    # acme-ios is still in the commit's link (the repository's name), never as the app.
    assert "Acme iOS" in text and "acme-ios" not in text.replace("github.com/acme/acme-ios/", "")


def test_a_successful_build_links_each_install_page(env: dict[str, str], api: FakeBitrise) -> None:
    answer = post(
        env, "bitrise", "teams", sample("bitrise/build-succeeded").body(), HEADERS, {"dry_run": "1"}
    )
    actions = bodies(answer)["teams"]["attachments"][0]["content"]["actions"]
    # The install page is a better second button than the app's page, which is left out.
    assert [a["title"] for a in actions] == ["Open build", "Install"]
    assert actions[1]["url"].startswith("https://app.bitrise.io/artifact/6f0e1c2b3a495867/p/")
    asked = [path for path, _ in api.requests]
    assert not any(path.endswith("/artifacts/0a1b2c3d4e5f6071") for path in asked), "no page, no call"
    text = json.dumps(bodies(answer)["teams"], ensure_ascii=False)
    assert "Build #3 succeeded on feature/branch" in text and '"text": "#32"' in text
    assert "4b825dc6" in text and " Add the offline banner" in text


def test_the_token_goes_in_the_header_only_and_is_never_shown(
    env: dict[str, str], api: FakeBitrise, caplog: pytest.LogCaptureFixture
) -> None:
    answer = post(env, "bitrise", "slack", sample("bitrise/build-failed").body(), HEADERS)
    assert answer.body["channels"][0]["status"] == "delivered"
    assert api.requests and all(auth == TOKEN for _, auth in api.requests)
    assert all(TOKEN not in path for path, _ in api.requests)
    api.fail(Failure(status=401))
    refused = post(env, "bitrise", "slack", sample("bitrise/build-aborted").body(), HEADERS)
    assert refused.body["enrichment"] == "unavailable: the Bitrise API refused the token (401)"
    assert TOKEN not in json.dumps(answer.body) + json.dumps(refused.body) + caplog.text
    assert TOKEN in settings.load(env).secrets(), "the log filter masks it"


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure(status=401), "the Bitrise API refused the token (401)"),
        (Failure(status=404), "the Bitrise API does not know this app or build (404)"),
        (Failure(status=503), "the Bitrise API answered 503"),
        (Failure(body=b'{"data": {"title": '), "the Bitrise API's answer is not JSON"),
        (Failure(body=b'{"message": "moved"}'), "the Bitrise API's answer is not the expected JSON"),
        (Failure(delay=3.0), "the Bitrise API did not answer within 2 s"),
        (
            Failure(status=429, headers={"Retry-After": "120"}),
            "rate limited by the Bitrise API (429); calls resume in 120 s",
        ),
    ],
    ids=["401", "404", "503", "malformed", "wrong-shape", "slow", "429"],
)
def test_the_message_goes_with_what_the_webhook_had_when_the_api_fails(
    env: dict[str, str], api: FakeBitrise, chat: ChatServer, failure: Failure, reason: str
) -> None:
    api.fail(failure)
    started = time.monotonic()
    answer = post(env, "bitrise", "slack", sample("bitrise/build-failed").body(), HEADERS)
    took = time.monotonic() - started
    assert answer.body["enrichment"] == f"unavailable: {reason}"
    assert answer.body["channels"][0]["status"] == "delivered"
    assert took < _bitrise_api.BUDGET_SECONDS + 1.5, took  # the budget, then one quick delivery
    (received,) = chat.at(path_of(env, "slack"))
    text = json.dumps(received.json(), ensure_ascii=False)
    assert "Build #41 failed" in text and "305da28f92b6b419" in text, "the webhook's own facts"
    assert "9fceb02d" not in text


def test_a_rate_limit_is_honoured_until_retry_after(env: dict[str, str], api: FakeBitrise) -> None:
    api.fail(Failure(status=429, headers={"Retry-After": "120"}))
    post(env, "bitrise", "slack", sample("bitrise/build-failed").body(), HEADERS, {"dry_run": "1"})
    calls = len(api.requests)
    api.fail(None)
    again = post(env, "bitrise", "slack", sample("bitrise/build-aborted").body(), HEADERS, {"dry_run": "1"})
    assert len(api.requests) == calls, "no call while the API asked us to wait"
    assert again.body["enrichment"].startswith(
        "unavailable: rate limited by the Bitrise API; calls resume in"
    )


def test_the_app_title_is_asked_once_an_hour(env: dict[str, str], api: FakeBitrise) -> None:
    for name in ("bitrise/build-failed", "bitrise/build-aborted"):  # the same app
        answer = post(env, "bitrise", "slack", sample(name).body(), HEADERS, {"dry_run": "1"})
        assert answer.body["enrichment"] == "complete"
    app_calls = [p for p, _ in api.requests if p.rstrip("/").endswith("/apps/305da28f92b6b419")]
    assert len(app_calls) == 1


def test_an_aborted_build_says_why(env: dict[str, str]) -> None:
    answer = post(env, "bitrise", "slack", sample("bitrise/build-aborted").body(), HEADERS, {"dry_run": "1"})
    assert "Aborted by a newer build of release/2.4" in json.dumps(bodies(answer)["slack"])


def test_without_a_token_nothing_is_asked(channels: dict[str, str], api: FakeBitrise) -> None:
    answer = post(
        channels | {"BITRISE_API_URL": api.url},
        "bitrise",
        "slack",
        sample("bitrise/build-failed").body(),
        HEADERS,
    )
    assert "enrichment" not in answer.body and api.requests == []


def test_skipped_events_ask_nothing(env: dict[str, str], api: FakeBitrise) -> None:
    quiet = env | {"CHANNEL_SLACK_EVENTS": "build.succeeded"}
    answer = post(quiet, "bitrise", "slack", sample("bitrise/build-failed").body(), HEADERS)
    assert answer.body["status"] == "skipped" and api.requests == []


def test_apply_keeps_what_the_webhook_said() -> None:
    from translators.samples import notification

    n = notification(sample("bitrise/build-failed"))
    assert isinstance(n, Notification) and n.workflow == "primary"
    details = _bitrise_api.Details(
        app_title="  ",
        build=_bitrise_api.BuildAnswer(
            triggered_workflow="other", commit_message="\n\n", triggered_by="schedule"
        ),
    )
    done = _bitrise_api.apply(n, details)
    assert done.workflow == "primary" and done.commit_message is None
    assert done.app_display is None and done.app_id == "305da28f92b6b419", "a blank title names nothing"
    assert done.triggered_by == "schedule" and done.people == (), "a schedule is nobody"


def test_the_api_links_the_commit_and_the_pull_request() -> None:
    from translators.samples import notification

    n = notification(sample("bitrise/build-succeeded"))
    assert isinstance(n, Notification) and n.commit_url is None and n.pull_request_url is None
    # The pages as the API gave them.
    done = _bitrise_api.recorded(n, sample("bitrise/build-succeeded").api_answers() or {})
    assert done.commit_url == (
        "https://github.com/acme/acme-android/commit/4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    )
    assert done.pull_request_url == "https://github.com/acme/acme-android/pull/32"
    # Without them, built from the app's repo_url (here a GitLab repository, in the ssh form).
    built = _bitrise_api.apply(
        n,
        _bitrise_api.Details(
            build=_bitrise_api.BuildAnswer(commit_hash="4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
            repo_url="git@gitlab.com:acme/mobile/acme-android.git",
        ),
    )
    assert built.commit_url == (
        "https://gitlab.com/acme/mobile/acme-android/-/commit/4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    )
    assert built.pull_request_url == "https://gitlab.com/acme/mobile/acme-android/-/merge_requests/32"
    # A host whose pages we do not know: no link rather than a guess.
    unknown = _bitrise_api.apply(
        n,
        _bitrise_api.Details(
            build=_bitrise_api.BuildAnswer(commit_hash="4b825dc6"),
            repo_url="https://git.acme.example/a/b.git",
        ),
    )
    assert unknown.commit == "4b825dc6" and unknown.commit_url is None and unknown.pull_request_url is None


def test_several_install_pages_say_which_is_which() -> None:
    from translators.samples import notification

    n = notification(sample("bitrise/build-succeeded"))
    assert isinstance(n, Notification)
    pages = (
        _bitrise_api.ArtifactAnswer(
            artifact_type="android-apk", public_install_page_url="https://app.bitrise.io/a/1"
        ),
        _bitrise_api.ArtifactAnswer(
            artifact_type="ios-ipa", public_install_page_url="https://app.bitrise.io/a/2"
        ),
    )
    done = _bitrise_api.apply(n, _bitrise_api.Details(artifacts=pages))
    assert [link.label for link in done.links] == ["Open build", "Install APK", "Install IPA"]
    assert all(len(link.label) <= 14 for link in done.links)
