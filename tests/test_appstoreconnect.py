"""App Store Connect webhooks: every documented event and spelling, the ping, identities, and
signatures (x-apple-signature) end to end through the pipeline."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from functools import partial
from typing import Any

import pytest

from tests import sourcetools
from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from translators import pipeline, settings, sources
from translators.errors import Ignored
from translators.sources.appstoreconnect import SIGNING, STATE_EVENTS, UPLOAD_EVENTS

translate = partial(sourcetools.translate, "appstoreconnect")
notification = partial(sourcetools.notification, "appstoreconnect")
plain_facts = sourcetools.plain_facts
errors_of = partial(sourcetools.errors_of, "appstoreconnect")

VERSION = json.loads(sample("appstoreconnect/version-rejected").body())
UPLOAD = json.loads(sample("appstoreconnect/build-upload-complete").body())
BETA = json.loads(sample("appstoreconnect/testflight-approved").body())
PING = json.loads(sample("appstoreconnect/ping").body())
SECRET = "a secret chosen on the webhook 7d3f"


def with_data(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body["data"].update(changes)
    return body


def with_states(base: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    timestamp = body["data"]["attributes"].get("timestamp")
    body["data"]["attributes"] = {"timestamp": timestamp, **attributes}
    return body


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-apple-signature": SIGNING.sign(secret, body)}


# -- events ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("new", "expected"), sorted(STATE_EVENTS.items()))
def test_each_state_with_an_event_of_its_own(new: str, expected: tuple[str, str, str]) -> None:
    n = notification(with_states(VERSION, oldValue="PREPARE_FOR_SUBMISSION", newValue=new))
    event, outcome, what = expected
    assert (n.event, n.outcome) == (event, outcome)
    assert n.title == f"App Store version {what}"
    assert plain_facts(n)["Status"].startswith("Prepare for Submission → ")


@pytest.mark.parametrize(
    ("new", "outcome", "shown"),
    [
        ("PREPARE_FOR_SUBMISSION", "info", "Prepare for Submission"),
        ("READY_FOR_REVIEW", "info", "Ready for Review"),
        ("PROCESSING_FOR_DISTRIBUTION", "info", "Processing for Distribution"),
        ("REMOVED_FROM_SALE", "warning", "Removed from Sale"),
        ("WAITING_FOR_EXPORT_COMPLIANCE", "warning", "Waiting for Export Compliance"),
        ("SOME_STATE_APPLE_ADDS_LATER", "info", "Some state apple adds later"),
    ],
)
def test_any_other_state_is_an_update_in_words(new: str, outcome: str, shown: str) -> None:
    n = notification(with_states(VERSION, oldValue="REJECTED", newValue=new))
    assert (n.event, n.outcome, n.title) == ("release.updated", outcome, f"App Store version: {shown}")
    assert plain_facts(n)["Status"] == f"Rejected → {shown}"


def test_the_documented_example_reads_in_words_old_beside_new() -> None:
    n = notification(json.loads(sample("appstoreconnect/version-ready-for-review").body()))
    assert plain_facts(n)["Status"] == "Prepare for Submission → Ready for Review"
    assert n.status_text == "Ready for Review"


@pytest.mark.parametrize(
    ("base", "old", "new"),
    [
        (VERSION, "oldValue", "newValue"),
        (VERSION, "oldState", "newState"),
        (BETA, "oldExternalBuildState", "newExternalBuildState"),
        (BETA, "oldValue", "newValue"),
        (UPLOAD, "oldState", "newState"),
        (UPLOAD, "oldValue", "newValue"),
    ],
    ids=["version-value", "version-state", "beta-external", "beta-value", "upload-state", "upload-value"],
)
def test_every_documented_spelling_of_the_states_is_read(base: dict[str, Any], old: str, new: str) -> None:
    state = "COMPLETE" if base is UPLOAD else "REJECTED"
    n = notification(with_states(base, **{old: "PROCESSING" if base is UPLOAD else "IN_REVIEW", new: state}))
    assert n.event == ("build.ready" if base is UPLOAD else "review.rejected")
    assert " → " in plain_facts(n)["Status"]


def test_a_state_change_without_the_old_state_shows_the_new_one() -> None:
    n = notification(with_states(UPLOAD, newState="FAILED"))  # as Apple's own example: newState only
    assert (n.event, n.outcome) == ("build.upload_failed", "failure")
    assert plain_facts(n)["Status"] == "Failed"


@pytest.mark.parametrize(("new", "expected"), sorted(UPLOAD_EVENTS.items()))
def test_build_upload_states(new: str, expected: tuple[str, str, str]) -> None:
    n = notification(with_states(UPLOAD, oldState="PROCESSING", newState=new))
    assert (n.event, n.outcome, n.title) == (expected[0], expected[1], f"Build {expected[2]}")
    assert (
        n.message_key
        == f"appstoreconnect:buildUploads:{UPLOAD['data']['relationships']['instance']['data']['id']}"
    )


@pytest.mark.parametrize("new", ["AWAITING_UPLOAD", "SOMETHING_NEW", ""])
def test_build_upload_states_with_nothing_to_tell_are_ignored(new: str) -> None:
    result = translate(with_states(UPLOAD, newState=new))
    assert isinstance(result, Ignored) and "nothing to tell" in result.reason


@pytest.mark.parametrize(
    ("new", "event", "title"),
    [
        ("WAITING_FOR_BETA_REVIEW", "review.submitted", "TestFlight build submitted for beta review"),
        ("IN_BETA_REVIEW", "review.started", "TestFlight build in beta review"),
        ("BETA_APPROVED", "review.approved", "TestFlight build approved for external testing"),
        ("BETA_REJECTED", "review.rejected", "TestFlight build rejected in beta review"),
        ("IN_BETA_TESTING", "release.published", "TestFlight build is available to external testers"),
        ("READY_FOR_BETA_TESTING", "release.updated", "TestFlight build: Ready to Test"),
        ("EXPIRED", "release.updated", "TestFlight build: Expired"),
    ],
)
def test_external_testflight_states(new: str, event: str, title: str) -> None:
    n = notification(with_states(BETA, oldExternalBuildState="IN_BETA_REVIEW", newExternalBuildState=new))
    assert (n.event, n.title) == (event, title)


@pytest.mark.parametrize(
    ("sample_id", "event", "outcome", "title"),
    [
        ("feedback-screenshot", "feedback.received", "info", "New TestFlight feedback"),
        ("feedback-crash", "crash.reported", "failure", "New TestFlight crash report"),
        ("ping", "webhook.ping", "info", "App Store Connect webhook connected"),
        ("background-asset-failed", "release.updated", "failure", "Background asset version: Failed"),
    ],
)
def test_feedback_ping_and_background_assets(sample_id: str, event: str, outcome: str, title: str) -> None:
    n = notification(json.loads(sample(f"appstoreconnect/{sample_id}").body()))
    assert (n.event, n.outcome, n.title) == (event, outcome, title)
    assert n.emoji and n.url == "https://appstoreconnect.apple.com/apps"


def test_a_background_asset_instance_without_data_is_read_as_apple_shows_it() -> None:
    n = notification(json.loads(sample("appstoreconnect/background-asset-failed").body()))
    assert n.message_key == "appstoreconnect:backgroundAssetVersions:607fea97-a6ba-445d-a9bd-3c1e2f4a5b6c"


@pytest.mark.parametrize(
    ("type_", "attributes", "title"),
    [
        (
            "alternativeDistributionPackageVersionCreated",
            {},
            "Alternative distribution package version created",
        ),
        (
            "alternativeDistributionPackageAvailableUpdated",
            {"available": False, "territories": ["FRA"]},
            "Alternative distribution package no longer available in 1 territory",
        ),
        (
            "alternativeDistributionTerritoryAvailabilityUpdated",
            {"available": True, "territories": ["FRA", "DEU"]},
            "Alternative distribution available in 2 territories",
        ),
    ],
)
def test_alternative_distribution_events(type_: str, attributes: dict[str, Any], title: str) -> None:
    body = {"data": {"type": type_, "id": "e1", "attributes": {"appId": "6450012345", **attributes}}}
    n = notification(body)
    assert (n.event, n.title, n.app_key) == ("release.updated", title, "6450012345")
    assert n.url == "https://appstoreconnect.apple.com/apps/6450012345/distribution"


@pytest.mark.parametrize(
    "type_", ["webhookPingCreated", "webhookPing", "webhookPings", "WEBHOOK_PING_CREATED"]
)
def test_every_spelling_of_the_ping_is_a_ping(type_: str) -> None:
    assert notification(with_data(PING, type=type_)).event == "webhook.ping"


def test_an_event_type_we_do_not_know_is_acknowledged_not_refused(channels: dict[str, str]) -> None:
    answer = post(channels, "appstoreconnect", "slack", with_data(PING, type="appClipSomethingCreated"))
    assert answer.status == 200 and answer.body["status"] == "ignored"
    assert "appClipSomethingCreated" in answer.body["reason"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"notdata": 1}, "data"),
        ({"data": {"id": "x", "attributes": {}}}, "data.type"),
        ({"data": {"type": "webhookPingCreated", "attributes": {}}}, "data.id"),
        ({"data": {"type": "webhookPingCreated", "id": ""}}, "data.id"),
        (
            {"data": {"type": "x", "id": "y", "attributes": {"territories": "FRA"}}},
            "data.attributes.territories",
        ),
        (
            {"data": {"type": "x", "id": "y", "attributes": {"timestamp": "yesterday"}}},
            "data.attributes.timestamp",
        ),
    ],
)
def test_a_body_apple_would_not_send_is_422_naming_the_field(body: dict[str, Any], path: str) -> None:
    assert path in errors_of(body)


def test_null_is_read_as_absent() -> None:
    body = with_states(VERSION, oldValue=None, newValue="IN_REVIEW")
    body["data"]["relationships"]["instance"]["links"] = None
    assert notification(body).event == "review.started"


# -- delivery and identity -------------------------------------------------------------------------


def test_the_ping_answers_200_and_tells_the_channel_it_is_connected(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(channels, "appstoreconnect", "slack+teams", PING)
    assert answer.status == 200 and answer.body["status"] == "delivered", answer.body
    for channel in ("slack", "teams"):
        (got,) = chat.at(path_of(channels, channel))
        assert "App Store Connect webhook connected" in json.dumps(got.json(), ensure_ascii=False)


def test_a_resend_is_a_duplicate_and_another_event_of_the_same_version_is_not(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    first = post(channels, "appstoreconnect", "slack", VERSION)
    again = post(channels, "appstoreconnect", "slack", VERSION)
    later = post(
        channels,
        "appstoreconnect",
        "slack",
        with_data(with_states(VERSION, newValue="PREPARE_FOR_SUBMISSION"), id="n2"),
    )
    assert first.body["status"] == "delivered" and later.body["status"] == "delivered"
    assert again.body["channels"][0]["reason"] == "duplicate"
    assert len(chat.at(path_of(channels, "slack"))) == 2


# -- signatures ------------------------------------------------------------------------------------


def test_apples_documented_signature_vector() -> None:
    expected = "hmacsha256=7f062172b01cb00b53ca068614674a3d982a34062a0f5d37687d5e3377e54657"
    assert SIGNING.sign("This is my secret", b"Hello, World!") == expected
    for given in (expected, expected.upper(), expected.removeprefix("hmacsha256="), f"  {expected} "):
        SIGNING.verify(
            "This is my secret", b"Hello, World!", {"x-apple-signature": given}, "App Store Connect"
        )
    # An independent computation, in case sign() and verify() agree on something wrong.
    digest = hmac.new(b"This is my secret", b"Hello, World!", hashlib.sha256).hexdigest()
    assert expected.endswith(digest)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "missing x-apple-signature header"),
        ({"x-apple-signature": ""}, "missing x-apple-signature header"),
        ({"x-apple-signature": "hmacsha256=" + "0" * 64}, "x-apple-signature does not match the body"),
        ({"x-apple-signature": "hmacsha256=zz\u00e9"}, "x-apple-signature does not match the body"),
        ("other secret", "x-apple-signature does not match the body"),
        ("other body", "x-apple-signature does not match the body"),
    ],
    ids=["missing", "empty", "zeros", "not-hex", "other-secret", "other-body"],
)
@pytest.mark.parametrize("route", ["appstoreconnect", "auto"])
@pytest.mark.parametrize("dry", [False, True], ids=["real", "dry-run"])
def test_with_a_secret_a_wrong_or_missing_signature_is_401_and_nothing_is_sent(
    chat: ChatServer,
    channels: dict[str, str],
    headers: dict[str, str] | str,
    words: str,
    route: str,
    dry: bool,
) -> None:
    env = channels | {"APPSTORECONNECT_WEBHOOK_SECRET": SECRET}
    body = json.dumps(VERSION).encode()
    if headers == "other secret":
        headers = signed(body, "not the secret")
    elif headers == "other body":
        headers = signed(json.dumps(with_states(VERSION, newValue="READY_FOR_SALE")).encode())
    assert isinstance(headers, dict)
    answer = post(env, route, "slack+teams", body, headers, {"dry_run": "1"} if dry else None)
    assert answer.status == 401, answer.body
    assert answer.body["error"] == "unauthorized" and answer.body["header"] == "x-apple-signature"
    assert words in answer.body["message"] and "APPSTORECONNECT_WEBHOOK_SECRET" in answer.body["message"]
    assert SECRET not in json.dumps(answer.body)
    assert chat.at(path_of(env, "slack")) == [] and chat.at(path_of(env, "teams")) == []


@pytest.mark.parametrize("route", ["appstoreconnect", "auto"])
def test_with_a_secret_a_right_signature_is_delivered(
    chat: ChatServer, channels: dict[str, str], route: str
) -> None:
    env = channels | {"APPSTORECONNECT_WEBHOOK_SECRET": SECRET}
    body = json.dumps(VERSION, indent=3).encode()  # the bytes as they come, whatever their layout
    answer = post(env, route, "slack", body, {"X-Apple-Signature": SIGNING.sign(SECRET, body)})
    assert answer.status == 200 and answer.body["status"] == "delivered", answer.body
    assert len(chat.at(path_of(env, "slack"))) == 1


def test_the_signature_is_over_the_bytes_as_received(channels: dict[str, str]) -> None:
    env = channels | {"APPSTORECONNECT_WEBHOOK_SECRET": SECRET}
    compact = json.dumps(VERSION, separators=(",", ":")).encode()
    spaced = json.dumps(VERSION).encode()  # the same JSON, other bytes
    assert post(env, "appstoreconnect", "slack", spaced, signed(compact)).status == 401


def test_a_signature_stands_in_for_the_webhook_token(chat: ChatServer, channels: dict[str, str]) -> None:
    env = channels | {"APPSTORECONNECT_WEBHOOK_SECRET": SECRET, "WEBHOOK_TOKEN": "the-shared-token"}
    body = json.dumps(VERSION).encode()
    assert post(env, "appstoreconnect", "slack", body, signed(body)).body["status"] == "delivered"
    assert post(env, "auto", "teams", body, signed(body)).body["status"] == "delivered"
    token = {"X-Webhook-Token": "the-shared-token"}
    unsigned = post(env, "appstoreconnect", "slack", body, token)
    assert unsigned.status == 401 and unsigned.body["header"] == "x-apple-signature", (
        "the secret makes it required"
    )
    xcode = sample("xcodecloud/build-failed").body()
    refused = post(env, "xcodecloud", "slack", xcode)
    assert refused.status == 401 and "webhook token" in refused.body["message"], (
        "an unsigned source needs the token"
    )
    assert post(env, "xcodecloud", "slack", xcode, token).body["status"] == "delivered"
    for anonymous in (xcode, b"{}", b"not json", json.dumps({"data": {"type": "x"}}).encode()):
        answer = post(env, "auto", "slack", anonymous)
        assert answer.status == 401 and "webhook token" in answer.body["message"], answer.body


def test_without_a_secret_requests_are_admitted_as_before(chat: ChatServer, channels: dict[str, str]) -> None:
    assert post(channels, "appstoreconnect", "slack", VERSION).body["status"] == "delivered"
    guarded = channels | {"WEBHOOK_TOKEN": "the-shared-token"}
    assert post(guarded, "appstoreconnect", "teams", VERSION).status == 401
    answer = post(guarded, "appstoreconnect", "teams", VERSION, {"X-Webhook-Token": "the-shared-token"})
    assert answer.body["status"] == "delivered"


def test_health_says_whether_each_signed_source_is_checked(channels: dict[str, str]) -> None:
    unsigned = pipeline.health(settings.load(channels)).body
    assert unsigned["signatures"]["appstoreconnect"] == (
        "unsigned: set APPSTORECONNECT_WEBHOOK_SECRET to check x-apple-signature"
    )
    assert "xcodecloud" not in unsigned["signatures"], "Xcode Cloud signs nothing"
    checked = pipeline.health(settings.load(channels | {"APPSTORECONNECT_WEBHOOK_SECRET": SECRET})).body
    assert checked["signatures"]["appstoreconnect"] == "checked (x-apple-signature)"
    assert SECRET not in json.dumps(checked)
    assert SECRET in settings.load({"APPSTORECONNECT_WEBHOOK_SECRET": SECRET}).secrets(), (
        "the log filter masks it"
    )


def test_every_signed_source_is_one_declaration() -> None:
    signed_sources = {name for name, s in sources.registry().items() if sources.signing(s) is not None}
    assert "appstoreconnect" in signed_sources
    for name in signed_sources:
        how = sources.signing(sources.registry()[name])
        assert how is not None and how.setting in settings.APP_SETTING_NAMES, name
