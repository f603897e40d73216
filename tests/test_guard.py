"""Who may post (WEBHOOK_TOKEN), how much (MAX_BODY_BYTES, JSON shape), and what the logs may say."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from tests.chatserver import ChatServer, Reply
from tests.conftest import path_of, post
from translators import guard, pipeline
from translators.errors import TranslatorError
from translators.samples import get as sample

BODY = json.loads(sample("bitrise/build-failed").body())
FINISHED = {"Bitrise-Event-Type": "build/finished"}
TOKEN = "tok-3f9c2e7a1b5d8e0f"


@pytest.fixture
def env(channels: dict[str, str]) -> dict[str, str]:
    return {**channels, "WEBHOOK_TOKEN": TOKEN, "DELIVERY_DEADLINE_SECONDS": "2"}


def test_token_in_header_or_query_is_accepted(env: dict[str, str]) -> None:
    assert post(env, "bitrise", "slack", BODY, {**FINISHED, "X-Webhook-Token": TOKEN}).status == 200
    assert post(env, "bitrise", "slack", BODY, FINISHED, {"token": TOKEN}).status == 200


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {}),
        ({"X-Webhook-Token": "wrong"}, {}),
        ({}, {"token": TOKEN[:-1]}),
        ({"X-Webhook-Token": ""}, {}),
    ],
)
def test_missing_or_wrong_token_is_401(
    env: dict[str, str], chat: ChatServer, headers: dict[str, str], query: dict[str, str]
) -> None:
    answer = post(env, "bitrise", "slack", BODY, {**FINISHED, **headers}, query)
    assert answer.status == 401
    assert answer.body["error"] == "unauthorized" and "X-Webhook-Token" in answer.body["message"]
    assert TOKEN not in json.dumps(answer.body)
    assert chat.at(path_of(env, "slack")) == []


def test_token_is_checked_before_anything_is_revealed(env: dict[str, str]) -> None:
    # Without the token a caller learns neither the sources nor the channels.
    answer = post(env, "nope", "unknown", b"garbage")
    assert answer.status == 401 and "valid" not in answer.body


def test_no_token_configured_means_no_check(channels: dict[str, str]) -> None:
    assert post(channels, "bitrise", "slack", BODY, FINISHED).status == 200


def test_body_over_the_limit_is_413_before_parsing(channels: dict[str, str]) -> None:
    env = {**channels, "MAX_BODY_BYTES": "1000"}
    answer = post(env, "bitrise", "slack", b"{" + b" " * 2000)  # would be a 400 if it were parsed
    assert answer.status == 413
    assert answer.body["error"] == "body_too_large" and "1000" in answer.body["message"]
    junk = post({**channels, "MAX_BODY_BYTES": "junk"}, "bitrise", "slack", BODY, FINISHED)
    assert junk.status == 503 and "MAX_BODY_BYTES" in junk.body["message"], "a bad limit is said, not guessed"


def test_deep_nesting_is_400_and_huge_arrays_413(channels: dict[str, str]) -> None:
    deep = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    answer = post(channels, "bitrise", "slack", deep)
    assert answer.status == 400 and "nests" in answer.body["message"]
    moderately_deep = b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}"
    answer = post(channels, "bitrise", "slack", moderately_deep)
    assert answer.status == 400 and "64" in answer.body["message"]
    huge = json.dumps({**BODY, "junk": [0] * 200_000}).encode()
    answer = post(channels, "bitrise", "slack", huge, FINISHED)
    assert answer.status == 413 and "JSON values" in answer.body["message"]


def test_shape_walk_is_skipped_only_where_it_cannot_fail() -> None:
    """parse_body walks a body only when it could break a limit: the answers are those of always walking."""

    def outcome(parse: Callable[[bytes], object], raw: bytes) -> str:
        try:
            parse(raw)
        except TranslatorError as exc:
            return f"{exc.status} {exc.message}"
        return "ok"

    def always_walked(raw: bytes) -> object:
        payload = json.loads(raw)
        guard.check_shape(payload)
        return payload

    bodies = []
    for depth in range(60, 68):  # around MAX_JSON_DEPTH, arrays and objects, empty or holding a value
        for inner in (b"", b"0"):
            bodies.append(b'{"a": ' + b"[" * depth + inner + b"]" * depth + b"}")
            bodies.append(b'{"a": ' + b'{"b": ' * depth + b"0" + b"}" * depth + b"}")
    for count in (guard.MAX_JSON_VALUES - 3, guard.MAX_JSON_VALUES - 2, guard.MAX_JSON_VALUES):
        bodies.append(b'{"a": [' + b",".join([b"0"] * count) + b"]}")  # count + 2 values
    expected = [outcome(always_walked, raw) for raw in bodies]
    assert [outcome(pipeline.parse_body, raw) for raw in bodies] == expected
    assert {e.split()[0] for e in expected} == {"ok", "400", "413"}, "both limits are reached"
    assert not guard.may_break_shape(sample("bitrise/build-failed").body()), "real payloads are not walked"


def test_logs_are_structured_and_never_hold_secrets(
    channels: dict[str, str], chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    env = {**channels, "WEBHOOK_TOKEN": TOKEN, "DELIVERY_DEADLINE_SECONDS": "3"}
    chat.script(path_of(env, "slack"), Reply(500, f"boom {env['CHANNEL_SLACK_URL']}"), Reply(200, "ok"))
    caplog.set_level(logging.DEBUG)
    answer = post(
        env,
        "bitrise",
        "slack+teams",
        BODY,
        {**FINISHED, "X-Webhook-Token": TOKEN},
        {"code": "fnKEY123456789"},
    )
    assert answer.status == 200
    request_id = answer.body["request_id"]
    lines = [r.getMessage() for r in caplog.records]
    attempts = [json.loads(m.split(" ", 1)[1]) for m in lines if m.startswith("delivery.attempt ")]
    requests = [json.loads(m.split(" ", 1)[1]) for m in lines if m.startswith("request ")]
    assert [(a["channel"], a["attempt"], a["outcome"]) for a in attempts if a["channel"] == "slack"] == [
        ("slack", 1, "retry"),
        ("slack", 2, "delivered"),
    ]
    assert {a["request_id"] for a in attempts} == {request_id}
    assert all(isinstance(a["ms"], int) for a in attempts)
    [summary] = requests
    assert summary["request_id"] == request_id and summary["event"] == "build.failed"
    assert summary["channel_outcomes"] == {"slack": "delivered", "teams": "delivered"}
    assert summary["attempts"] == 3
    everything = "\n".join([*lines, caplog.text])
    for secret in (*(v for v in env.values() if "://" in v), TOKEN, "fnKEY123456789", "SECRET"):
        assert secret not in everything, f"{secret[:20]}... leaked into the logs"


def test_failed_template_is_named_in_the_log(
    channels: dict[str, str], tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "t"  # type: ignore[operator]
    (folder / "slack").mkdir(parents=True)
    (folder / "slack" / "default.json.j2").write_text('{"text": "{{ n.nope }}"}')
    caplog.set_level(logging.INFO)
    answer = post({**channels, "TEMPLATES_DIR": str(folder)}, "bitrise", "slack", BODY, FINISHED)
    assert answer.status == 200
    [result] = answer.body["channels"]
    assert result["status"] == "delivered" and "slack/default.json.j2" in result["template_error"]
    assert "slack/default.json.j2" in caplog.text and "nope" in caplog.text
