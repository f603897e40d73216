"""Every way of delivering keeps the same promise: retried when it may pass later, kept as a dead
letter when refused for good, and one build's events in the order they came (issue 24)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.chatserver import ChatServer, Reply
from tests.conftest import drain, path_of, post
from tests.fakeslack import TOKEN, FakeSlack
from translators import destinations, outbox, settings
from translators.pacing import PACER
from translators.state import now

CHANNEL = "C0BUILDS01"
TRIGGERED = {"Bitrise-Event-Type": "build/triggered"}
FINISHED = {"Bitrise-Event-Type": "build/finished"}


def build(slug: str, status: int, **more: Any) -> dict[str, Any]:
    return {
        "build_slug": slug,
        "build_number": 41,
        "app_slug": "305da28f92b6b419",
        "build_status": status,
        "build_triggered_workflow": "primary",
        "git": {"provider": "github", "src_branch": "main"},
        **more,
    }


def slug() -> str:
    return f"{time.monotonic_ns():016x}"[-16:]


def dead_letters(env: dict[str, str]) -> list[outbox.Entry]:
    return outbox.open_outbox(settings.load(env).app).entries("dead")


@pytest.fixture
def app_env(slack_app_env: dict[str, str]) -> dict[str, str]:
    return slack_app_env


def send(env: dict[str, str], build_slug: str, status: int, **more: Any) -> dict[str, Any]:
    headers = TRIGGERED if status == 0 else FINISHED
    answer = post(env, "bitrise", "builds", build(build_slug, status, **more), headers)
    (result,) = answer.body["channels"]
    return result


# -- the Slack app channel ------------------------------------------------------------------------


def test_a_transient_ok_false_on_an_update_is_retried_and_ends_failed_with_its_reply(
    app_env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    assert send(app_env, build_slug, 0)["slack_message"] == "posted"
    slack.script("chat.update", 200, {"ok": False, "error": "internal_error"})
    failed = send(app_env, build_slug, 2)
    assert (failed["status"], failed["reason"]) == ("queued", "retrying"), failed
    assert "internal_error" in failed["error"]
    drain(app_env)
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text
    (reply,) = slack.replies(message.ts)
    assert reply.reply_broadcast and "Build #41 failed" in reply.body["text"]
    assert dead_letters(app_env) == []


def test_an_update_answered_too_late_is_sent_again_and_its_reply_follows(
    app_env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    send(app_env, build_slug, 0)
    slack.delay = 2.5  # past DELIVERY_DEADLINE_SECONDS: the update's outcome is unknown
    failed = send(app_env, build_slug, 2)
    slack.delay = 0
    assert (failed["status"], failed["reason"]) == ("queued", "retrying"), failed
    drain(app_env)
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text
    (reply,) = slack.replies(message.ts)
    assert reply.reply_broadcast, "the people the failure concerns are notified after all"


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "not_in_channel", "token_revoked"])
def test_a_refusal_for_good_is_a_dead_letter_replayed_after_the_fix(
    app_env: dict[str, str], slack: FakeSlack, error: str
) -> None:
    slack.script("chat.postMessage", 200, {"ok": False, "error": error})
    result = send(app_env, slug(), 2)
    assert result["status"] == "failed" and error in result["error"] and result["hint"]
    (dead,) = dead_letters(app_env)
    assert result["dead_letter"] == dead.id and "outbox replay" in result["message"]
    assert error in (dead.dead_reason or "") and TOKEN not in json.dumps(result)
    # The token or the channel is fixed: the dead letter is replayed and delivered.
    store = outbox.open_outbox(settings.load(app_env).app)
    assert store.replay([dead.id], now()) == 1
    drain(app_env)
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text and dead_letters(app_env) == []


def test_an_invalid_token_is_a_dead_letter_delivered_once_the_token_is_fixed(
    app_env: dict[str, str], slack: FakeSlack
) -> None:
    wrong = app_env | {"SLACK_BOT_TOKEN": "xoxb-0000000000-wrong-token-000000"}
    result = send(wrong, slug(), 2)
    assert result["status"] == "failed" and "invalid_auth" in result["error"]
    assert len(dead_letters(app_env)) == 1
    outbox.open_outbox(settings.load(app_env).app).replay(None, now())
    drain(app_env)  # with the right token
    assert len(slack.top_level(CHANNEL)) == 1


def test_payload_formatting_is_literal_in_every_slack_app_text(
    app_env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    send(app_env, build_slug, 0, app_title="*bold* _it_ ~strike~ `code` :boom:")
    send(app_env, build_slug, 2, app_title="*bold* _it_ ~strike~ `code` :boom:")
    (message,) = slack.top_level(CHANNEL)
    (reply,) = slack.replies(message.ts)
    for text in (message.body["text"], message.updates[-1]["text"], reply.body["text"]):
        for live in ("*bold*", "_it_", "~strike~", "`code`", ":boom:"):
            assert live not in text, (live, text)
        assert text.replace("\u200b", "").count("*bold* _it_ ~strike~ `code` :boom:") == 1, text


# -- order: a build's later event waits for an earlier one still being tried -----------------------


def test_started_retried_in_its_request_then_failed_leaves_the_app_message_failed(
    app_env: dict[str, str], slack: FakeSlack
) -> None:
    env = app_env | {"DELIVERY_MAX_ATTEMPTS": "3", "DELIVERY_DEADLINE_SECONDS": "8"}
    build_slug = slug()
    slack.script("chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"})
    results: dict[str, dict[str, Any]] = {}
    started = threading.Thread(target=lambda: results.setdefault("started", send(env, build_slug, 0)))
    started.start()
    time.sleep(0.6)
    results["failed"] = send(env, build_slug, 2)
    started.join(20)
    assert results["failed"]["reason"] == "behind_event", results
    assert results["started"]["slack_message"] == "posted", results
    drain(env)
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text, "the failure is what the channel shows"


def test_started_retried_in_its_request_then_failed_reach_a_webhook_in_order(
    channels: dict[str, str], chat: ChatServer, state_env: dict[str, str]
) -> None:
    PACER.reset()
    env = (
        channels
        | state_env
        | {
            "DELIVERY_MAX_ATTEMPTS": "3",
            "DELIVERY_DEADLINE_SECONDS": "8",
            "OUTBOX_MIN_DELAY_SECONDS": "0.05",
            "OUTBOX_MAX_DELAY_SECONDS": "0.2",
        }
    )
    path = path_of(env, "slack")
    chat.script(path, Reply(429, "rate_limited", headers={"Retry-After": "3"}))
    build_slug = slug()
    results: dict[str, Any] = {}

    def started() -> None:
        results["started"] = post(env, "bitrise", "slack", build(build_slug, 0), TRIGGERED).body

    first = threading.Thread(target=started)
    first.start()
    time.sleep(0.6)
    results["failed"] = post(env, "bitrise", "slack", build(build_slug, 2), FINISHED).body
    first.join(20)
    assert results["failed"]["channels"][0]["reason"] == "behind_event", results
    drain(env)
    titles = [
        r.json()["attachments"][0]["fallback"]
        for r in chat.at(path)
        if r.json() and "attachments" in r.json()
    ]
    assert titles[-1].endswith("Build #41 failed on main"), titles
    assert [t.split(" ", 1)[1] for t in titles[-2:]] == [
        "primary · Build #41 started on main",
        "primary · Build #41 failed on main",
    ]


# -- webhooks: refused for good --------------------------------------------------------------------


def test_a_body_refused_in_rich_and_minimal_form_is_a_dead_letter(
    channels: dict[str, str], chat: ChatServer, state_env: dict[str, str]
) -> None:
    env = channels | state_env
    path = path_of(env, "teams")
    chat.script(path, Reply(400, "Bad payload"), Reply(400, "Bad payload"))
    answer = post(env, "bitrise", "teams", build(slug(), 2), FINISHED)
    (result,) = answer.body["channels"]
    assert answer.status == 502 and result["status"] == "failed" and result["fallback"].startswith("rejected")
    (dead,) = dead_letters(env)
    assert result["dead_letter"] == dead.id and dead.channel == "teams"
    outbox.open_outbox(settings.load(env).app).replay([dead.id], now())
    before = len(chat.at(path))
    drain(env)
    assert len(chat.at(path)) == before + 1 and dead_letters(env) == []


def test_a_first_try_400_on_a_webhook_is_a_dead_letter(
    channels: dict[str, str], chat: ChatServer, state_env: dict[str, str]
) -> None:
    env = channels | state_env
    chat.script(path_of(env, "slack"), Reply(404, "no_service"))
    answer = post(env, "bitrise", "slack", build(slug(), 2), FINISHED)
    (result,) = answer.body["channels"]
    assert answer.status == 502 and "revoked" in result["hint"]
    assert [d.id for d in dead_letters(env)] == [result["dead_letter"]]


def test_every_channel_has_one_destination_and_only_the_app_keeps_one_message(
    app_env: dict[str, str], channels: dict[str, str]
) -> None:
    loaded = settings.load(app_env | channels)
    kinds = {name: destinations.of(c) for name, c in loaded.channels.items()}
    assert kinds["builds"].keeps_one_message
    assert not any(d.keeps_one_message for name, d in kinds.items() if name != "builds")
