"""One signature mechanism for every signed source (sources.Signing): with the source's secret set,
a missing or wrong signature is 401 naming the header and nothing is sent or remembered; a right one
is delivered; health says which sources are signed. Each platform's documented vector checks the
algorithm and the header's format."""

from __future__ import annotations

import json

import pytest

from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from translators import pipeline, settings, sources
from translators.samples import Sample

SIGNED = {
    "appstoreconnect": "appstoreconnect/version-rejected",
    "github": "github/run-failed",
    "eas": "eas/build-errored",
    "appcircle": "appcircle/build-start",
}
SECRET = "the webhook's secret, 16+ characters"


def test_every_source_that_can_be_signed_is_here() -> None:
    signed = {name for name, s in sources.registry().items() if sources.signing(s) is not None}
    assert signed == set(SIGNED)


def parts(name: str) -> tuple[sources.Signing, Sample]:
    source = sources.get(name)
    assert source is not None
    how = sources.signing(source)
    assert how is not None
    return how, sample(SIGNED[name])


@pytest.mark.parametrize("name", sorted(SIGNED))
@pytest.mark.parametrize("route", ["named", "auto"])
def test_a_right_signature_is_delivered_and_a_wrong_or_missing_one_is_401(
    name: str, route: str, chat: ChatServer, channels: dict[str, str]
) -> None:
    how, s = parts(name)
    env = channels | {how.setting: SECRET}
    path = name if route == "named" else "auto"
    raw = s.body()
    for headers in ({}, {how.header: how.sign("another secret", raw)}, {how.header: how.prefix + "00" * 8}):
        answer = post(env, path, "slack", raw, dict(s.headers) | headers)
        assert answer.status == 401, (headers, answer.body)
        assert answer.body["header"] == how.header and how.setting in answer.body["message"]
    assert chat.at(path_of(env, "slack")) == []
    answer = post(env, path, "slack", raw, dict(s.headers) | {how.header: how.sign(SECRET, raw)})
    assert answer.status == 200 and answer.body["status"] == "delivered", answer.body
    assert len(chat.at(path_of(env, "slack"))) == 1


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_nothing_is_remembered_of_a_refused_request(
    name: str, chat: ChatServer, channels: dict[str, str]
) -> None:
    """A forged delivery cannot make the real one a duplicate, nor change a build's history."""
    how, s = parts(name)
    env = channels | {how.setting: SECRET}
    raw = s.body()
    assert post(env, name, "slack", raw, dict(s.headers)).status == 401
    real = post(env, name, "slack", raw, dict(s.headers) | {how.header: how.sign(SECRET, raw)})
    assert real.body["status"] == "delivered", real.body


def test_a_header_with_an_underscore_is_read_as_a_proxy_rewrites_it(channels: dict[str, str]) -> None:
    how, s = parts("appcircle")
    raw = s.body()
    answer = post(
        channels | {how.setting: SECRET}, "appcircle", "slack", raw, {"AC-Signature": how.sign(SECRET, raw)}
    )
    assert answer.status == 200, answer.body


def test_health_lists_each_signed_source(channels: dict[str, str]) -> None:
    env = channels | {"GITHUB_WEBHOOK_SECRET": SECRET}
    shown = pipeline.health(settings.load(env)).body["signatures"]
    assert shown["github"] == "checked (X-Hub-Signature-256)"
    assert shown["eas"] == "unsigned: set EAS_WEBHOOK_SECRET to check expo-signature"
    assert shown["appcircle"] == "unsigned: set APPCIRCLE_WEBHOOK_SECRET to check ac_signature"
    assert set(shown) == set(SIGNED) and SECRET not in json.dumps(shown)


@pytest.mark.parametrize(
    ("name", "secret", "body", "header"),
    [
        (  # App Store Connect's "Configuring and parsing ... webhook notifications"
            "appstoreconnect",
            "This is my secret",
            b"Hello, World!",
            "hmacsha256=7f062172b01cb00b53ca068614674a3d982a34062a0f5d37687d5e3377e54657",
        ),
        (  # GitHub's "Validating webhook deliveries"
            "github",
            "It's a Secret to Everybody",
            b"Hello, World!",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
        (  # Appcircle's webhooks page: its example body, byte for byte, signed with "test"
            "appcircle",
            "test",
            sample("appcircle/build-start").body(),
            "8470172a1c60447abd7dce97227448da2b369b17d54d128306625979eca6476b",
        ),
    ],
)
def test_each_platforms_documented_example(name: str, secret: str, body: bytes, header: str) -> None:
    how, _ = parts(name)
    assert how.sign(secret, body) == header
    how.verify(secret, body, {how.header.lower(): header}, name)


def test_eas_signs_with_sha1_as_its_docs_code_does() -> None:
    import hashlib
    import hmac

    how, s = parts("eas")
    expected = "sha1=" + hmac.new(SECRET.encode(), s.body(), hashlib.sha1).hexdigest()
    assert how.sign(SECRET, s.body()) == expected and how.header == "expo-signature"
