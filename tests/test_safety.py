"""Payload text is data: it cannot break the JSON, evaluate Jinja, ping anyone, or overflow a limit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import bodies, crosscheck
from tests.bodies import SLACK_MENTION
from translators import pipeline, samples, settings, sources
from translators.formats import dumps
from translators.formats import slack as slack_format
from translators.model import Link, Notification
from translators.sources import _asc_api

HOSTILE = [
    'quote " and backslash \\ and \\" escaped',
    "new\nline\r\ncarriage\ttab",
    "{{ 7 * 191 }} {% raw %}{{ config }}{% endraw %} {# c #}",
    "<!channel> <!here> <!everyone> <@U123> <#C123> <!subteam^S123>",
    "<https://evil.example|click me> & &amp; &lt;",
    '"}]}, {"type": "section", "text": {"type": "mrkdwn", "text": "<!channel>"}}',
    "emoji 🚀🔥 and combining é and RTL \u202e text and nul-ish \u0001",
    "x" * 10_000,
]
FORMATS = ("slack", "teams", "teams-messagecard")
SETTINGS = settings.load(
    {f"CHANNEL_{f.upper().replace('-', '_')}_URL": "http://127.0.0.1:9/" for f in FORMATS}
    | {f"CHANNEL_{f.upper().replace('-', '_')}_FORMAT": f for f in FORMATS}
)


def bitrise(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    payload = {
        "build_slug": "abc",
        "build_number": 1,
        "app_slug": text,
        "app_title": text,
        "build_status": 2,
        "build_triggered_workflow": text,
        "git": {
            "provider": text,
            "src_branch": text,
            "dst_branch": text,
            "pull_request_id": 5,
            "tag": text,
            "commit_message": text,
            "commit_hash": text,
        },
    }
    return payload, {"bitrise-event-type": "build/finished"}


def appcenter_release(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "app_display_name": text,
        "release_id": "1",
        "short_version": text,
        "version": text,
        "release_notes": text,
        "install_link": "https://install.example/x",
        "min_os": text,
        "bundle_identifier": text,
    }, {}


def appcenter_crash(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "id": "1",
        "name": text,
        "reason": text,
        "app_display_name": text,
        "app_version": text,
        "stack_trace": [text, text],
        "crash_count": 3,
        "url": "https://appcenter.example/crash",
    }, {}


def appcenter_build(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "app_name": text,
        "branch": text,
        "build_status": "Failed",
        "build_id": "9",
        "build_reason": text,
        "os": text,
    }, {}


def applivery_report(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "action": "bug_created",
        "organization": {"id": "o", "name": text, "url": "https://dashboard.applivery.io/o"},
        "application": {"id": "a", "name": text, "url": "https://dashboard.applivery.io/o/apps/a"},
        "report": {"message": text, "url": "https://dashboard.applivery.io/o/apps/a/reports?id=1"},
    }, {}


def applivery_certificate(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "action": "certificate_application_will_expire",
        "organization": {"id": "o", "name": text, "url": "https://dashboard.applivery.io/o"},
        "application": {"id": "a", "name": text, "url": "https://dashboard.applivery.io/o/apps/a"},
        "numDays": "2",
        "team": {"name": text, "identifier": text},
    }, {}


def appflow(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "state": "success",
        "id": "b",
        "type": text,
        "profile": text,
        "platform": text,
        "environmentName": text,
        "downloadUrl": "https://download.example/x",
        "appId": "abcd1234",
        "automation": {"name": text, "nativeConfigName": text, "channel": {"name": text}},
        "buildInfo": {"id": 7, "job_type": text},
        "app": {"name": text},
        "commit": {"sha": text, "note": text, "ref": text, "user": {"name": text, "username": text}},
    }, {}


def appstoreconnect(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "data": {
            "type": "appStoreVersionAppVersionStateUpdated",
            "id": text or "e",
            "attributes": {"oldValue": text, "newValue": text, "timestamp": "2026-12-01T09:12:44Z"},
            "relationships": {"instance": {"data": {"type": text, "id": text or "v"}}},
        }
    }, {}


def appstoreconnect_alternative(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "data": {
            "type": "alternativeDistributionPackageAvailableUpdated",
            "id": "e",
            "attributes": {"available": True, "territories": [text, text], "appId": text},
        }
    }, {}


def appstoreconnect_api(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A feedback event, completed below with what a hostile API answer says (``ENRICHED``)."""
    return json.loads(samples.get("appstoreconnect/feedback-screenshot").body()), {}


def xcodecloud(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    named = {"id": text, "attributes": {"name": text}}
    return {
        "metadata": {"attributes": {"eventType": "BUILD_COMPLETED"}},
        "app": {"id": text},
        "ciWorkflow": named,
        "ciProduct": named,
        "ciBuildRun": {
            "id": text or "r",
            "attributes": {
                "number": 7,
                "completionStatus": "FAILED",
                "sourceCommit": {"commitSha": text, "author": {"displayName": text}, "htmlUrl": text},
            },
        },
        "ciBuildActions": [
            {"attributes": {"name": text, "completionStatus": "FAILED", "issueCounts": {"errors": 2}}},
            {"attributes": {"name": text}, "relationships": {"builds": {"attributes": {"platform": text}}}},
        ],
        "scmPullRequest": {
            "attributes": {"title": text, "number": 5, "htmlUrl": text, "sourceBranchName": text}
        },
        "scmGitReference": {"attributes": {"name": text, "kind": "BRANCH"}},
    }, {}


def eas(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "id": text or "b",
        "accountName": text,
        "projectName": text or "p",
        "buildDetailsPageUrl": "https://expo.dev/accounts/a/projects/p/builds/b",
        "platform": text,
        "status": "errored",
        "artifacts": {"buildUrl": text},
        "metadata": {
            k: text
            for k in (
                "appName",
                "appIdentifier",
                "appVersion",
                "appBuildVersion",
                "buildProfile",
                "distribution",
                "channel",
                "gitCommitHash",
                "gitCommitMessage",
                "username",
                "message",
            )
        },
        "error": {"message": text, "errorCode": text},
    }, {}


def eas_submit(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "id": text or "s",
        "accountName": text or "a",
        "projectName": text or "p",
        "submissionDetailsPageUrl": "https://expo.dev/accounts/a/projects/p/submissions/s",
        "turtleBuildId": text or "t",
        "platform": text,
        "status": "errored",
        "submissionInfo": {"error": {"message": text, "errorCode": text}, "logsUrl": text},
    }, {}


def github(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    person = {"name": text, "email": text}
    return {
        "action": "completed",
        "workflow_run": {
            "id": 1,
            "name": text,
            "display_title": text,
            "run_number": 3,
            "run_attempt": 2,
            "conclusion": "failure",
            "head_branch": text,
            "head_sha": text,
            "head_commit": {"id": text, "message": text, "author": person},
            "html_url": text,
            "pull_requests": [{"number": 4, "head": {"ref": text}, "base": {"ref": text}}],
            "actor": {"login": text},
        },
        "repository": {"full_name": text or "r", "html_url": text},
        "workflow": {"name": text},
    }, {"x-github-event": "workflow_run"}


def appcircle(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "deliveryId": text,
        "action": f"Build|BuildFailed{text}",
        "title": text,
        "message": f"Build failed for the {text} branch for the profile {text} https://my.appcircle.io/x",
        "item": {"id": text, "profileId": text, "taskId": text},
        "links": {"detail": text, "viewlogs": text},
    }, {}


#: Kinds whose notification is completed from an API answer before rendering, as the pipeline does.
ENRICHED = {
    "appstoreconnect-api": lambda n, text: _asc_api.apply(
        n,
        _asc_api.Details(
            app_id=text or "1",
            app_name=text,
            bundle_id=text,
            version=text,
            platform=text,
            build_number=text,
            build_id=text,
            upload_errors=(text,),
            feedback=_asc_api.Feedback(comment=text, tester=text, device=text, screenshots=(text,)),
        ),
    )
}

PAYLOADS = {
    "bitrise": bitrise,
    "appcenter-release": appcenter_release,
    "appcenter-crash": appcenter_crash,
    "appcenter-build": appcenter_build,
    "applivery-report": applivery_report,
    "applivery-certificate": applivery_certificate,
    "appflow": appflow,
    "appstoreconnect": appstoreconnect,
    "appstoreconnect-alternative": appstoreconnect_alternative,
    "appstoreconnect-api": appstoreconnect_api,
    "xcodecloud": xcodecloud,
    "eas": eas,
    "eas-submit": eas_submit,
    "github": github,
    "appcircle": appcircle,
}


def rendered(kind: str, text: str, fmt: str) -> pipeline.Prepared:
    payload, headers = PAYLOADS[kind](text)
    source = sources.get(kind.split("-")[0])
    assert source is not None
    n = source.translate(payload, headers)
    assert isinstance(n, Notification)
    if kind in ENRICHED:
        n = ENRICHED[kind](n, text)
    return pipeline.prepare(SETTINGS.channel(fmt), n, SETTINGS)


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        node = list(node.values())
    return [s for value in node for s in strings(value)] if isinstance(node, list) else []


def unescaped(text: str, characters: str) -> list[str]:
    """Characters of ``characters`` in Markdown text that no backslash escapes."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in characters:
            found.append(text[i])
        i += 1
    return found


#: The card's own time functions, written by the renderer from a parsed datetime (never payload text).
CARD_TIME = re.compile(r"\{\{(DATE|TIME)\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ(, SHORT)?\)\}\}")


def card_texts(node: Any) -> list[str]:
    """TextBlock texts and fact titles and values of a card (what Teams reads as Markdown)."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "TextBlock":
            found.append(node["text"])
        if "title" in node and "value" in node:
            found += [node["title"], node["value"]]
        for value in node.values():
            found += card_texts(value)
    elif isinstance(node, list):
        for value in node:
            found += card_texts(value)
    return found


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_renders_valid_safe_output(kind: str, text: str, fmt: str) -> None:
    prepared = rendered(kind, text, fmt)
    assert prepared.template_error is None, prepared.template_error
    raw = json.dumps(prepared.body, ensure_ascii=False)
    assert json.loads(raw) == prepared.body
    prepared.fmt.validate(prepared.body)  # our own validator
    assert crosscheck.check(fmt, prepared.body) == []  # and an independent one
    assert "1337" not in raw, "payload text was evaluated as a template"
    if "{{ 7 * 191 }}" in text:
        shown = raw if fmt == "slack" else "\n".join(map(bodies.unescape_markdown, strings(prepared.body)))
        assert "{{ 7 * 191 }}" in shown or "…" in raw
    assert len(raw.encode()) <= prepared.fmt.max_bytes
    if fmt == "slack":
        for t in bodies.slack_markup_texts(prepared.body):
            assert not SLACK_MENTION.search(t), f"a Slack control sequence survived: {t[:120]!r}"
    if fmt == "teams":
        for t in card_texts(prepared.body):
            # No tag (an <at> mention) and no {{DATE()}} call can come from a payload.
            assert unescaped(CARD_TIME.sub("", t), "<>{}") == [], f"unescaped markup in {t[:120]!r}"
    if fmt == "teams-messagecard":
        assert "<!channel>" not in raw and "<https://evil" not in raw and "<" not in raw


def test_long_release_notes_are_shortened_with_ellipsis() -> None:
    source = sources.get("appcenter")
    assert source is not None
    payload, _ = appcenter_release("1.0")
    n = source.translate({**payload, "release_notes": "n" * 10_000}, {})
    assert isinstance(n, Notification)
    for fmt in FORMATS:
        prepared = pipeline.prepare(SETTINGS.channel(fmt), n, SETTINGS)
        raw = json.dumps(prepared.body, ensure_ascii=False)
        assert "…" in raw
        assert "n" * 10_000 not in raw


def test_slack_escape_is_exactly_the_three_characters() -> None:
    fmt = slack_format.FORMAT
    assert fmt.escape("a & b < c > d \" ' `") == "a &amp; b &lt; c &gt; d \" ' `"


def test_slack_clip_never_leaves_half_an_entity_or_link() -> None:
    fmt = slack_format.FORMAT
    assert fmt.clip_text("abc &amp; def", 7) == "abc…"
    assert fmt.clip_text("see <https://x.example/long|link> now", 20) == "see…"
    assert len(fmt.clip_text("y" * 5000, 3000)) == 3000


def test_oversize_teams_body_is_shrunk_to_28kb() -> None:
    fmt = SETTINGS.channel("teams")
    n = Notification(
        source="appcenter",
        source_label="App Center",
        event="release.published",
        outcome="info",
        title="t",
        summary="s",
        details="z" * 200_000,
        facts=tuple((f"fact {i}", "v" * 2000) for i in range(30)),
    )
    prepared = pipeline.prepare(fmt, n, SETTINGS)
    assert prepared.template_error is None
    assert len(json.dumps(prepared.body, ensure_ascii=False).encode()) <= 28 * 1024


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_shrinks_oversize_bodies_to_fit(fmt: str) -> None:
    channel = SETTINGS.channel(fmt)
    n = Notification(
        source="appcenter",
        source_label="App Center",
        event="crash.new_group",
        outcome="failure",
        title="t" * 500,
        summary="s" * 5000,
        app="a" * 3000,
        details_title="d" * 3000,
        details="z" * 500_000,
        facts=tuple((f"fact {i} " * 50, "v" * 5000) for i in range(40)),
        url="https://appcenter.example/crash",
        links=(Link(label="Open crash group", url="https://appcenter.example/crash"),),
    )
    prepared = pipeline.prepare(channel, n, SETTINGS)
    assert prepared.template_error is None, prepared.template_error
    prepared.fmt.validate(prepared.body)
    assert crosscheck.check(fmt, prepared.body) == []
    assert len(dumps(prepared.body)) <= prepared.fmt.max_bytes
    assert "https://appcenter.example/crash" in json.dumps(prepared.body), "the link survives shrinking"
