"""Slack app channels (translators/slackapp.py): one message per build, updated in place, against a
loopback stand-in for Slack's Web API, with memory in SQLite and in Table Storage (Azurite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.azurite import Azurite
from tests.conftest import ROOT, drain, post
from tests.fakeslack import TOKEN, FakeSlack
from translators import outbox, settings, state

CHANNEL = "C0BUILDS01"
TRIGGERED = {"Bitrise-Event-Type": "build/triggered"}
FINISHED = {"Bitrise-Event-Type": "build/finished"}
MENTIONS = {"dana": {"slack": "U012AB3CD", "name": "Dana"}}


@pytest.fixture
def env(slack_app_env: dict[str, str]) -> dict[str, str]:
    return {**slack_app_env, "MENTIONS": json.dumps(MENTIONS)}


def build(slug: str, status: int, number: int = 41, **more: Any) -> dict[str, Any]:
    return {
        "build_slug": slug,
        "build_number": number,
        "app_slug": "305da28f92b6b419",
        "build_status": status,
        "build_triggered_workflow": "primary",
        "git": {"provider": "github", "src_branch": "main"},
        **more,
    }


def send(env: dict[str, str], slug: str, status: int, **query: str) -> dict[str, Any]:
    headers = TRIGGERED if status == 0 else FINISHED
    answer = post(env, "bitrise", "builds", build(slug, status, triggered_by="manual-dana"), headers, query)
    (result,) = answer.body["channels"]
    return result


def restart() -> None:
    """What a new process starts with: no open store, no cached client."""
    state.close_all()
    outbox.close_all()


def slug() -> str:
    return f"b{uuid.uuid4().hex[:15]}"


def test_started_then_failed_is_one_message_updated_with_a_broadcast_reply(
    env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    started = send(env, build_slug, 0)
    assert (started["status"], started["slack_message"]) == ("delivered", "posted")
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 started" in message.text
    failed = send(env, build_slug, 2)
    assert (failed["status"], failed["slack_message"]) == ("delivered", "updated")
    assert slack.top_level(CHANNEL) == [message], "no second message in the channel"
    assert (
        "Build #41 failed" in message.text and "started" not in message.current["attachments"][0]["fallback"]
    )
    assert message.current["ts"] == message.ts and message.current["channel"] == CHANNEL
    (reply,) = slack.replies(message.ts)
    assert reply.reply_broadcast and "Build #41 failed" in reply.body["text"]
    assert "<@U012AB3CD>" in reply.body["text"], "the update notified nobody: the reply mentions"
    assert slack.methods() == ["chat.postMessage", "chat.update", "chat.postMessage"]
    assert all(call.authorization == f"Bearer {TOKEN}" for call in slack.calls)


def test_a_restart_between_the_events_changes_nothing(env: dict[str, str], slack: FakeSlack) -> None:
    build_slug = slug()
    send(env, build_slug, 0)
    restart()
    assert send(env, build_slug, 1)["slack_message"] == "updated"
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 succeeded" in message.text
    assert slack.replies(message.ts) == [], "a success is not broadcast by default"


def test_a_finished_build_without_a_start_posts_and_a_late_start_is_not_posted(
    env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    assert send(env, build_slug, 2)["slack_message"] == "posted"
    late = send(env, build_slug, 0)
    assert (late["status"], late["reason"]) == ("skipped", "superseded")
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text and message.updates == []
    assert slack.methods() == ["chat.postMessage"]


def test_a_deleted_message_is_posted_anew_and_the_new_one_is_updated_next(
    env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    send(env, build_slug, 0)
    (first,) = slack.top_level(CHANNEL)
    slack.delete(first.ts)
    aborted = send(env, build_slug, 3)
    assert aborted["slack_message"] == "reposted"
    second = next(m for m in slack.top_level(CHANNEL) if not m.deleted)
    assert second.ts != first.ts and "was aborted" in second.text
    restart()
    post(env, "bitrise", "builds", build(build_slug, 4), FINISHED)  # same build, a later status
    assert second.updates and "marked successful" in second.text


def test_the_rules_still_decide_but_a_posted_message_is_always_updated(
    env: dict[str, str], slack: FakeSlack
) -> None:
    quiet = env | {"CHANNEL_BUILDS_BUILD_SUCCESS": "never"}
    build_slug = slug()
    send(quiet, build_slug, 0)
    result = send(quiet, build_slug, 1)
    assert (result["status"], result["slack_message"]) == ("delivered", "updated")
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 succeeded" in message.text, "not left saying started"
    other = send(quiet, slug(), 1)  # no message of that build: skipped as before
    assert (other["status"], other["reason"]) == ("skipped", "build_mode")
    assert len(slack.top_level(CHANNEL)) == 1


def test_a_dry_run_says_whether_it_would_post_or_update(env: dict[str, str], slack: FakeSlack) -> None:
    build_slug = slug()
    assert send(env, build_slug, 0, dry_run="1")["slack_message"] == "post"
    send(env, build_slug, 0)
    dry = send(env, build_slug, 2, dry_run="1")
    assert (dry["status"], dry["slack_message"]) == ("dry_run", "update")
    assert "Build #41 failed" in json.dumps(dry["body"])
    assert slack.methods() == ["chat.postMessage"]


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("not_in_channel", "invite the app to the channel"),
        ("channel_not_found", "use the channel id"),
        ("invalid_auth", "Bot User OAuth Token"),
        ("missing_scope", "chat:write"),
    ],
)
def test_slacks_errors_are_named_with_a_hint(
    env: dict[str, str], slack: FakeSlack, error: str, hint: str
) -> None:
    slack.script("chat.postMessage", 200, {"ok": False, "error": error})
    result = send(env, slug(), 2)
    assert result["status"] == "failed" and error in result["error"] and hint in result["hint"]
    assert TOKEN not in json.dumps(result)


def test_a_rate_limit_queues_the_event_and_the_outbox_keeps_post_before_update(
    env: dict[str, str], slack: FakeSlack
) -> None:
    build_slug = slug()
    slack.script("chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    first = send(env, build_slug, 0)
    assert (first["status"], first["reason"], first["retry_after"]) == ("queued", "retrying", 1)
    second = send(env, build_slug, 2)
    assert (second["status"], second["reason"]) == ("queued", "behind_queue")
    restart()
    drain(env)
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text and len(message.updates) == 1
    assert slack.methods()[-3:] == ["chat.postMessage", "chat.update", "chat.postMessage"]


def test_two_requests_racing_on_one_build_end_with_one_message(env: dict[str, str], slack: FakeSlack) -> None:
    slack.delay = 0.3  # both are in flight together
    build_slug = slug()
    results: dict[int, dict[str, Any]] = {}

    def one(status: int) -> None:
        results[status] = send(env, build_slug, status)

    threads = [threading.Thread(target=one, args=(s,)) for s in (0, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # The second event of the build waits behind the first, being sent in its request (events of one
    # build go in order), and the outbox sends it after.
    outcomes = sorted(r.get("slack_message") or r["reason"] for r in results.values())
    assert outcomes == ["behind_event", "posted"], results
    drain(env)
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text, "whichever came first, the message ends at the outcome"


def test_webhook_and_app_channels_side_by_side(
    env: dict[str, str], slack: FakeSlack, channels: dict[str, str]
) -> None:
    both = env | {k: v for k, v in channels.items() if k.startswith("CHANNEL_SLACK_")}
    answer = post(both, "bitrise", "builds+slack", build(slug(), 2), FINISHED)
    by_channel = {c["channel"]: c for c in answer.body["channels"]}
    assert by_channel["builds"]["slack_message"] == "posted"
    assert "slack_message" not in by_channel["slack"] and by_channel["slack"]["status"] == "delivered"


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "needs a bot token: set SLACK_BOT_TOKEN or CHANNEL_BUILDS_SLACK_TOKEN"),
        ({"CHANNEL_BUILDS_SLACK_CHANNEL": "#builds"}, "must be a channel id like C0123ABCDEF"),
        ({"CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T0/B0/x"}, "not both"),
        ({"CHANNEL_BUILDS_FORMAT": "teams"}, "FORMAT must be slack"),
        ({"CHANNEL_BUILDS_BROADCAST": "build.broken"}, "matches no event"),
    ],
)
def test_a_wrong_slack_app_setting_is_named(env: dict[str, str], extra: dict[str, str], said: str) -> None:
    loaded = settings.load(env | extra)
    assert said in loaded.channel_errors["builds"]
    assert TOKEN not in loaded.channel_errors["builds"]


def test_health_says_slack_app_and_never_shows_the_token_or_channel(env: dict[str, str]) -> None:
    from translators import pipeline

    shown = json.dumps(pipeline.health(settings.load(env)).body)
    assert '"delivery": "slack app"' in shown and TOKEN not in shown and CHANNEL not in shown
    assert TOKEN in settings.load(env).secrets()


def test_two_processes_on_one_table_storage_update_one_message(
    slack: FakeSlack, azurite: Azurite, tmp_path: Path
) -> None:
    """``python -m translators send`` in two processes at once: the triggered and the finished event."""
    state_env = azurite.env()
    slack.delay = 0.3
    build_slug = slug()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHANNEL_", "STATE_"))},
        **state_env,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.url,
        "CHANNEL_BUILDS_SLACK_CHANNEL": CHANNEL,
        "PYTHONPATH": str(ROOT),
    }
    procs = []
    for status, event in ((0, "build/triggered"), (2, "build/finished")):
        payload = tmp_path / f"{status}.json"
        payload.write_text(json.dumps(build(build_slug, status)))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "translators",
                    "send",
                    "bitrise",
                    "builds",
                    str(payload),
                    "-H",
                    f"Bitrise-Event-Type: {event}",
                ],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=60) for p in procs]
    (message,) = slack.top_level(CHANNEL)
    assert "Build #41 failed" in message.text, outputs
    assert slack.methods().count("chat.postMessage") <= 2  # the post, and the failure's broadcast reply
