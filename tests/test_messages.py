"""What people in the channel see: each defect a person found in the drawn messages, pinned.

Goldens (tests/test_golden.py) record every sample; these tests say what must stay true of them
whatever the templates look like next.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests import bodies, crosscheck
from tests.sourcetools import notification
from tests.test_golden import FORMATS, SETTINGS, notification_of
from translators import pipeline, text
from translators.model import EVENTS, Notification, safe_url
from translators.samples import all_samples

GOLDEN = Path(__file__).resolve().parent / "golden"


def render(n: Notification, fmt: str) -> dict[str, Any]:
    prepared = pipeline.prepare(SETTINGS.channel(fmt), n, SETTINGS)
    assert prepared.template_error is None, prepared.template_error
    assert crosscheck.check(fmt, prepared.body) == []
    return prepared.body


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        node = list(node.values())
    return [s for value in node for s in strings(value)] if isinstance(node, list) else []


def card(body: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = body["attachments"][0]["content"]
    return content


def slack_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = body["attachments"][0]["blocks"]
    return blocks


def rich_texts(body: dict[str, Any], *, details: bool = False) -> list[dict[str, Any]]:
    """Every rich text element (text, link) of a Slack body, in order; ``details``: after the
    first block (title and facts) only."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("text", "link") and "text" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for block in slack_blocks(body)[1 if details else 0 :]:
        if block["type"] == "rich_text":
            walk(block)
    return found


BITRISE = {
    "build_slug": "815697039aa6c07c",
    "build_number": 41,
    "app_slug": "305da28f92b6b419",
    "build_status": 2,
    "build_triggered_workflow": "release_*beta*",
    "git": {
        "provider": "github",
        "src_branch": "fix/*star*_x_",
        "dst_branch": "main",
        "pull_request_id": 7,
        "commit_hash": "4e1d2a9c0ffee",
        "commit_message": (
            "[Approve the release](https://evil.example) <at>Dana</at> *now* {{DATE(2026-01-01T00:00:00Z)}}"
        ),
    },
}
FINISHED = {"Bitrise-Event-Type": "build/finished"}


def release(notes: str, install_link: str = "https://install.appcenter.ms/x?sig=a&se=b") -> Notification:
    return notification(
        "appcenter",
        {
            "app_display_name": "Acme",
            "release_id": "12",
            "short_version": "3.2.0",
            "version": "412",
            "release_notes": notes,
            "install_link": install_link,
            "uploaded_at": "2026-11-30T10:00:00Z",
        },
    )


# -- 1. Teams cards at version 1.4 ------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((GOLDEN / "teams").rglob("*.json")), ids=lambda p: p.stem)
def test_every_teams_golden_is_a_1_4_card_valid_against_the_1_4_schema(path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    assert card(body)["version"] == "1.4"
    assert crosscheck.card_errors(card(body)) == []


def test_the_crosscheck_schema_is_1_4() -> None:
    assert crosscheck.SCHEMA.name == "adaptive-card-1.4.json"
    assert crosscheck.card_errors({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "Table"}]})


# -- 2. Readable at a glance ------------------------------------------------------------------


def test_multi_line_text_keeps_its_lines_in_teams_and_messagecard() -> None:
    n = notification_of(next(s for s in all_samples() if s.id == "applivery/bug-multiline"))
    assert n.details is not None
    for fmt in ("teams", "teams-messagecard"):
        body = render(n, fmt)
        details = next(s for s in strings(body) if "Steps" in s)
        shown = bodies.unescape_markdown(details)
        # Every line of the report starts a line of its own (a blank line or a list item).
        for line in ("Steps:", "1. Add one item to the cart", "2. Apply coupon SPRING24"):
            assert re.search(rf"(^|\n){re.escape(line)}", shown), (fmt, shown)
        assert "\n\n" in details, "Teams and MessageCard need a blank line for a line break"


def test_stack_frames_keep_their_lines_and_a_fixed_width_font() -> None:
    n = notification_of(next(s for s in all_samples() if s.id == "appcenter/crash-with-stack"))
    slack = render(n, "slack")
    pre = slack_blocks(slack)[2]["elements"][0]
    assert pre["type"] == "rich_text_preformatted" and "\n" in pre["elements"][0]["text"]
    teams = render(n, "teams")
    frames = next(b for b in card(teams)["body"] if b.get("fontType") == "Monospace")
    assert frames["text"].count("\n\n") >= 2


def test_teams_titles_are_not_coloured_like_their_band() -> None:
    for path in (GOLDEN / "teams").rglob("*.json"):
        band = card(json.loads(path.read_text(encoding="utf-8")))["body"][0]
        assert band["type"] == "Container" and band.get("style")
        assert all("color" not in item for item in band["items"]), path


MARKDOWN_NOTES = (
    "# Release\n**Fixed** the _login_ crash\n- faster start\n- [ticket](https://jira.example/T-1?a=1&b=2)"
)


def test_markdown_release_notes_are_written_in_each_formats_markup() -> None:
    n = release(MARKDOWN_NOTES)
    slack = render(n, "slack")
    runs = rich_texts(slack, details=True)
    assert {"type": "text", "text": "Release", "style": {"bold": True}} in runs
    assert {"type": "text", "text": "Fixed", "style": {"bold": True}} in runs
    assert {"type": "text", "text": "login", "style": {"italic": True}} in runs
    link = next(r for r in runs if r["type"] == "link")
    assert link == {"type": "link", "url": "https://jira.example/T-1?a=1&b=2", "text": "ticket"}
    assert not any("**" in r["text"] or r["text"].startswith("#") for r in runs), "raw Markdown left"
    lists = [e for b in slack_blocks(slack)[1:] if b["type"] == "rich_text" for e in b["elements"]]
    assert any(e["type"] == "rich_text_list" and e["style"] == "bullet" for e in lists)

    for fmt in ("teams", "teams-messagecard"):
        notes = next(s for s in strings(render(n, fmt)) if "Fixed" in s)
        assert notes.startswith("**Release**\n\n**Fixed** the _login_ crash"), notes
        assert "- faster start\n- [ticket](https://jira.example/T-1?a=1&b=2) (jira.example)" in notes


def test_a_link_in_markdown_shows_where_it_goes() -> None:
    n = release("[Download the fix](https://evil.example/steal)")
    runs = rich_texts(render(n, "slack"), details=True)
    assert [r["text"] for r in runs] == ["Release notes", "Download the fix", " (evil.example)"]


def test_long_free_text_is_clipped_to_what_a_person_reads() -> None:
    n = release("word " * 2000 + "\n" + "\n".join(f"line {i}" for i in range(40)))
    for fmt in FORMATS:
        body = render(n, fmt)
        if fmt == "slack":
            shown = "".join(r["text"] for r in rich_texts(body, details=True)[1:])
        else:
            shown = next(bodies.unescape_markdown(s) for s in strings(body) if "word word" in s)
        assert len(shown) <= text.MAX_CHARS + 1 and shown.endswith("…"), (fmt, len(shown))
    many_lines = release("\n\n".join(f"paragraph {i}" for i in range(30)))
    slack = render(many_lines, "slack")
    assert sum(1 for r in rich_texts(slack) if r["text"].startswith("paragraph")) == text.MAX_LINES
    assert rich_texts(slack, details=True)[-1]["text"].endswith("…")


def test_identifiers_read_literally_in_every_format() -> None:
    n = notification("bitrise", BITRISE, FINISHED)
    slack = render(n, "slack")
    runs = rich_texts(slack)
    branch = runs.index({"type": "text", "text": "Branch  ", "style": {"bold": True}})
    assert runs[branch + 1 : branch + 4] == [
        {"type": "text", "text": "fix/*star*_x_", "style": {"code": True}},
        {"type": "text", "text": " → "},
        {"type": "text", "text": "main", "style": {"code": True}},
    ]
    assert {"type": "text", "text": "release_*beta*", "style": {"code": True}} in runs
    # Free text is rich text too: Slack shows it exactly as committed, formatting characters and all.
    assert any(
        r["text"].startswith(" [Approve the release](https://evil.example) <at>Dana</at> *now*") for r in runs
    )
    fallback = slack["attachments"][0]["fallback"]
    mrkdwn = [t for t in bodies.slack_markup_texts(slack) if t != fallback]
    assert mrkdwn == ["Bitrise"], "the only mrkdwn is ours: the footer"
    for fmt in ("teams", "teams-messagecard"):
        values = [s for s in strings(render(n, fmt)) if "star" in s]
        assert values and all("fix/\\*star\\*\\_x\\_" in v for v in values), values


def test_no_event_name_jargon_in_any_message() -> None:
    for path in GOLDEN.rglob("*.json"):
        shown = path.read_text(encoding="utf-8")
        assert not any(event in shown for event in EVENTS), path


def test_no_fact_repeats_the_title_and_no_fact_is_zero_or_empty() -> None:
    for sample in all_samples():
        n = notification_of(sample)
        for label, value in n.key_facts:
            shown = str(value).strip()
            assert shown and shown != "0", (sample.id, label)
            assert f" {shown} " not in f" {n.title} ", (sample.id, label, shown)
    crash = notification(
        "appcenter", {"id": "1", "name": "x", "reason": "y", "crash_count": 0, "affected_users": 0}
    )
    assert [label for label, _ in crash.key_facts if label in ("Crashes", "Affected users")] == []
    distributed = release("notes")
    assert "Version" not in dict(distributed.key_facts), "the title says the version"


@pytest.mark.parametrize(
    ("sample_id", "color"),
    [("bitrise/build-failed", "#E01E5A"), ("bitrise/build-succeeded", "#2EB67D")],
)
def test_slack_has_a_colour_bar_by_outcome(sample_id: str, color: str) -> None:
    body = render(notification_of(next(s for s in all_samples() if s.id == sample_id)), "slack")
    assert body["attachments"][0]["color"] == color
    assert "text" not in body, "a message text would be shown above the bar, repeating the title"


def test_times_are_shown_in_the_readers_time_zone() -> None:
    n = release("notes")
    slack_footer = slack_blocks(render(n, "slack"))[-1]["elements"][0]["text"]
    assert "<!date^1796032800^{date_short_pretty} at {time}|30 Nov 2026 10:00 UTC>" in slack_footer
    teams_footer = card(render(n, "teams"))["body"][-1]["text"]
    assert "{{DATE(2026-11-30T10:00:00Z, SHORT)}} at {{TIME(2026-11-30T10:00:00Z)}}" in teams_footer
    assert "30 Nov 2026 10:00 UTC" in render(n, "teams-messagecard")["sections"][0]["activitySubtitle"]


# -- 3. Links and markup ----------------------------------------------------------------------


def test_button_urls_are_exactly_the_payload_url() -> None:
    url = "https://install.appcenter.ms/x?sig=a&se=b"
    n = release("notes", install_link=url)
    slack = render(n, "slack")
    buttons = [e for b in slack_blocks(slack) if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["url"] == url
    assert card(render(n, "teams"))["actions"][0]["url"] == url
    assert render(n, "teams-messagecard")["potentialAction"][0]["targets"][0]["uri"] == url
    assert "&amp;" not in json.dumps([render(n, f) for f in FORMATS])


@pytest.mark.parametrize(
    "url",
    [
        "https://",
        "http://",
        "https:///path",
        "https://./x",
        "http://[::1/x",
        "javascript:alert(1)",
        "ftp://x/y",
    ],
)
def test_urls_without_a_host_make_no_button(url: str) -> None:
    assert safe_url(url) is None
    n = release("notes", install_link=url)
    assert n.url is None and n.links == ()
    slack = render(n, "slack")
    assert not [b for b in slack_blocks(slack) if b["type"] == "actions"]
    assert "actions" not in card(render(n, "teams"))
    assert "potentialAction" not in render(n, "teams-messagecard")


def test_payload_text_makes_no_link_mention_formatting_or_date_in_teams_and_messagecard() -> None:
    n = notification("bitrise", BITRISE, FINISHED)
    for fmt in ("teams", "teams-messagecard"):
        body = render(n, fmt)
        commit = next(s for s in strings(body) if "Approve the release" in s)
        assert "[Approve the release](" not in commit and "\\[Approve the release\\]" in commit
        assert "<at>" not in commit and "{{DATE(" not in commit and "*now*" not in commit
        # Yet a person reads exactly what was committed.
        assert "[Approve the release](https://evil.example) <at>Dana</at> *now*" in bodies.unescape_markdown(
            commit
        )
