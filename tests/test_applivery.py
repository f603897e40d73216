"""Applivery: every action, certificate urgency, ignored actions and 422 paths, end to end."""

from __future__ import annotations

import json
from datetime import date
from functools import partial
from typing import Any

import pytest

from tests import bodies, sourcetools
from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from translators.errors import Ignored
from translators.sources import applivery

SEED = {
    name: json.loads(sample(f"applivery/{name}").body())
    for name in ("build-created", "build-processed", "feedback", "bug", "certificate-5-days")
}


translate = partial(sourcetools.translate, "applivery")
notification = partial(sourcetools.notification, "applivery")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "applivery")


@pytest.mark.parametrize(
    ("name", "event", "outcome", "title"),
    [
        ("build-created", "build.uploaded", "running", "New build uploaded, processing"),
        ("build-processed", "build.ready", "success", "New build ready to install"),
        ("feedback", "feedback.received", "info", "New feedback"),
        ("bug", "bug.reported", "warning", "New bug report"),
        ("certificate-5-days", "certificate.expiring", "warning", "Certificate expires in 5 days"),
    ],
)
def test_every_action_maps_to_its_event(name: str, event: str, outcome: str, title: str) -> None:
    n = notification(SEED[name])
    assert (n.event, n.outcome, n.title) == (event, outcome, title)
    assert n.app == "Awesome App" and n.source_label == "Applivery"
    assert "Workspace" not in plain_facts(n), "the team knows its workspace"
    assert n.links[-1].label == "Open app"
    assert n.links[-1].url == "https://dashboard.applivery.io/test/apps/awesome-app"


def test_build_ready_names_platform_version_and_build_page() -> None:
    payload = json.loads(sample("applivery/build-processed-ios").body())
    n = notification(payload)
    assert n.title == "Build 2.4.0 ready to install"
    assert (n.platform, n.version) == ("iOS", "2.4.0")
    assert n.links[0].label == "Open build" and n.links[0].url == payload["build"]["url"]
    assert n.url == payload["build"]["url"]


def test_empty_version_name_is_no_version() -> None:
    n = notification(SEED["build-processed"])
    assert n.version is None and n.platform == "Android"
    assert "Version" not in plain_facts(n)


@pytest.mark.parametrize(
    ("name", "kind", "button"),
    [("feedback", "feedback", "Open feedback"), ("bug", "bug report", "Open report")],
)
def test_report_text_is_the_details_and_the_button_opens_the_report(
    name: str, kind: str, button: str
) -> None:
    n = notification(SEED[name])
    assert n.details == SEED[name]["report"]["message"]
    assert n.details_title is not None and n.details_title.lower().startswith(kind)
    assert n.links[0].label == button and n.url == SEED[name]["report"]["url"]
    assert n.summary.startswith(f"Awesome App: new {kind}: This is a")


def test_long_report_is_whole_in_details_and_short_in_summary() -> None:
    text = "The login button does nothing. " * 200
    n = notification({**SEED["bug"], "report": {**SEED["bug"]["report"], "message": text}})
    assert n.details == text.strip()
    assert len(n.summary) < 200 and n.summary.endswith("…")


def test_empty_report_message_is_still_a_report() -> None:
    n = notification({**SEED["feedback"], "report": {**SEED["feedback"]["report"], "message": "  "}})
    assert n.event == "feedback.received"
    assert n.details is not None and "screenshots" in n.details


@pytest.mark.parametrize(
    ("num_days", "days", "title", "outcome"),
    [
        ("0", 0, "Certificate expires today", "failure"),
        ("1", 1, "Certificate expires tomorrow", "failure"),
        ("3", 3, "Certificate expires in 3 days", "failure"),
        ("4", 4, "Certificate expires in 4 days", "warning"),
        ("14", 14, "Certificate expires in 14 days", "warning"),
        ("15", 15, "Certificate expires in 15 days", "info"),
        (" 30 ", 30, "Certificate expires in 30 days", "info"),
        (7, 7, "Certificate expires in 7 days", "warning"),
    ],
)
def test_certificate_days_left_and_urgency(num_days: Any, days: int, title: str, outcome: str) -> None:
    n = notification({**SEED["certificate-5-days"], "numDays": num_days})
    assert n.days_left == days
    assert (n.title, n.outcome) == (title, outcome)
    assert "Days left" not in plain_facts(n), "the title says how many days are left"
    assert plain_facts(n).get("Team") == "Applivery Test (BJ55L1KAQW)"


def test_certificate_says_the_day_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applivery, "today", lambda: date(2026, 12, 28))
    n = notification(SEED["certificate-5-days"])
    assert plain_facts(n).get("Expires") == "2 Jan 2027"
    assert [label for label, _ in n.top_facts] == ["Team", "Expires"]
    assert (
        plain_facts(notification({**SEED["certificate-5-days"], "numDays": "0"})).get("Expires")
        == "28 Dec 2026"
    )


@pytest.mark.parametrize("num_days", ["3000000", "999999999", "99999999999999", "9" * 4000])
def test_a_huge_num_days_does_not_raise(num_days: str) -> None:
    n = notification({**SEED["certificate-5-days"], "numDays": num_days})
    assert n.days_left == int(num_days) and n.outcome == "info"
    assert "Expires" not in plain_facts(n), "past the calendar's end: no date rather than an error"
    assert n.event_id is not None and n.event_id.endswith(f":later:{num_days}")


def test_certificate_stands_out_more_as_days_run_out() -> None:
    emojis = [notification({**SEED["certificate-5-days"], "numDays": str(d)}).emoji for d in (30, 10, 2)]
    assert len(set(emojis)) == 3, "each urgency has its own emoji"


@pytest.mark.parametrize("num_days", ["five", "", "5.5", "-2", "1e3", None, True, 2.5, [5]])
def test_bad_num_days_is_named(num_days: Any) -> None:
    assert errors_of({**SEED["certificate-5-days"], "numDays": num_days}) == ["numDays"]


def test_missing_num_days_and_team_are_named() -> None:
    payload = {k: v for k, v in SEED["certificate-5-days"].items() if k not in ("numDays", "team")}
    assert sorted(errors_of(payload)) == ["numDays", "team"]


@pytest.mark.parametrize(
    ("name", "drop", "paths"),
    [
        ("build-created", "build", ["build"]),
        ("build-processed", "application", ["application"]),
        ("feedback", "report", ["report"]),
        ("bug", "organization", ["organization"]),
    ],
)
def test_missing_objects_are_named(name: str, drop: str, paths: list[str]) -> None:
    assert errors_of({k: v for k, v in SEED[name].items() if k != drop}) == paths


def test_missing_nested_fields_are_named() -> None:
    payload = {
        **SEED["build-processed"],
        "build": {"os": "ios"},
        "application": {**SEED["build-processed"]["application"], "name": ""},
    }
    assert sorted(errors_of(payload)) == ["application.name", "build.id", "build.url"]
    payload = {**SEED["bug"], "report": {"url": "https://x.test/r"}}
    assert errors_of(payload) == ["report.message"]


@pytest.mark.parametrize("action", [None, 5, "", "  "])
def test_missing_or_bad_action_is_named(action: Any) -> None:
    payload = {**SEED["bug"], "action": action}
    assert errors_of(payload) == ["action"]
    assert errors_of({k: v for k, v in SEED["bug"].items() if k != "action"}) == ["action"]


@pytest.mark.parametrize("action", ["mdm_device_enrolled", "mdm_enrollment_token_created", "build_deleted"])
def test_unknown_actions_are_ignored_by_name(action: str) -> None:
    result = translate({"action": action, "organization": {"id": "1"}})
    assert isinstance(result, Ignored)
    assert action in result.reason and result.event == action


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SEED))
def test_every_action_is_delivered_to_all_three_formats(
    name: str, chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(channels, "applivery", "slack+teams+legacy", SEED[name])
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "delivered" and answer.body["source"] == "applivery"
    assert not any("template_error" in c for c in answer.body["channels"])
    for channel in ("slack", "teams", "legacy"):
        [got] = chat.at(path_of(channels, channel))
        assert "Awesome App" in got.body.decode()


def test_tester_text_is_escaped_in_slack(chat: ChatServer, channels: dict[str, str]) -> None:
    payload = {**SEED["bug"], "report": {**SEED["bug"]["report"], "message": "<!channel> it broke & <@U1>"}}
    answer = post(channels, "applivery", "slack", payload)
    assert answer.status == 200, answer.body
    body = chat.at(path_of(channels, "slack"))[0].json()
    assert not any("<!channel>" in t or "<@U1>" in t for t in bodies.slack_markup_texts(body))
    # Shown exactly as typed, in rich text, which Slack never reads as markup.
    rich = [b for b in body["attachments"][0]["blocks"] if b["type"] == "rich_text"]
    assert "<!channel> it broke & <@U1>" in json.dumps(rich, ensure_ascii=False)


def test_unknown_action_is_200_ignored_and_nothing_is_sent(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(
        channels, "applivery", "slack+teams+legacy", {**SEED["bug"], "action": "mdm_device_enrolled"}
    )
    assert answer.status == 200
    assert answer.body["status"] == "ignored" and "mdm_device_enrolled" in answer.body["reason"]
    assert answer.body["event"] == "mdm_device_enrolled"
    assert all(chat.at(path_of(channels, c)) == [] for c in ("slack", "teams", "legacy"))


def test_bad_num_days_is_422_with_path(chat: ChatServer, channels: dict[str, str]) -> None:
    answer = post(channels, "applivery", "slack", {**SEED["certificate-5-days"], "numDays": "soon"})
    assert answer.status == 422
    assert answer.body["error"] == "invalid_payload"
    assert [e["path"] for e in answer.body["errors"]] == ["numDays"]
    assert "soon" not in json.dumps(answer.body), "input values are not echoed"
    assert chat.at(path_of(channels, "slack")) == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"", "empty"), (b"[]", "array"), (b'{"action": "bug_created"', "not valid JSON"), (b"7", "number")],
)
def test_bad_bodies_are_400(raw: bytes, words: str, channels: dict[str, str]) -> None:
    answer = post(channels, "applivery", "slack", raw)
    assert answer.status == 400
    assert answer.body["error"] == "invalid_body" and words in answer.body["message"]
