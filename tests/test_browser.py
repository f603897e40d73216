"""The preview page drawn in a real browser: Microsoft's renderer for Teams, our stand-ins for the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser  # noqa: F401 - the fixture
from tests.localserve import Served, start_serve
from translators import preview, samples
from translators.render import TemplateFailure

FORMATS = ("slack", "teams", "teams-messagecard")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_serve(tmp_path_factory.mktemp("serve"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811 - the fixture above
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    problems: list[str] = []
    opened.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    opened.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    opened.problems = problems
    try:
        yield opened
    finally:
        context.close()


def drawn(page: Any) -> dict[tuple[str, str], dict[str, Any]]:
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    found = page.eval_on_selector_all(
        "figure.message",
        """figures => figures.map(f => ({
            sample: f.dataset.sample, format: f.dataset.format, drawn: f.dataset.drawn,
            warnings: f.dataset.warnings || null, text: f.querySelector('.drawing').innerText,
            html: f.querySelector('.drawing').innerHTML}))""",
    )
    for figure in found:
        # What a person reads: the invisible characters that keep payload text from being read as
        # a DATE() call or a mention (U+2060), or let a long word wrap (U+200B), are not seen.
        figure["text"] = figure["text"].replace("\u2060", "").replace("\u200b", "")
    return {(f["sample"], f["format"]): f for f in found}


def test_every_sample_in_every_format_draws_without_errors_or_warnings(served: Served, page: Any) -> None:
    page.goto(f"{served.base}/preview")
    figures = drawn(page)
    mapped = [s.id + preview.MAPPED_SUFFIX for s in samples.mapped_samples()]
    expected = {(s, f) for s in [*(s.id for s in samples.all_samples()), *mapped] for f in FORMATS}
    assert set(figures) == expected
    not_drawn = {key: f["drawn"] for key, f in figures.items() if f["drawn"] != "ok"}
    assert not_drawn == {}
    warned = {key: f["text"] for key, f in figures.items() if f["format"] == "teams" and f["warnings"] != "0"}
    assert warned == {}, "the Adaptive Cards renderer reported parse or validation problems"
    assert page.problems == []
    for (sample, fmt), figure in figures.items():
        assert figure["text"].strip(), (sample, fmt)
    # The Teams card really is Microsoft's rendering: its own element classes are there.
    assert "ac-adaptiveCard" in figures[("bitrise/build-failed", "teams")]["html"]
    # Mentions are drawn as each client shows them: Teams turns <at>Name</at> with its entity into
    # a highlighted name, Slack a user element into @someone; a connector can only name them.
    failed = "bitrise/build-failed" + preview.MAPPED_SUFFIX
    teams = figures[(failed, "teams")]
    assert '<span class="mention">Dana</span>' in teams["html"] and "<at>" not in teams["text"]
    assert "Acme iOS" in teams["text"] and "7m 27s" in teams["text"]
    # Every format reads "cc @Dana, @mobile-oncall": each person and group, apart.
    for fmt in FORMATS:
        assert "cc @Dana, @mobile-oncall" in figures[(failed, fmt)]["text"], fmt


def test_multi_line_text_keeps_its_lines_in_every_format(served: Served, page: Any) -> None:
    page.goto(f"{served.base}/preview")
    figures = drawn(page)
    for fmt in FORMATS:
        lines = [line.strip() for line in figures[("applivery/bug-multiline", fmt)]["text"].splitlines()]
        for expected in ("Add one item to the cart", "Apply coupon SPRING24", "Tap Pay -> app closes"):
            assert any(line.rstrip("…").endswith(expected) for line in lines), (fmt, expected, lines)
        steps = next(i for i, line in enumerate(lines) if line.startswith("Steps"))
        assert not lines[steps].endswith("cart"), (fmt, "the steps ran together with the heading")
        crash = [line.strip() for line in figures[("appcenter/crash-with-stack", fmt)]["text"].splitlines()]
        # The location once, then the frames below it, each a line of its own.
        assert crash.count("MainActivity.onCreate (MainActivity.kt:88)") == 1, (fmt, crash)
        assert "Activity.performCreate (Activity.java:8051)" in crash, (fmt, crash)
        assert "Instrumentation.callActivityOnCreate (Instrumentation.java:1329)" in crash, (fmt, crash)


HOSTILE = (
    "fix/*star*_x_ <!channel> <@U999> <at>Dana</at> {{DATE(2026-01-01T00:00:00Z, SHORT)}} "
    "[Approve the release](https://evil.example) <b>bold</b> &amp;"
)


def test_a_hostile_payload_pasted_into_the_form_shows_its_text_literally(served: Served, page: Any) -> None:
    payload = {
        "build_slug": "815697039aa6c07c",
        "build_number": 41,
        "app_slug": "305da28f92b6b419",
        "build_status": 2,
        # An app without a name is led by its workflow: the heading carries all of it, unclipped.
        "build_triggered_workflow": HOSTILE,
        "git": {
            "provider": "github",
            "src_branch": "fix/*star*_x_",
            "commit_hash": "4e1d2a9c0ffee",
            "commit_message": HOSTILE,
        },
    }
    page.goto(f"{served.base}/preview")
    page.click("details.paste summary")
    page.select_option("select[name=source]", "bitrise")
    page.fill("textarea[name=headers]", "Bitrise-Event-Type: build/finished")
    page.fill("textarea[name=payload]", json.dumps(payload))
    page.click("details.paste button[type=submit]")
    figures = drawn(page)
    for fmt in FORMATS:
        figure = figures[("pasted", fmt)]
        assert figure["drawn"] == "ok", fmt
        text = " ".join(figure["text"].split())
        assert "fix/*star*_x_" in text, (fmt, text)
        assert HOSTILE in text, (fmt, text)
        html = figure["html"]
        assert 'href="https://evil.example"' not in html, fmt
        assert "slack-mention" not in html, fmt
        assert "<at>" not in html and "<b>bold</b>" not in html, fmt
    assert page.problems == []


#: Width of the page on a phone; each message gets about 330 px of it, as in a chat app.
PHONE = {"width": 375, "height": 812}

#: For every drawing: elements sticking out of it, text cut short inside its box (a button's
#: ellipsis), and fact labels that take more than one line. Labels are what each format draws a
#: fact's name with: Teams' runs ending in an en space, Slack's bold runs before two spaces, the
#: MessageCard fact table's header cells.
GEOMETRY = """figures => figures.map(f => {
    const d = f.querySelector('.drawing');
    const box = d.getBoundingClientRect();
    const name = e => (e.className || e.tagName) + ': ' + (e.textContent || '').trim().slice(0, 40);
    const all = Array.from(d.querySelectorAll('*'));
    const outside = all.filter(e => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && (r.right > box.right + 1 || r.left < box.left - 1);
    }).map(name);
    const cut = all.filter(e => e.scrollWidth > e.clientWidth + 1
        && getComputedStyle(e).overflowX !== 'visible').map(name);
    const labels = all.filter(e =>
        (e.classList.contains('ac-textRun') && e.textContent.endsWith('\u2002'))
        || (e.tagName === 'B' && e.textContent.endsWith('  '))
        || (e.tagName === 'TH' && e.closest('.mc-facts')));
    const lines = e => {
        const range = document.createRange();
        range.selectNodeContents(e);
        const rects = Array.from(range.getClientRects()).filter(r => r.width > 1);
        return new Set(rects.map(r => Math.round(r.top))).size;
    };
    const wrapped = labels.filter(e => lines(e) > 1).map(name);
    const buttons = d.querySelectorAll('.ac-pushButton, .slack-button, .mc-button').length;
    return {key: f.dataset.sample + ' ' + f.dataset.format, format: f.dataset.format,
            width: box.width, outside, cut, labels: labels.length, wrapped, buttons};
})"""


def test_every_message_fits_a_phone(served: Served, browser: Any) -> None:  # noqa: F811
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    try:
        page = context.new_page()
        page.goto(f"{served.base}/preview")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        measured = page.eval_on_selector_all("figure.message", GEOMETRY)
    finally:
        context.close()
    assert len(measured) >= 3 * len(samples.all_samples())
    assert all(300 <= m["width"] <= 360 for m in measured), {m["key"]: m["width"] for m in measured}
    assert {m["key"]: m["outside"] for m in measured if m["outside"]} == {}, "cut at the right edge"
    assert {m["key"]: m["cut"] for m in measured if m["cut"]} == {}, "text cut short in its box"
    assert {m["key"]: m["wrapped"] for m in measured if m["wrapped"]} == {}, "a label wraps"
    assert {m["key"]: m["buttons"] for m in measured if m["buttons"] > 2} == {}, "at most two buttons"
    labelled = [m for m in measured if m["labels"]]
    assert {m["format"] for m in labelled} == set(FORMATS), "labels found in every format"


def test_payload_text_in_teams_is_literal_in_the_card_and_on_screen(served: Served, page: Any) -> None:
    """A version, a branch full of Markdown characters and a Jinja expression read exactly as
    written, in the card's JSON (TextRuns, no backslash) and as Microsoft's renderer draws it."""
    branch = "fix/*star*_under_~tilde~"
    subject = "Render {{ 7*7 }} as typed & <b>not</b> bold"
    bitrise = {
        "build_slug": "815697039aa6c07c",
        "build_number": 41,
        "app_slug": "305da28f92b6b419",
        "build_status": 2,
        "build_triggered_workflow": "primary",
        "git": {
            "provider": "github",
            "src_branch": branch,
            "commit_hash": "4e1d2a9c0ffee",
            "commit_message": subject,
        },
    }
    release = {
        "app_name": "acme",
        "app_display_name": "Acme",
        "release_id": "12",
        "short_version": "3.2.0",
        "version": "412",
        "release_notes": "Version 3.2.0 fixes {{ 7*7 }}",
        "install_link": "https://install.appcenter.ms/x",
        "uploaded_at": "2026-11-30T10:00:00Z",
    }
    for source, headers, payload, expected in (
        ("bitrise", "Bitrise-Event-Type: build/finished", bitrise, (branch, subject)),
        ("appcenter", "", release, ("3.2.0", "{{ 7*7 }}")),
    ):
        page.goto(f"{served.base}/preview")
        page.click("details.paste summary")
        page.select_option("select[name=source]", source)
        page.fill("textarea[name=headers]", headers)
        page.fill("textarea[name=payload]", json.dumps(payload))
        page.click("details.paste button[type=submit]")
        figure = drawn(page)[("pasted", "teams")]
        assert figure["drawn"] == "ok", source
        card = page.eval_on_selector(
            'figure[data-sample="pasted"][data-format="teams"] script.body', "s => s.textContent"
        )
        runs = [r["text"] for r in _runs(json.loads(card))]
        shown = " ".join(figure["text"].split())
        for text in expected:
            assert any(text in run for run in runs), (source, text, runs)
            assert text in shown, (source, text, shown)
        assert not any("\\" in run for run in runs), "no backslash escape in any payload text"
    assert page.problems == []


def _runs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = [node] if node.get("type") == "TextRun" else []
        return own + [r for value in node.values() for r in _runs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _runs(value)]
    return []


def test_inbox_in_a_browser_draws_what_was_delivered(served: Served, page: Any) -> None:
    sample = samples.get("appcenter/distribute")
    answer = served.post("/api/appcenter/slack+teams+teams-messagecard", sample.body())
    assert answer.status == 200, answer.raw
    page.goto(f"{served.base}/inbox")
    figures = drawn(page)
    newest = sorted(figures, key=lambda key: -int(key[0].split("/")[1]))[:3]
    assert {fmt for _, fmt in newest} == set(FORMATS)
    for key in newest:
        assert figures[key]["drawn"] == "ok" and "Release 1.7.0 (74) published" in figures[key]["text"]
    assert page.problems == []


def test_the_screenshot_tool_writes_pictures(served: Served, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    from tools import screenshots

    written = screenshots.capture(browser, served.base, tmp_path, screenshots.PICKS[:2])
    assert [p.name for p in written] == ["slack-bitrise-build-failed.png", "teams-bitrise-build-failed.png"]
    written.append(screenshots.capture_before_after(browser, tmp_path))
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 2_000
    html = screenshots.before_after_html()
    assert html.count("Build #41 started") == 1 and "replied to a thread" in html and "@Dana" in html


def test_a_long_template_path_in_the_error_box_wraps_instead_of_being_cut(browser: Any) -> None:  # noqa: F811
    """At a phone's width the error box breaks a path with no spaces anywhere rather than cut it."""
    long_path = "custom-templates/" + "averylongchannelfoldername/" * 6 + "slack/bitrise/build.failed.json.j2"
    failure = TemplateFailure("slack/bitrise/build.failed.json.j2", "No filter named 'x'", 48, long_path)
    drawn = preview.Drawn("bitrise/build-failed", "slack", failure=failure)
    assert drawn.error == f"{long_path}, line 48: No filter named 'x'"
    css = (Path(preview.__file__).parent / "static" / "preview.css").read_text()
    figure = preview._figure(drawn)
    page_html = (
        f"<html><head><style>{css}</style></head><body><div class='cells'>{figure}</div></body></html>"
    )
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=1)
    try:
        page = context.new_page()
        page.set_content(page_html)
        sizes = page.eval_on_selector(
            ".template-error",
            "e => ({scroll: e.scrollWidth, client: e.clientWidth, right: e.getBoundingClientRect().right})",
        )
    finally:
        context.close()
    assert sizes["scroll"] <= sizes["client"] + 1 and sizes["right"] <= 375, sizes
