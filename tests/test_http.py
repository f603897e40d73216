"""The Azure Functions HTTP functions end to end: every answer in docs/answers.md's table.

Requests go through the real user functions registered in ``function_app.app`` (as the worker
calls them) and deliveries go to a real loopback HTTP server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest

from tests import bodies
from tests.chatserver import ChatServer, Reply
from tests.conftest import Handler, path_of
from translators.samples import get as sample


@pytest.fixture
def call(
    functions: dict[str, Handler], channels: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, dict[str, Any]]]:
    for key, value in channels.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DELIVERY_DEADLINE_SECONDS", "3")

    def do(
        route: str,
        body: bytes | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        method: str = "POST",
    ) -> tuple[int, dict[str, Any]]:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        if route == "health":
            req = func.HttpRequest(method, "http://localhost/api/health", body=raw, params=params or {})
            resp = functions["health"](req)
        else:
            source, channel = route.split("/", 1)
            query = f"?{urlencode(params)}" if params else ""
            req = func.HttpRequest(
                method,
                f"http://localhost/api/{route}{query}",
                body=raw,
                headers=headers or {},
                params=params or {},
                route_params={"source": source, "channel": channel},
            )
            resp = functions["translate"](req)
        assert resp.mimetype == "application/json"
        text = resp.get_body().decode()
        for url in (v for v in channels.values() if "://" in v):
            # The fixture's paths hold T0SECRET, B0SECRET and xoxSECRETtoken: no part of one may show
            # (a setting's name, APPSTORECONNECT_WEBHOOK_SECRET, may).
            leaked = re.findall(r"0SECRET|xoxSECRET", text)
            assert url not in text and not leaked, "a destination URL leaked into an answer"
        return resp.status_code, json.loads(text)

    return do


BITRISE_FAILED = json.loads(sample("bitrise/build-failed").body())
FINISHED = {"Bitrise-Event-Type": "build/finished"}


def test_routes_are_registered_as_designed(registered: list[Any]) -> None:
    raw = {f.get_function_name(): json.loads(f.get_raw_bindings()[0]) for f in registered}
    translate, health = raw["translate"], raw["health"]
    assert (translate["route"], translate["authLevel"].lower(), translate["methods"]) == (
        "{source}/{channel}",
        "function",
        ["POST"],
    )
    assert (health["route"], health["authLevel"].lower(), health["methods"]) == (
        "health",
        "anonymous",
        ["GET"],
    )
    outbox = raw["outbox"]
    assert (outbox["route"], outbox["authLevel"].lower(), sorted(outbox["methods"])) == (
        "outbox/{action?}",
        "admin",
        ["GET", "POST"],
    )
    assert raw["drain"]["type"] == "timerTrigger" and raw["drain"]["schedule"] == "0 */1 * * * *"


def test_delivered_to_slack(call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]) -> None:
    status, body = call("bitrise/slack", BITRISE_FAILED, FINISHED)
    assert status == 200, body
    assert body["status"] == "delivered" and body["event"] == "build.failed"
    assert body["channels"][0]["status"] == "delivered"
    [got] = chat.at(path_of(channels, "slack"))
    sent = got.json()
    assert got.headers["content-type"].startswith("application/json")
    assert "Build #41 failed" in bodies.title("slack", sent)


def test_fan_out_to_all_three_formats(
    call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    status, body = call("appcenter/SLACK+teams+Legacy", json.loads(sample("appcenter/distribute").body()))
    assert status == 200, body
    assert [c["channel"] for c in body["channels"]] == ["slack", "teams", "legacy"]
    assert [c["format"] for c in body["channels"]] == ["slack", "teams", "teams-messagecard"]
    assert bodies.title("slack", chat.at(path_of(channels, "slack"))[0].json())
    assert chat.at(path_of(channels, "teams"))[0].json()["type"] == "message"
    assert chat.at(path_of(channels, "legacy"))[0].json()["@type"] == "MessageCard"


def test_same_channel_twice_is_sent_once(
    call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    status, body = call("bitrise/slack+slack", BITRISE_FAILED, FINISHED)
    assert status == 200 and len(body["channels"]) == 1
    assert len(chat.at(path_of(channels, "slack"))) == 1


def test_dry_run_renders_and_sends_nothing(
    call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    status, body = call("bitrise/slack+teams", BITRISE_FAILED, FINISHED, {"dry_run": "1"})
    assert status == 200 and body["status"] == "dry_run"
    assert bodies.title("slack", body["channels"][0]["body"]).endswith("Build #41 failed on main")
    assert body["channels"][1]["body"]["attachments"][0]["content"]["type"] == "AdaptiveCard"
    assert chat.at(path_of(channels, "slack")) == [] and chat.at(path_of(channels, "teams")) == []


def test_ignored_event(call: Callable[..., Any]) -> None:
    status, body = call("bitrise/slack", BITRISE_FAILED, {"Bitrise-Event-Type": "app/archived"})
    assert status == 200
    assert body["status"] == "ignored" and "app/archived" in body["reason"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"{not json", "not valid JSON"),
        (b'{"build_slug": "1234', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "array"),
        (b'"text"', "string"),
        (b"null", "null"),
        (b'{"a": NaN}', "not valid JSON"),
    ],
)
def test_bad_bodies_are_400(call: Callable[..., Any], raw: bytes, words: str) -> None:
    status, body = call("bitrise/slack", raw, FINISHED)
    assert status == 400, body
    assert body["error"] == "invalid_body" and words in body["message"]


def test_unknown_source_is_404_listing_sources(call: Callable[..., Any]) -> None:
    status, body = call("jenkins/slack", BITRISE_FAILED)
    assert status == 404
    assert body["error"] == "unknown_source" and {"bitrise", "appcenter"} <= set(body["valid"])


def test_unknown_channel_is_404_listing_channels(
    call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    status, body = call("bitrise/slack+nope", BITRISE_FAILED, FINISHED)
    assert status == 404
    assert body["error"] == "unknown_channel" and "nope" in body["message"]
    assert body["valid"] == ["legacy", "slack", "teams"]
    assert chat.at(path_of(channels, "slack")) == [], "nothing is sent when any channel is unknown"


def test_invalid_payload_is_422_with_paths(call: Callable[..., Any]) -> None:
    status, body = call("bitrise/slack", {**BITRISE_FAILED, "build_number": "x", "app_slug": None}, FINISHED)
    assert status == 422
    assert body["error"] == "invalid_payload"
    assert {e["path"] for e in body["errors"]} == {"build_number", "app_slug"}
    assert all(e["message"] for e in body["errors"])


def test_destination_failure_is_502_with_error_text(
    call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    chat.script(path_of(channels, "slack"), Reply(404, "no_service"))
    status, body = call("bitrise/slack+teams", BITRISE_FAILED, FINISHED)
    assert status == 502, body
    by_name = {c["channel"]: c for c in body["channels"]}
    assert by_name["slack"]["status"] == "failed"
    assert by_name["slack"]["http_status"] == 404
    assert "no_service" in by_name["slack"]["error"]
    assert "create a new webhook" in by_name["slack"]["hint"], "a known error says what to do"
    assert by_name["teams"]["status"] == "delivered"


def test_messagecard_200_with_other_body_is_failure(
    call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    chat.script(path_of(channels, "legacy"), Reply(200, "Microsoft Teams endpoint returned HTTP error 429"))
    status, body = call("bitrise/legacy", BITRISE_FAILED, FINISHED)
    assert status == 502
    assert "429" in body["channels"][0]["error"]


def test_retry_then_success(call: Callable[..., Any], chat: ChatServer, channels: dict[str, str]) -> None:
    chat.script(path_of(channels, "teams"), Reply(503, "busy"), Reply(202, ""))
    status, body = call("bitrise/teams", BITRISE_FAILED, FINISHED)
    assert status == 200, body
    assert body["channels"][0]["attempts"] == 2


def test_health_lists_sources_and_channels_without_urls(
    call: Callable[..., Any], channels: dict[str, str]
) -> None:
    status, body = call("health", method="GET")
    assert status == 200
    assert {"bitrise", "appcenter"} <= set(body["sources"])
    assert {c["name"]: c["format"] for c in body["channels"]} == {
        "legacy": "teams-messagecard",
        "slack": "slack",
        "teams": "teams",
    }


def test_misconfigured_channel_is_named(call: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL_OPS_URL", "https://chat.acme.test/hook/SECRETpath123")
    status, body = call("bitrise/ops", BITRISE_FAILED, FINISHED)
    assert status == 503
    (ops,) = body["channels"]
    assert body["error"] == "configuration_error" and ops["status"] == "misconfigured"
    assert "ops" in ops["error"] and "CHANNEL_OPS_FORMAT" in ops["error"]
    assert "SECRETpath123" not in json.dumps(body)
    _, health = call("health", method="GET")
    assert "ops" in health["channel_errors"] and "SECRETpath123" not in json.dumps(health)


def test_a_skipped_or_duplicate_answer_carries_no_template_error(
    channels: dict[str, str], tmp_path: Path
) -> None:
    from tests.conftest import post

    broken = tmp_path / "broken"
    (broken / "slack").mkdir(parents=True)
    (broken / "slack" / "default.json.j2").write_text("{{ nope(", encoding="utf-8")
    env = channels | {"CHANNEL_SLACK_TEMPLATES": str(broken)}
    first = post(env, "bitrise", "slack", BITRISE_FAILED, FINISHED)
    assert first.body["channels"][0]["status"] == "delivered" and first.body["channels"][0]["template_error"]
    again = post(env, "bitrise", "slack", BITRISE_FAILED, FINISHED)
    (result,) = again.body["channels"]
    assert result["reason"] == "duplicate" and "template_error" not in result, result


def test_health_shows_a_misspelled_setting_as_a_warning_and_stays_ok(channels: dict[str, str]) -> None:
    from translators import pipeline, settings

    answer = pipeline.health(settings.load(channels | {"CHANNEL_SLACK_EVENT": "build.failed"}))
    assert answer.body["status"] == "ok"
    (warning,) = answer.body["setting_warnings"].values()
    assert "CHANNEL_SLACK_EVENTS" in warning
