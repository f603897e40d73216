"""Notification rules end to end (translators/rules.py): filters, build modes, duplicates, memory.

Every request goes through ``pipeline.handle`` to the loopback chat server, with the state store
on SQLite and on Table Storage (Azurite): the ``state_env`` fixture runs each test once per backend.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import bodies, crosscheck
from tests.chatserver import ChatServer, Reply
from tests.conftest import path_of, post
from tests.test_golden import SETTINGS, notification_of
from translators import formats, pipeline, settings, sources, state
from translators.model import Notification
from translators.samples import get as sample

FINISHED = {"Bitrise-Event-Type": "build/finished"}
STATUS = {"S": 1, "F": 2, "C": 3}


def build(
    number: int, status: str, app: str = "app-one", branch: str = "main", workflow: str = "primary"
) -> dict[str, Any]:
    """A Bitrise build/finished payload; ``status`` S(ucceeded), F(ailed) or C(anceled)."""
    return {
        "build_slug": f"{app}-{branch}-{workflow}-{number}",
        "build_number": number,
        "app_slug": app,
        "build_status": STATUS[status],
        "build_triggered_workflow": workflow,
        "git": {"provider": "github", "src_branch": branch},
    }


def event_id(body: dict[str, Any]) -> str:
    source = sources.get("bitrise")
    assert source is not None
    n = source.translate(body, {k.lower(): v for k, v in FINISHED.items()})
    assert isinstance(n, Notification) and n.event_id
    return n.event_id


def titles(chat: ChatServer, env: dict[str, str], channel: str) -> list[str]:
    """The title line of every message the channel received, in order."""
    fmt = env[f"CHANNEL_{channel.upper()}_FORMAT"]
    return [bodies.title(fmt, got.json()) for got in chat.at(path_of(env, channel))]


def numbers(chat: ChatServer, env: dict[str, str], channel: str) -> list[int]:
    return [int(re.search(r"#(\d+)", t)[1]) for t in titles(chat, env, channel)]  # type: ignore[index]


def statuses(answer: pipeline.Answer) -> dict[str, str]:
    return {c["channel"]: c["status"] for c in answer.body["channels"]}


@pytest.fixture
def env(channels: dict[str, str], state_env: dict[str, str]) -> dict[str, str]:
    return {**channels, **state_env, "DELIVERY_DEADLINE_SECONDS": "3"}


# -- build modes ---------------------------------------------------------------------------------


def test_after_change_modes_get_exactly_the_transitions(env: dict[str, str], chat: ChatServer) -> None:
    env |= {
        # "failures and fixes only": build outcomes, each only when it differs from the last one.
        "CHANNEL_SLACK_EVENTS": "build.succeeded,build.failed",
        "CHANNEL_SLACK_BUILD_SUCCESS": "after-failure",
        "CHANNEL_SLACK_BUILD_FAILURE": "after-success",
        # every failure, no success
        "CHANNEL_LEGACY_BUILD_SUCCESS": "never",
    }
    sequence = "S F F C F S C S F S S F"
    answers = []
    for number, status in enumerate(sequence.split(), start=1):
        answers.append(post(env, "bitrise", "slack+teams+legacy", build(number, status), FINISHED))
    assert all(a.status == 200 for a in answers), [a.body for a in answers]
    # Canceled builds (4, 7) do not count: 5 follows 3's failure and 8 follows 6's success.
    assert numbers(chat, env, "slack") == [2, 6, 9, 10, 12]
    assert numbers(chat, env, "teams") == list(range(1, 13)), "always/always gets every event"
    assert numbers(chat, env, "legacy") == [2, 3, 4, 5, 7, 9, 12]
    slack = titles(chat, env, "slack")
    assert [t.split(" ", 1)[1] for t in slack] == [
        "primary · Build #2 failed on main",
        "Fixed: primary · Build #6 succeeded on main",
        "primary · Build #9 failed on main",
        "Fixed: primary · Build #10 succeeded on main",
        "primary · Build #12 failed on main",
    ]
    assert "Still failing: primary · Build #3 failed" in titles(chat, env, "teams")[2]
    first, third, fourth = answers[0].body, answers[2].body, answers[3].body
    assert statuses(answers[0]) == {"slack": "skipped", "teams": "delivered", "legacy": "skipped"}
    assert first["status"] == "delivered" and "previous_outcome" not in first
    by_channel = {c["channel"]: c for c in first["channels"]}
    slack = by_channel["slack"]
    assert slack["reason"] == "build_mode" and "no earlier failed build" in slack["message"]
    assert by_channel["legacy"]["reason"] == "build_mode" and "never" in by_channel["legacy"]["message"]
    assert third["previous_outcome"] == "failure"
    assert {c["channel"]: c.get("reason") for c in fourth["channels"]}["slack"] == "event_filter"


def test_after_success_sends_the_first_failure_of_a_new_branch(env: dict[str, str], chat: ChatServer) -> None:
    env |= {"CHANNEL_SLACK_BUILD_FAILURE": "after-success", "CHANNEL_SLACK_BUILD_SUCCESS": "after-failure"}
    first = post(env, "bitrise", "slack", build(1, "F", branch="feature/new"), FINISHED)
    assert first.body["status"] == "delivered", "no history: a breakage is news, not to be missed"
    again = post(env, "bitrise", "slack", build(2, "F", branch="feature/new"), FINISHED)
    assert again.body["status"] == "skipped" and "failed too" in again.body["channels"][0]["message"]
    success = post(env, "bitrise", "slack", build(3, "S", branch="feature/other"), FINISHED)
    assert success.body["status"] == "skipped", "a first success recovers from nothing"
    assert numbers(chat, env, "slack") == [1]


def test_history_is_per_source_app_branch_and_workflow(env: dict[str, str], chat: ChatServer) -> None:
    env |= {"CHANNEL_SLACK_BUILD_SUCCESS": "after-failure"}
    assert post(env, "bitrise", "slack", build(1, "F"), FINISHED).status == 200
    for other in (
        build(2, "S", branch="develop"),
        build(3, "S", workflow="deploy"),
        build(4, "S", app="app-two"),
    ):
        answer = post(env, "bitrise", "slack", other, FINISHED)
        assert answer.body["status"] == "skipped", answer.body
        assert "no earlier failed build" in answer.body["channels"][0]["message"]
    appcenter = {
        **json.loads(sample("appcenter/build-succeeded").body()),
        "app_name": "app-one",
        "branch": "main",
    }
    assert post(env, "appcenter", "slack", appcenter).body["status"] == "skipped", (
        "another source, other history"
    )
    assert post(env, "bitrise", "slack", build(5, "S"), FINISHED).body["status"] == "delivered"
    assert numbers(chat, env, "slack") == [1, 5]
    assert titles(chat, env, "slack")[1].split(" ", 1)[1].startswith("Fixed: primary · Build #5 succeeded")


def test_outcomes_are_recorded_even_when_no_channel_takes_them(env: dict[str, str], chat: ChatServer) -> None:
    env |= {"CHANNEL_SLACK_BUILD_SUCCESS": "after-failure", "CHANNEL_TEAMS_EVENTS": "crash.*"}
    answer = post(env, "bitrise", "teams", build(1, "F"), FINISHED)
    assert answer.status == 200 and answer.body["status"] == "skipped", answer.body
    assert answer.body["channels"][0]["reason"] == "event_filter"
    assert post(env, "bitrise", "slack", build(2, "S"), FINISHED).body["status"] == "delivered"
    assert numbers(chat, env, "slack") == [2] and chat.at(path_of(env, "teams")) == []


# -- event filters -------------------------------------------------------------------------------


def test_event_filters_with_patterns(env: dict[str, str], chat: ChatServer) -> None:
    env |= {"CHANNEL_SLACK_EVENTS": "build.failed, crash.*", "CHANNEL_TEAMS_EVENTS": "release.*,build.s*"}
    crash = json.loads(sample("appcenter/crash").body())
    answer = post(env, "appcenter", "slack+teams", crash)
    assert answer.status == 200 and answer.body["status"] == "delivered"
    assert statuses(answer) == {"slack": "delivered", "teams": "skipped"}
    skipped = answer.body["channels"][1]
    assert skipped["reason"] == "event_filter" and "crash.new_group" in skipped["message"]
    assert "release.*" in skipped["message"]

    answer = post(env, "bitrise", "slack+teams", build(1, "S"), FINISHED)
    assert statuses(answer) == {"slack": "skipped", "teams": "delivered"}
    started = post(
        env,
        "bitrise",
        "slack+teams",
        {**build(2, "S"), "build_status": 0},
        {"Bitrise-Event-Type": "build/triggered"},
    )
    assert started.body["event"] == "build.started"
    assert statuses(started) == {"slack": "skipped", "teams": "delivered"}
    answer = post(env, "bitrise", "slack", build(3, "C"), FINISHED)
    assert (answer.status, answer.body["status"]) == (200, "skipped")
    assert len(chat.at(path_of(env, "slack"))) == 1 and len(chat.at(path_of(env, "teams"))) == 2


# -- duplicates ----------------------------------------------------------------------------------


def test_a_retry_after_a_partial_fan_out_reaches_only_the_failed_channel(
    env: dict[str, str], chat: ChatServer
) -> None:
    chat.script(path_of(env, "slack"), Reply(404, "no_service"))
    body = build(1, "F")
    first = post(env, "bitrise", "slack+teams+legacy", body, FINISHED)
    assert first.status == 502 and statuses(first) == {
        "slack": "failed",
        "teams": "delivered",
        "legacy": "delivered",
    }
    retry = post(env, "bitrise", "slack+teams+legacy", body, FINISHED)
    assert retry.status == 200 and retry.body["status"] == "delivered", retry.body
    assert statuses(retry) == {"slack": "delivered", "teams": "skipped", "legacy": "skipped"}
    assert {c["channel"]: c.get("reason") for c in retry.body["channels"]}["teams"] == "duplicate"
    again = post(env, "bitrise", "slack+teams+legacy", body, FINISHED)
    assert (again.status, again.body["status"]) == (200, "skipped")
    assert {c["reason"] for c in again.body["channels"]} == {"duplicate"}
    assert [len(chat.at(path_of(env, c))) for c in ("slack", "teams", "legacy")] == [2, 1, 1]
    assert post(env, "bitrise", "slack", build(2, "F"), FINISHED).body["status"] == "delivered", (
        "a new event is new"
    )


def test_a_retried_fix_is_still_a_fix(env: dict[str, str], chat: ChatServer) -> None:
    """The retry of an event already recorded is judged against the build before it, not itself."""
    env |= {"CHANNEL_SLACK_BUILD_SUCCESS": "after-failure"}
    post(env, "bitrise", "teams", build(1, "F"), FINISHED)
    chat.script(path_of(env, "slack"), Reply(404, "no_service"))
    fixed = build(2, "S")
    assert post(env, "bitrise", "slack+teams", fixed, FINISHED).status == 502
    retry = post(env, "bitrise", "slack+teams", fixed, FINISHED)
    assert retry.status == 200 and statuses(retry) == {"slack": "delivered", "teams": "skipped"}, retry.body
    assert retry.body["previous_outcome"] == "failure"
    assert titles(chat, env, "slack")[-1].split(" ", 1)[1].startswith("Fixed: primary · Build #2")


def test_racing_deliveries_of_one_event_send_once(env: dict[str, str], chat: ChatServer) -> None:
    chat.default(path_of(env, "slack"), Reply(200, "ok", delay=0.3))
    body = build(1, "F")
    barrier = threading.Barrier(4)
    answers: list[pipeline.Answer] = []

    def send() -> None:
        barrier.wait()
        answers.append(post(env, "bitrise", "slack", body, FINISHED))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(chat.at(path_of(env, "slack"))) == 1
    outcomes = sorted(a.body["channels"][0]["status"] for a in answers)
    assert outcomes.count("delivered") == 1, [a.body for a in answers]
    for a in answers:
        result = a.body["channels"][0]
        if result["status"] == "in_progress":  # lost the race while the winner was still sending
            assert a.status == 200 and a.body["status"] == "in_progress" and result["in_progress"] is True
        elif result["status"] == "skipped":  # lost the race after the winner had delivered
            assert a.status == 200 and result["reason"] == "duplicate"


def test_a_stale_claim_is_taken_over_and_a_fresh_one_is_not(env: dict[str, str], chat: ChatServer) -> None:
    store = state.open_store(settings.load(env).app)
    crashed, busy = build(1, "F"), build(2, "F")
    assert store.claim(
        event_id(crashed), "slack", state.now() - state.CLAIM_STALE_AFTER - timedelta(seconds=5)
    ).held
    assert store.claim(event_id(busy), "slack", state.now()).held
    answer = post(env, "bitrise", "slack", crashed, FINISHED)
    assert answer.status == 200 and statuses(answer) == {"slack": "delivered"}, answer.body
    answer = post(env, "bitrise", "slack", busy, FINISHED)
    assert answer.status == 200 and answer.body["channels"][0]["status"] == "in_progress"
    assert "arrives once" in answer.body["channels"][0]["message"]
    assert numbers(chat, env, "slack") == [1]


def test_dry_run_changes_nothing(env: dict[str, str], chat: ChatServer) -> None:
    env |= {"CHANNEL_SLACK_BUILD_SUCCESS": "after-failure"}
    dry = {"dry_run": "1"}
    answer = post(env, "bitrise", "slack+teams", build(1, "F"), FINISHED, dry)
    assert answer.body["status"] == "dry_run"
    answer = post(env, "bitrise", "slack+teams", build(2, "S"), FINISHED, dry)
    slack, teams = answer.body["channels"]
    assert slack["status"] == "skipped", "the dry run did not record build 1's failure"
    assert teams["channel"] == "teams" and teams["body"]["attachments"]
    assert chat.at(path_of(env, "slack")) == [] and chat.at(path_of(env, "teams")) == []
    # Nothing was claimed: the same events are still new.
    assert post(env, "bitrise", "teams", build(1, "F"), FINISHED).body["status"] == "delivered"
    dry_fix = post(env, "bitrise", "slack", build(2, "S"), FINISHED, dry)
    assert dry_fix.body["previous_outcome"] == "failure", "a dry run reads memory"
    assert "Fixed: primary · Build #2" in bodies.title("slack", dry_fix.body["channels"][0]["body"])
    assert post(env, "bitrise", "slack", build(2, "S"), FINISHED).body["status"] == "delivered"
    assert numbers(chat, env, "slack") == [2] and numbers(chat, env, "teams") == [1]


# -- memory unavailable --------------------------------------------------------------------------

SECRET_KEY = base64.b64encode(b"storage account key, never shown").decode()


def broken_store(kind: str, tmp_path: Path) -> dict[str, str]:
    from tests.azurite import ACCOUNT_KEY, connection_string, free_port

    if kind == "sqlite":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        return {"STATE_STORE": f"sqlite:///{blocker / 'state.db'}"}
    connection = connection_string(free_port()).replace(ACCOUNT_KEY, SECRET_KEY)
    return {"STATE_STORE": "tables", "STATE_STORAGE_CONNECTION": connection, "STATE_TABLE": "down"}


@pytest.mark.parametrize("kind", ["sqlite", "tables"])
def test_a_store_that_is_down_loses_no_notification(
    kind: str, channels: dict[str, str], chat: ChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        **channels,
        **broken_store(kind, tmp_path),
        "CHANNEL_SLACK_BUILD_SUCCESS": "after-failure",
        "CHANNEL_LEGACY_BUILD_SUCCESS": "never",
    }
    caplog.set_level(logging.WARNING, logger="translators")
    started = time.perf_counter()
    answer = post(env, "bitrise", "slack+teams+legacy", build(1, "S"), FINISHED)
    assert time.perf_counter() - started < 5
    assert answer.status == 200, answer.body
    assert statuses(answer) == {"slack": "delivered", "teams": "delivered", "legacy": "skipped"}
    assert answer.body["memory"].startswith("unavailable: ")
    text = json.dumps(answer.body)
    assert SECRET_KEY not in text and "AccountKey" not in text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("memory unavailable" in w for w in warnings), warnings
    assert not any(SECRET_KEY in w for w in warnings)
    # Without memory a retry cannot be recognised: sending twice beats not sending. Meanwhile the
    # failed store is left alone rather than waited for on every request.
    again = post(env, "bitrise", "slack", build(1, "S"), FINISHED)
    assert again.body["status"] == "delivered" and "not tried again" in again.body["memory"]
    assert len(chat.at(path_of(env, "slack"))) == 2


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("EVENTS", "build.faild", "CHANNEL_OPS_EVENTS"),
        ("EVENTS", "build failed", "CHANNEL_OPS_EVENTS"),
        ("BUILD_SUCCESS", "after-success", "CHANNEL_OPS_BUILD_SUCCESS"),
        ("BUILD_FAILURE", "sometimes", "CHANNEL_OPS_BUILD_FAILURE"),
    ],
)
def test_invalid_rules_are_the_channels_configuration_error(
    setting: str, value: str, named: str, channels: dict[str, str]
) -> None:
    env = {**channels, "CHANNEL_OPS_URL": channels["CHANNEL_SLACK_URL"], "CHANNEL_OPS_FORMAT": "slack"}
    env[f"CHANNEL_OPS_{setting}"] = value
    loaded = settings.load(env)
    assert "ops" not in loaded.channels and named in loaded.channel_errors["ops"]
    assert "'ops'" in loaded.channel_errors["ops"]
    answer = post(env, "bitrise", "ops", build(1, "F"), FINISHED)
    assert answer.status == 503 and answer.body["error"] == "configuration_error"
    assert named in answer.body["channels"][0]["error"]
    assert "slack" in loaded.channels, "other channels are unaffected"
    both = post(env, "bitrise", "ops+slack", build(2, "F"), FINISHED)
    assert both.status == 200
    assert [c["status"] for c in both.body["channels"]] == ["misconfigured", "delivered"]


def test_rules_settings_are_read() -> None:
    loaded = settings.load(
        {
            "CHANNEL_ALERTS_URL": "https://hooks.slack.com/services/fake/fake/fake",
            "CHANNEL_ALERTS_EVENTS": " build.failed,,Crash.* ,build.failed",
            "CHANNEL_ALERTS_BUILD_SUCCESS": "After_Failure",
            "CHANNEL_ALERTS_BUILD_FAILURE": "after-success",
            "CHANNEL_PLAIN_URL": "https://hooks.slack.com/services/fake/fake/other",
        }
    )
    alerts, plain = loaded.channels["alerts"], loaded.channels["plain"]
    assert alerts.events == ("build.failed", "crash.*")
    assert (alerts.build_success, alerts.build_failure) == ("after-failure", "after-success")
    assert (plain.events, plain.build_success, plain.build_failure) == ((), "always", "always")
    assert alerts.public()["events"] == ["build.failed", "crash.*"] and "events" not in plain.public()


# -- templates: "Fixed" and "Still failing" -------------------------------------------------------

TITLE_PATHS = {
    "slack": [
        ("attachments", 0, "blocks", 0, "elements", 0, "elements", 0, "text"),
        ("attachments", 0, "fallback"),
    ],
    "teams": [
        ("attachments", 0, "content", "body", 0, "items", 0, "inlines", 0, "text"),
        ("attachments", 0, "content", "fallbackText"),
    ],
    "teams-messagecard": [("title",), ("summary",)],
}


def at(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


@pytest.mark.parametrize("fmt", list(TITLE_PATHS))
@pytest.mark.parametrize(
    ("sample_id", "previous", "marker"),
    [
        ("bitrise/build-succeeded", "failure", "Fixed"),
        ("bitrise/build-failed", "failure", "Still failing"),
        ("appcenter/build-succeeded", "failure", "Fixed"),
        ("appcenter/build-failed", "failure", "Still failing"),
        ("bitrise/build-failed", "success", None),
        ("bitrise/build-succeeded", "success", None),
    ],
)
def test_default_templates_say_fixed_and_still_failing(
    fmt: str, sample_id: str, previous: str, marker: str | None
) -> None:
    plain = notification_of(sample(sample_id))
    n = plain.model_copy(update={"previous_outcome": previous})
    before = pipeline.prepare(SETTINGS.channel(fmt), plain, SETTINGS)
    after = pipeline.prepare(SETTINGS.channel(fmt), n, SETTINGS)
    assert after.template_error is None, after.template_error
    chat_format = formats.get(fmt)
    assert chat_format is not None
    chat_format.validate(after.body)
    assert crosscheck.check(fmt, after.body) == []
    title_path, summary_path = TITLE_PATHS[fmt]
    if marker is None:
        assert after.body == before.body, "no marker when nothing changed for the worse or better"
        return
    old_title, new_title = bodies.title(fmt, before.body), bodies.title(fmt, after.body)
    emoji, rest = old_title.split(" ", 1)
    assert new_title == f"{emoji} {marker}: {rest}"
    assert marker.lower() in bodies.notification_text(fmt, after.body).lower()
    assert marker.lower() not in bodies.notification_text(fmt, before.body).lower()
    # Everything else is exactly the golden rendering.
    changed = json.loads(json.dumps(after.body))
    for path in (title_path, summary_path):
        holder = at(changed, path[:-1])
        holder[path[-1]] = at(before.body, path)
    assert changed == before.body


# -- event identities ---------------------------------------------------------------------------


def test_every_sample_has_a_stable_event_id() -> None:
    from translators.samples import all_samples

    owners: dict[str, set[tuple[str, str | None, str]]] = {}
    for s in all_samples():
        first, second = notification_of(s), notification_of(s)
        assert first.event_id and first.event_id == second.event_id, s.id
        assert first.event_id.startswith(f"{s.source}:"), first.event_id
        owners.setdefault(first.event_id, set()).add((s.source, first.build_id or s.name, first.event))
    # Samples share an identity only when they are the same build's same event (the Appflow seed
    # uses one build id for both of its examples).
    shared = {event_id: found for event_id, found in owners.items() if len(found) > 1}
    assert shared == {}, shared
