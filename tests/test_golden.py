"""Every bundled sample through every format, against golden files.

Run ``make golden`` (pytest --update-golden) to rewrite them after a template change, then review
the diff: the golden files are the record of what users see. Each sample is drawn as a fresh setup
shows it (``<name>.json``); some also "mapped" (``<name>.mapped.json``): with the example app names,
people and fixed mentions of ``translators/samples/mapped.json``, and with what the platform's API
answered about the event where a source asks one (Bitrise, recorded in ``samples/bitrise/api/``).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from tests import crosscheck
from translators import pipeline, settings, sources
from translators.model import Notification
from translators.samples import Sample, all_samples, mapped_env, mapped_samples
from translators.samples import notification as sample_notification
from translators.sources import applivery

GOLDEN = Path(__file__).resolve().parent / "golden"
FORMATS = ("slack", "teams", "teams-messagecard")
SETTINGS = settings.load(
    {f"CHANNEL_{f.upper().replace('-', '_')}_URL": "http://127.0.0.1:9/" for f in FORMATS}
    | {f"CHANNEL_{f.upper().replace('-', '_')}_FORMAT": f for f in FORMATS}
)


# The day the goldens were drawn: a certificate warning names its expiry date, counted from the day
# it arrives, so the record must not move with the calendar.
DRAWN_ON = date(2026, 12, 4)


@pytest.fixture(autouse=True)
def drawn_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applivery, "today", lambda: DRAWN_ON)


def notification_of(sample: Sample) -> Notification:
    source = sources.get(sample.source)
    assert source is not None
    result = source.translate(json.loads(sample.body()), {k.lower(): v for k, v in sample.headers.items()})
    assert isinstance(result, Notification), result
    return result


MAPPED = settings.load(mapped_env(FORMATS))
CASES = [(s, f, False) for s in all_samples() for f in FORMATS] + [
    (s, f, True) for s in mapped_samples() for f in FORMATS
]


def golden_path(sample: Sample, fmt: str, mapped: bool) -> Path:
    return GOLDEN / fmt / sample.source / f"{sample.name}{'.mapped' if mapped else ''}.json"


@pytest.mark.parametrize(
    ("sample", "fmt", "mapped"), CASES, ids=[f"{f}:{s.id}{':mapped' if m else ''}" for s, f, m in CASES]
)
def test_golden(sample: Sample, fmt: str, mapped: bool, request: pytest.FixtureRequest) -> None:
    if mapped:
        assert MAPPED.errors == {} and MAPPED.channel_errors == {}
        n = sample_notification(sample, MAPPED)
        assert isinstance(n, Notification)
        prepared = pipeline.prepare(MAPPED.channel(fmt), n, MAPPED)
    else:
        prepared = pipeline.prepare(SETTINGS.channel(fmt), notification_of(sample), SETTINGS)
    assert prepared.template_error is None, prepared.template_error
    assert crosscheck.check(fmt, prepared.body) == []
    rendered = json.dumps(prepared.body, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    path = golden_path(sample, fmt, mapped)
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {path.relative_to(GOLDEN.parent)}; run `make golden`"
    assert rendered == path.read_text(encoding="utf-8"), f"{path.name} differs; review and run `make golden`"


def test_no_stale_golden_files() -> None:
    expected = {golden_path(s, f, m) for s, f, m in CASES}
    stale = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*.json") if p not in expected)
    assert stale == [], f"golden files without a sample: {stale}"


def test_every_event_of_every_source_has_a_sample() -> None:
    events = {(s.source, notification_of(s).event) for s in all_samples()}
    assert {
        ("bitrise", e) for e in ("build.started", "build.succeeded", "build.failed", "build.canceled")
    } <= events
    assert {
        ("appcenter", e)
        for e in ("build.succeeded", "build.failed", "build.canceled", "crash.new_group", "release.published")
    } <= events
    assert {
        ("applivery", e)
        for e in (
            "build.uploaded",
            "build.ready",
            "feedback.received",
            "bug.reported",
            "certificate.expiring",
        )
    } <= events
    assert {("appflow", e) for e in ("build.succeeded", "build.failed", "build.canceled")} <= events
    assert {
        ("appstoreconnect", e)
        for e in (
            "review.submitted",
            "review.started",
            "review.approved",
            "review.rejected",
            "release.published",
            "release.updated",
            "build.uploaded",
            "build.ready",
            "build.upload_failed",
            "feedback.received",
            "crash.reported",
            "webhook.ping",
        )
    } <= events
    assert {
        ("eas", e)
        for e in (
            "build.succeeded",
            "build.failed",
            "build.canceled",
            "build.uploaded",
            "build.upload_failed",
        )
    } <= events
    assert {
        ("github", e)
        for e in ("build.started", "build.succeeded", "build.failed", "build.canceled", "webhook.ping")
    } <= events
    assert {
        ("appcircle", e) for e in ("build.started", "build.succeeded", "build.failed", "release.published")
    } <= events
    assert {
        ("xcodecloud", e)
        for e in ("build.queued", "build.started", "build.succeeded", "build.failed", "build.canceled")
    } <= events
