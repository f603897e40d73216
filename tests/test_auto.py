"""``/api/auto/{channel}``: the sender is recognised from the payload or a header."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.chatserver import ChatServer
from tests.conftest import path_of, post
from tests.sourcetools import SOURCES
from translators import pipeline, settings, sources
from translators.errors import PayloadInvalid
from translators.samples import Sample, all_samples


def headers_of(s: Sample) -> dict[str, str]:
    return {k.lower(): v for k, v in s.headers.items()}


def test_every_source_has_samples_and_a_signature() -> None:
    assert {s.source for s in all_samples()} >= set(SOURCES)
    for source in sources.registry().values():
        assert source.signature.strip()


@pytest.mark.parametrize("sample", all_samples(), ids=lambda s: s.id)
def test_each_sample_is_recognised_by_its_own_source_only(sample: Sample) -> None:
    payload = json.loads(sample.body())
    recognised = [s.name for s in sources.registry().values() if s.recognises(payload, headers_of(sample))]
    assert recognised == [sample.source]
    assert sources.detect(payload, headers_of(sample)).name == sample.source


@pytest.mark.parametrize("sample", all_samples(), ids=lambda s: s.id)
def test_auto_answers_as_if_the_source_were_named(sample: Sample, channels: dict[str, str]) -> None:
    named = post(
        channels, sample.source, "slack+teams+legacy", sample.body(), sample.headers, {"dry_run": "1"}
    )
    auto = post(channels, "auto", "slack+teams+legacy", sample.body(), sample.headers, {"dry_run": "1"})
    assert auto.status == named.status == 200, auto.body
    assert auto.body["source"] == sample.source
    strip = ("request_id",)
    assert {k: v for k, v in auto.body.items() if k not in strip} == {
        k: v for k, v in named.body.items() if k not in strip
    }


def test_auto_delivers(chat: ChatServer, channels: dict[str, str]) -> None:
    body = next(s for s in all_samples() if s.id == "applivery/feedback").body()
    answer = post(channels, "AUTO", "slack", body)
    assert answer.status == 200, answer.body
    assert (answer.body["status"], answer.body["source"], answer.body["event"]) == (
        "delivered",
        "applivery",
        "feedback.received",
    )
    assert len(chat.at(path_of(channels, "slack"))) == 1


def test_bitrise_is_recognised_by_its_header_alone() -> None:
    assert sources.detect({"anything": 1}, {"bitrise-event-type": "build/finished"}).name == "bitrise"


def test_ignored_events_keep_their_200_through_auto(channels: dict[str, str]) -> None:
    appflow = json.loads(next(s for s in all_samples() if s.id == "appflow/web-success").body())
    answer = post(channels, "auto", "slack", {**appflow, "state": "running"})
    assert answer.status == 200 and answer.body["status"] == "ignored" and answer.body["source"] == "appflow"
    applivery = json.loads(next(s for s in all_samples() if s.id == "applivery/bug").body())
    answer = post(channels, "auto", "slack", {**applivery, "action": "mdm_device_enrolled"})
    assert (
        answer.status == 200 and answer.body["status"] == "ignored" and answer.body["source"] == "applivery"
    )


def test_detected_source_still_validates(channels: dict[str, str]) -> None:
    applivery = json.loads(next(s for s in all_samples() if s.id == "applivery/certificate-5-days").body())
    answer = post(channels, "auto", "slack", {**applivery, "numDays": "many"})
    assert answer.status == 422
    assert "Applivery" in answer.body["message"] and answer.body["errors"][0]["path"] == "numDays"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"hello": "world"},
        {"state": "success"},
        {"action": "bug_created"},
        {"build_slug": "x", "app_slug": "y"},
    ],
)
def test_unrecognised_body_is_422_listing_every_signature(
    payload: dict[str, Any], chat: ChatServer, channels: dict[str, str]
) -> None:
    answer = post(channels, "auto", "slack", payload)
    assert answer.status == 422, answer.body
    assert answer.body["error"] == "invalid_payload"
    assert "did not recognise" in answer.body["message"]
    listed = " ".join(e["message"] for e in answer.body["errors"])
    for name in SOURCES:
        assert f"({name})" in listed
    assert "Bitrise-Event-Type" in listed and "automation" in listed and "application" in listed
    assert set(answer.body["valid"]) >= set(SOURCES)
    assert chat.at(path_of(channels, "slack")) == []


def test_body_fitting_two_sources_is_422_naming_both(channels: dict[str, str]) -> None:
    both = {"action": "build_created", "application": {}, "state": "success", "automation": {}}
    answer = post(channels, "auto", "slack", both)
    assert answer.status == 422
    assert "Appflow and Applivery" in answer.body["message"]
    assert answer.body["candidates"] == ["appflow", "applivery"]
    assert len(answer.body["errors"]) == 2
    with pytest.raises(PayloadInvalid):
        sources.detect(both, {"bitrise-event-type": "build/finished"})


@pytest.mark.parametrize(("raw", "words"), [(b"", "empty"), (b"[]", "array"), (b"{oops", "not valid JSON")])
def test_bad_bodies_are_400_before_detection(raw: bytes, words: str, channels: dict[str, str]) -> None:
    answer = post(channels, "auto", "slack", raw)
    assert answer.status == 400
    assert answer.body["error"] == "invalid_body" and words in answer.body["message"]


def test_unknown_channel_is_404_before_detection(channels: dict[str, str]) -> None:
    answer = post(channels, "auto", "nope", {"hello": "world"})
    assert answer.status == 404 and answer.body["error"] == "unknown_channel"


def test_unknown_source_lists_auto(channels: dict[str, str]) -> None:
    answer = post(channels, "jenkins", "slack", {"hello": "world"})
    assert answer.status == 404 and answer.body["error"] == "unknown_source"
    assert answer.body["valid"] == [*sorted(SOURCES), "auto"]


def test_health_lists_auto(channels: dict[str, str]) -> None:
    body = pipeline.health(settings.load(channels)).body
    assert set(body["sources"]) == {*SOURCES, "auto"}
    assert body["sources"]["applivery"] == "Applivery" and body["sources"]["appflow"] == "Appflow"
