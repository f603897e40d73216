"""App Store Connect messages completed from its API (translators/sources/_asc_api.py), against a
loopback stand-in that takes only a token Apple would take, answers in Apple's JSON:API shapes, and
fails every way the issue names. The message always goes within the budget; no key or token shows."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from tests.fakeasc import ISSUER, KEY_ID, Failure, FakeAsc, key_pem, token_problem
from translators import settings, sources
from translators.model import Notification
from translators.samples import all_samples
from translators.samples import notification as sample_notification
from translators.sources import _asc_api

ENRICHED = [s for s in all_samples() if s.source == "appstoreconnect" and s.api_answers() is not None]


@pytest.fixture
def asc() -> Iterator[FakeAsc]:
    server = FakeAsc()
    _asc_api.client().forget()
    yield server
    server.close()
    _asc_api.client().forget()


@pytest.fixture
def env(channels: dict[str, str], asc: FakeAsc) -> dict[str, str]:
    return channels | {
        "ASC_ISSUER_ID": ISSUER,
        "ASC_KEY_ID": KEY_ID,
        "ASC_PRIVATE_KEY": key_pem(),
        "ASC_API_URL": asc.url,
    }


def bodies(answer: Any) -> dict[str, str]:
    return {c["channel"]: json.dumps(c["body"], ensure_ascii=False) for c in answer.body["channels"]}


def test_the_api_gets_a_valid_es256_token_and_the_message_names_app_version_and_build(
    env: dict[str, str], asc: FakeAsc
) -> None:
    body = sample("appstoreconnect/version-rejected").body()
    answer = post(env, "appstoreconnect", "slack+teams+legacy", body, {}, {"dry_run": "1"})
    assert answer.status == 200 and answer.body["enrichment"] == "complete", answer.body
    assert asc.tokens and all(token_problem(f"Bearer {t}") is None for t in asc.tokens)
    assert [path for path, _ in asc.requests] == [
        "/v1/appStoreVersions/ad7e6298-2570-4ca6-b3cc-f81788e40bdc?include=app,build"
    ]
    for channel, text in bodies(answer).items():
        for expected in ("Acme Field", "Version 2.4.0 rejected", "In Review → Rejected", "iOS"):
            assert expected in text, (channel, expected)
        assert "apps/6450012345/distribution" in text, channel


@pytest.mark.parametrize("s", ENRICHED, ids=lambda s: s.id)
def test_the_api_and_the_recorded_answers_complete_a_message_alike(
    s: Any, env: dict[str, str], asc: FakeAsc
) -> None:
    loaded = settings.load(env)
    n = sample_notification(s)
    assert isinstance(n, Notification)
    source = sources.get("appstoreconnect")
    assert source is not None
    done = source.enrich(n, loaded.app)
    assert done is not None and done.note == "complete", done
    replayed = sample_notification(s, loaded)
    assert done.notification == replayed
    assert replayed != n, "the API said more than the webhook"


EXPECTED_BUTTONS = {
    "alternative-distribution-available": ["Open app"],
    "build-upload-complete": ["Open build"],
    "build-upload-failed": ["Open build"],
    "feedback-crash": ["Open crash"],
    "feedback-screenshot": ["Open feedback", "Screenshot"],
    "testflight-approved": ["Open build"],
    "version-ready-for-distribution": ["Open version"],
    "version-rejected": ["Open version"],
}


@pytest.mark.parametrize("s", ENRICHED, ids=lambda s: s.id)
def test_completed_messages_have_short_buttons_and_no_bundle_id(s: Any, env: dict[str, str]) -> None:
    n = sample_notification(s, settings.load(env))
    assert isinstance(n, Notification)
    assert [link.label for link in n.links] == EXPECTED_BUTTONS[s.name]
    assert n.links[0].url == n.url
    assert "Bundle ID" not in [fact.label for fact in n.facts], "an identifier nobody reads at a glance"


def test_one_token_serves_many_calls_and_is_renewed_before_it_expires(
    env: dict[str, str], asc: FakeAsc
) -> None:
    for name in ("version-rejected", "testflight-approved", "feedback-screenshot"):
        answer = post(
            env, "appstoreconnect", "slack", sample(f"appstoreconnect/{name}").body(), {}, {"dry_run": "1"}
        )
        assert answer.body["enrichment"] == "complete"
    assert len(asc.tokens) == 5 and len(set(asc.tokens)) == 1, "one token for every call"

    key = _asc_api.Credentials(ISSUER, KEY_ID, key_pem())
    signer = _asc_api.Signer()
    start = 1_800_000_000.0
    first = signer.token(key, now=start)
    assert signer.token(key, now=start + 60) == first
    claims = json.loads(base64.urlsafe_b64decode(first.split(".")[1] + "=="))
    assert claims == {
        "iss": ISSUER,
        "iat": int(start),
        "exp": int(start) + _asc_api.TOKEN_SECONDS,
        "aud": "appstoreconnect-v1",
    }
    assert claims["exp"] - claims["iat"] <= 20 * 60, "Apple refuses longer-lived tokens"
    renewed = signer.token(key, now=start + _asc_api.TOKEN_SECONDS - _asc_api.RENEW_SECONDS + 1)
    assert renewed != first
    assert token_problem(f"Bearer {renewed}", now=start + _asc_api.TOKEN_SECONDS) is None


def test_feedback_carries_the_comment_tester_device_os_and_screenshot(env: dict[str, str]) -> None:
    body = sample("appstoreconnect/feedback-screenshot").body()
    answer = post(env, "appstoreconnect", "teams", body, {}, {"dry_run": "1"})
    card = json.loads(bodies(answer)["teams"])["attachments"][0]["content"]
    text = json.dumps(card, ensure_ascii=False)
    for expected in (
        "Save button on the order form",
        "Priya Natarajan",
        "iPhone16,1 · iOS 18.1.1",
        "New TestFlight feedback on 2.4.0 (212)",
    ):
        assert expected in text, expected
    urls = [a["url"] for a in card["actions"]]
    assert (
        urls[0]
        == "https://appstoreconnect.apple.com/apps/6450012345/testflight/screenshots/AD8JvKbr0BK0Cj9OnM6WO6I"
    )
    assert urls[1].startswith("https://tf-feedback.itunes.apple.com/") and "&Expires=" in urls[1]


def test_a_failed_upload_says_what_apple_said(env: dict[str, str]) -> None:
    answer = post(
        env,
        "appstoreconnect",
        "slack",
        sample("appstoreconnect/build-upload-failed").body(),
        {},
        {"dry_run": "1"},
    )
    text = bodies(answer)["slack"]
    assert "Build 2.4.0 (212) failed processing" in text and "NSCameraUsageDescription" in text


def test_app_names_still_win(env: dict[str, str]) -> None:
    named = env | {"APP_NAMES": "appstoreconnect:6450012345=Field Service"}
    answer = post(
        named,
        "appstoreconnect",
        "slack",
        sample("appstoreconnect/version-rejected").body(),
        {},
        {"dry_run": "1"},
    )
    text = bodies(answer)["slack"]
    assert "Field Service" in text and "Acme Field" not in text


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure(status=401), "the App Store Connect API refused the key (401)"),
        (Failure(status=403), "the App Store Connect API refused the key (403)"),
        (
            Failure(status=404),
            "the App Store Connect API does not know this app, version, build or feedback (404)",
        ),
        (Failure(status=503), "the App Store Connect API answered 503"),
        (Failure(body=b'{"data": {"type": '), "the App Store Connect API's answer is not JSON"),
        (Failure(body=b'{"errors": []}'), "the App Store Connect API's answer is not the expected JSON"),
        (Failure(delay=3.0), "the App Store Connect API did not answer within 2 s"),
        (
            Failure(status=429, headers={"Retry-After": "90"}),
            "rate limited by the App Store Connect API (429); calls resume in 90 s",
        ),
    ],
    ids=["401", "403", "404", "503", "malformed", "wrong-shape", "slow", "429"],
)
def test_the_message_goes_with_what_the_webhook_had_when_the_api_fails(
    env: dict[str, str], asc: FakeAsc, chat: ChatServer, failure: Failure, reason: str
) -> None:
    asc.fail(failure)
    started = time.monotonic()
    answer = post(env, "appstoreconnect", "slack", sample("appstoreconnect/version-rejected").body())
    took = time.monotonic() - started
    assert answer.body["enrichment"] == f"unavailable: {reason}"
    assert answer.body["channels"][0]["status"] == "delivered"
    assert took < _asc_api.BUDGET_SECONDS + 1.5, took
    (received,) = chat.at(path_of(env, "slack"))
    text = json.dumps(received.json(), ensure_ascii=False)
    assert "App Store version rejected" in text and "In Review → Rejected" in text, "the webhook's own facts"
    assert "Acme Field" not in text


def test_a_rate_limit_is_honoured_until_retry_after(env: dict[str, str], asc: FakeAsc) -> None:
    asc.fail(Failure(status=429, headers={"Retry-After": "120"}))
    post(
        env,
        "appstoreconnect",
        "slack",
        sample("appstoreconnect/version-rejected").body(),
        {},
        {"dry_run": "1"},
    )
    calls = len(asc.requests)
    asc.fail(None)
    again = post(
        env, "appstoreconnect", "slack", sample("appstoreconnect/feedback-crash").body(), {}, {"dry_run": "1"}
    )
    assert len(asc.requests) == calls, "no call while the API asked us to wait"
    assert again.body["enrichment"].startswith("unavailable: rate limited by the App Store Connect API")


def test_an_api_that_is_down_costs_no_more_than_the_budget(
    channels: dict[str, str], chat: ChatServer
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = channels | {
        "ASC_ISSUER_ID": ISSUER,
        "ASC_KEY_ID": KEY_ID,
        "ASC_PRIVATE_KEY": key_pem(),
        "ASC_API_URL": closed,
    }
    _asc_api.client().forget()
    started = time.monotonic()
    answer = post(env, "appstoreconnect", "slack", sample("appstoreconnect/testflight-approved").body())
    assert time.monotonic() - started < _asc_api.BUDGET_SECONDS + 1.5
    assert (
        answer.body["enrichment"]
        == "unavailable: the App Store Connect API is not reachable (ConnectionError)"
    )
    assert answer.body["channels"][0]["status"] == "delivered"


def _forms(tmp_path: Path) -> dict[str, str]:
    pem = key_pem()
    body = "".join(pem.strip().splitlines()[1:-1])
    key_file = tmp_path / "AuthKey_2X9R4HXF34.p8"
    key_file.write_text(pem)
    return {
        "pem": pem,
        "escaped": pem.replace("\n", "\\n"),
        "one line": pem.replace("\n", " "),
        "base64 of the file": base64.b64encode(pem.encode()).decode(),
        "the body alone": body,
        "a path": str(key_file),
    }


@pytest.mark.parametrize(
    "form", ["pem", "escaped", "one line", "base64 of the file", "the body alone", "a path"]
)
def test_the_key_is_read_however_a_settings_field_holds_it(
    form: str, env: dict[str, str], tmp_path: Path
) -> None:
    given = env | {"ASC_PRIVATE_KEY": _forms(tmp_path)[form]}
    assert settings.load(given).errors == {}
    answer = post(
        given,
        "appstoreconnect",
        "slack",
        sample("appstoreconnect/version-rejected").body(),
        {},
        {"dry_run": "1"},
    )
    assert answer.body["enrichment"] == "complete", answer.body


def test_a_key_that_is_not_one_is_named_never_shown(
    env: dict[str, str], asc: FakeAsc, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = base64.b64encode(b"\x30\x82" + b"not a key at all, just bytes" * 8).decode()
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    for key, reason, name in (
        (garbage, "ASC_PRIVATE_KEY is not a readable private key (the .p8 file's text)", "version-rejected"),
        (rsa_pem, "ASC_PRIVATE_KEY is not an App Store Connect key (ES256, P-256)", "feedback-crash"),
    ):
        _asc_api.client().forget()
        answer = post(
            env | {"ASC_PRIVATE_KEY": key},
            "appstoreconnect",
            "slack",
            sample(f"appstoreconnect/{name}").body(),
        )
        assert answer.body["enrichment"] == f"unavailable: {reason}"
        assert answer.body["channels"][0]["status"] == "delivered"
        shown = json.dumps(answer.body) + caplog.text
        assert all(line not in shown for line in key.splitlines()[1:-1] if len(line) > 8)
    assert asc.requests == [], "no call without a usable key"


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"ASC_KEY_ID": KEY_ID}, "ASC_ISSUER_ID"),
        ({"ASC_ISSUER_ID": ISSUER, "ASC_KEY_ID": KEY_ID}, "ASC_PRIVATE_KEY"),
        (
            {"ASC_ISSUER_ID": ISSUER, "ASC_KEY_ID": KEY_ID, "ASC_PRIVATE_KEY": "no/such/AuthKey.p8"},
            "ASC_PRIVATE_KEY",
        ),
        ({"ASC_ISSUER_ID": "not-a-uuid", "ASC_KEY_ID": KEY_ID, "ASC_PRIVATE_KEY": "x"}, "ASC_ISSUER_ID"),
    ],
    ids=["key-id-alone", "no-key", "missing-file", "bad-issuer"],
)
def test_incomplete_credentials_are_a_settings_error_naming_the_setting(
    given: dict[str, str], named: str
) -> None:
    errors = settings.load(given).errors
    assert named in errors, errors
    assert "no/such" not in json.dumps(errors), "a mistyped key is not repeated"


def test_without_credentials_nothing_is_asked(channels: dict[str, str], asc: FakeAsc) -> None:
    answer = post(
        channels | {"ASC_API_URL": asc.url},
        "appstoreconnect",
        "slack",
        sample("appstoreconnect/version-rejected").body(),
    )
    assert "enrichment" not in answer.body and asc.requests == []


def test_a_ping_asks_nothing(env: dict[str, str], asc: FakeAsc) -> None:
    answer = post(
        env, "appstoreconnect", "slack", sample("appstoreconnect/ping").body(), {}, {"dry_run": "1"}
    )
    assert "enrichment" not in answer.body and asc.requests == []


def test_skipped_events_ask_nothing(env: dict[str, str], asc: FakeAsc) -> None:
    quiet = env | {"CHANNEL_SLACK_EVENTS": "build.*"}
    answer = post(quiet, "appstoreconnect", "slack", sample("appstoreconnect/version-rejected").body())
    assert answer.body["status"] == "skipped" and asc.requests == []


def test_neither_key_nor_token_shows(
    env: dict[str, str], asc: FakeAsc, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    asc.fail(Failure(status=401))
    answer = post(env, "appstoreconnect", "slack", sample("appstoreconnect/feedback-crash").body())
    asc.fail(None)
    ok = post(env, "appstoreconnect", "slack", sample("appstoreconnect/feedback-screenshot").body())
    shown = json.dumps(answer.body) + json.dumps(ok.body) + caplog.text
    pem_lines = [line for line in key_pem().splitlines() if not line.startswith("-----")]
    assert not any(line in shown for line in pem_lines)
    assert asc.tokens and not any(token in shown for token in asc.tokens)
    assert key_pem().strip() in "\n".join(settings.load(env).secrets()), "the log filter masks it"


def test_recorded_answers_never_disagree_on_a_path() -> None:
    """The stand-in serves every sample's answers at once: one path, one answer."""
    seen: dict[str, Any] = {}
    for s in ENRICHED:
        for path, answer in (s.api_answers() or {}).items():
            assert seen.setdefault(path, answer) == answer, (s.id, path)
