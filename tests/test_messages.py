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
from translators import pipeline
from translators.model import EVENTS, MAX_FRAMES, NOTES_CHARS, NOTES_LINES, Notification, safe_url
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


def teams_lines(body: dict[str, Any]) -> list[str]:
    """The visible text of every RichTextBlock of a Teams card (payload text), one per block."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "RichTextBlock":
                # As read: zero-width spaces (where a long word may wrap) are not seen.
                found.append("".join(run["text"] for run in node["inlines"]).replace("\u200b", ""))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card(body)["body"])
    return found


def teams_runs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for b in _blocks_of(card(body)["body"]) for run in b["inlines"]]


def _blocks_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "RichTextBlock":
            out.append(item)
        out.extend(_blocks_of(item.get("items", [])))
    return out


def teams_markdown(body: dict[str, Any]) -> list[str]:
    """The texts Teams reads as Markdown: every TextBlock's text and every fact's title and value."""
    return [b["text"] for b in _all(card(body)["body"]) if b.get("type") == "TextBlock"]


def _all(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        out.append(item)
        out.extend(_all(item.get("items", [])))
    return out


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
_BUG: dict[str, Any] = json.loads(next(s for s in all_samples() if s.id == "applivery/bug-multiline").body())


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
    # Every line of the report is a line of its own, exactly as typed.
    lines = teams_lines(render(n, "teams"))
    steps = lines.index("Steps:")
    assert lines[steps + 1 : steps + 3] == ["1. Add one item to the cart", "2. Apply coupon SPRING24"]
    body = render(n, "teams-messagecard")
    details = next(s for s in strings(body) if "Steps" in s)
    shown = bodies.unescape_markdown(details)
    for line in ("Steps:", "1. Add one item to the cart", "2. Apply coupon SPRING24"):
        assert re.search(rf"(^|\n){re.escape(line)}", shown), shown
    assert "\n\n" in details, "MessageCard needs a blank line for a line break"


def test_a_sentence_after_a_list_stays_a_paragraph_of_its_own() -> None:
    report = "Steps:\n1. Open the app\n2. Tap Pay\nIt closes every time."
    n = notification("applivery", {**_BUG, "report": {**_BUG["report"], "message": report}})
    lines = teams_lines(render(n, "teams"))
    assert "2. Tap Pay" in lines and "It closes every time." in lines, lines
    slack = render(n, "slack")
    lists = [e for b in slack_blocks(slack) if b["type"] == "rich_text" for e in b["elements"]]
    ordered = next(e for e in lists if e["type"] == "rich_text_list")
    assert [i["elements"][0]["text"] for i in ordered["elements"]] == ["Open the app", "Tap Pay"]
    assert any(
        e["type"] == "rich_text_section" and e["elements"][0]["text"] == "It closes every time."
        for e in lists
    )


def test_a_crash_leads_with_its_exception_then_one_location_then_at_most_three_frames() -> None:
    n = notification_of(next(s for s in all_samples() if s.id == "appcenter/crash-with-stack"))
    assert n.error and n.error_location and n.emoji == "💥"
    assert 1 <= len(n.frames) <= MAX_FRAMES and n.error_location not in n.frames[0]
    slack = render(n, "slack")
    first = slack_blocks(slack)[0]["elements"]
    assert first[0]["elements"][0]["text"].startswith("💥 ")
    crash = next(e for e in first if e["type"] == "rich_text_section" and e["elements"][0]["text"] == n.error)
    assert crash["elements"][0]["style"] == {"bold": True}
    assert crash["elements"][-1] == {"type": "text", "text": n.error_location, "style": {"code": True}}
    pre = next(e for e in first if e["type"] == "rich_text_preformatted")
    assert pre["elements"][0]["text"].split("\n") == list(n.frames)
    teams = render(n, "teams")
    lines = teams_lines(teams)
    assert lines.index(n.error) < lines.index(n.error_location) < lines.index(n.frames[0])
    assert lines.count(n.error_location) == 1, "the location is not repeated as the first frame"
    frames = [b for b in _blocks_of(card(teams)["body"]) if b["inlines"][0].get("fontType") == "Monospace"]
    shown = [b["inlines"][0]["text"].replace("\u200b", "") for b in frames]
    assert shown == [n.error_location, *n.frames]
    assert all(b["spacing"] == "None" for b in frames[2:]), "frames are single-spaced"
    legacy = render(n, "teams-messagecard")
    assert any(f"`{n.frames[0]}`" in s for s in strings(legacy)), "frames in a fixed-width font"


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

    teams = render(n, "teams")
    runs = teams_runs(teams)
    assert {"type": "TextRun", "text": "Release", "weight": "Bolder"} in runs
    assert {"type": "TextRun", "text": "Fixed", "weight": "Bolder"} in runs
    assert {"type": "TextRun", "text": "login", "italic": True} in runs
    ticket = next(r for r in runs if r["text"] == "ticket")
    assert ticket["selectAction"] == {"type": "Action.OpenUrl", "url": "https://jira.example/T-1?a=1&b=2"}
    lines = teams_lines(teams)
    assert "• faster start" in lines and "• ticket (jira.example)" in lines
    notes = next(s for s in strings(render(n, "teams-messagecard")) if "Fixed" in s)
    assert notes.startswith("**Release**\n\n**Fixed** the _login_ crash"), notes
    assert "- faster start\n- [ticket](https://jira.example/T-1?a=1&b=2) (jira.example)" in notes


def test_a_link_in_markdown_shows_where_it_goes() -> None:
    n = release("[Download the fix](https://evil.example/steal)")
    runs = rich_texts(render(n, "slack"), details=True)
    assert [r["text"] for r in runs] == ["Download the fix", " (evil.example)"]


def test_long_free_text_is_cut_at_a_word_with_a_link_to_the_rest() -> None:
    n = release("word " * 2000 + "\n" + "\n".join(f"line {i}" for i in range(40)))
    for fmt in FORMATS:
        body = render(n, fmt)
        if fmt == "slack":
            runs = rich_texts(body, details=True)
            shown = "".join(r["text"] for r in runs[:-1])
            assert runs[-1] == {"type": "link", "url": n.url, "text": "Read the full notes"}
        elif fmt == "teams":
            lines = teams_lines(body)
            shown = next(line for line in lines if "word word" in line)
            more = next(r for r in teams_runs(body) if r["text"] == "Read the full notes")
            assert more["selectAction"]["url"] == n.url
        else:
            shown = next(bodies.unescape_markdown(s) for s in strings(body) if "word word" in s)
            assert any("[Read the full notes](" in s for s in strings(body))
        assert len(shown) <= NOTES_CHARS + 1 and shown.endswith("word…"), (fmt, len(shown))
    many_lines = release("\n\n".join(f"paragraph {i}" for i in range(30)))
    slack = render(many_lines, "slack")
    assert sum(1 for r in rich_texts(slack) if r["text"].startswith("paragraph")) == NOTES_LINES
    teams = teams_lines(render(many_lines, "teams"))
    assert sum(1 for line in teams if line.startswith("paragraph")) == NOTES_LINES
    short = release("Fixes the login crash.")
    assert short.more is None, "nothing left out, no link"


def test_identifiers_read_literally_in_every_format() -> None:
    n = notification("bitrise", BITRISE, FINISHED)
    slack = render(n, "slack")
    assert bodies.title("slack", slack).endswith("on fix/*star*_x_")
    runs = rich_texts(slack)
    pr = runs.index({"type": "text", "text": "PR  ", "style": {"bold": True}})
    assert runs[pr + 1 : pr + 4] == [
        {"type": "text", "text": "#7"},
        {"type": "text", "text": " → "},
        {"type": "text", "text": "main", "style": {"code": True}},
    ]
    # Free text is rich text too: Slack shows it exactly as committed, formatting characters and all.
    assert any(
        r["text"].startswith(" [Approve the release](https://evil.example) <at>Dana</at>") for r in runs
    )
    fallback = slack["attachments"][0]["fallback"]
    mrkdwn = [t for t in bodies.slack_markup_texts(slack) if t != fallback]
    # The only mrkdwn is the footer: ours, and the app's slug (escaped) where no name is known.
    assert mrkdwn == ["Bitrise · app 305da28f92b6b419"]
    teams = render(n, "teams")
    assert bodies.title("teams", teams).endswith("on fix/*star*_x_"), "a TextRun: exactly as written"
    assert not any("star" in t for t in teams_markdown(teams)), "no payload text where Markdown is read"
    legacy = [s for s in strings(render(n, "teams-messagecard")) if "star" in s]
    assert legacy and all("fix/\\*star\\*\\_x\\_" in v for v in legacy), legacy


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
    teams = render(n, "teams")
    subject = next(r for r in teams_runs(teams) if "Approve the release" in r["text"])
    # A TextRun: no Markdown, no link; only a word joiner keeps <at> and DATE() from being read.
    assert subject["text"].startswith(
        " [Approve the release](https://evil.example) <\u2060at>Dana<\u2060/at>"
    )
    assert "selectAction" not in subject
    assert not any("Approve" in t for t in teams_markdown(teams))
    for fmt in ("teams-messagecard",):
        body = render(n, fmt)
        commit = next(s for s in strings(body) if "Approve the release" in s)
        assert "[Approve the release](" not in commit and "\\[Approve the release\\]" in commit
        assert "<at>" not in commit and "{{DATE(" not in commit and "*now*" not in commit
        # Yet a person reads exactly what was committed.
        assert "[Approve the release](https://evil.example) <at>Dana</at>" in bodies.unescape_markdown(commit)
