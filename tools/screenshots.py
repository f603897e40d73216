"""``make screenshots``: pictures of representative messages, drawn by the preview page, for docs/.

Runs the local server in this process, opens ``/preview`` in Debian's chromium through Playwright
(the same browser the tests use) and saves each chosen message's drawing as a PNG. Emoji need a
colour emoji font (Debian's ``fonts-noto-color-emoji``; ``make screenshots`` installs it as root).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from translators.preview import MAPPED_SUFFIX as MAPPED

ROOT = Path(__file__).resolve().parent.parent
#: (sample, format) pairs that show what each format looks like: a failure, as a team with app
#: names, mentions and a Bitrise token sees it (the preview's "mapped" drawing); a crash; a release
#: whose long notes are cut with a link to the rest; and a tester's report whose lines matter.
PICKS: list[tuple[str, str]] = [
    (sample, fmt)
    for sample in (
        "bitrise/build-failed" + MAPPED,
        "appcenter/crash-with-stack",
        "appcenter/distribute-long-notes",
        "applivery/bug-multiline",
    )
    for fmt in ("slack", "teams", "teams-messagecard")
]
#: Pictures are drawn at a phone's width: what a chat app gives a message there is the harder test.
PHONE_VIEWPORT = {"width": 375, "height": 812}


def file_name(sample: str, fmt: str) -> str:
    return f"{fmt}-{sample.removesuffix(MAPPED).replace('/', '-')}.png"


def capture(browser: Any, base: str, out: Path, picks: Sequence[tuple[str, str]] = PICKS) -> list[Path]:
    """Screenshot each picked message of ``base``/preview into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=PHONE_VIEWPORT, device_scale_factor=2)
    try:
        page = context.new_page()
        page.goto(f"{base}/preview")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        written = []
        for sample, fmt in picks:
            drawing = page.query_selector(f'figure[data-sample="{sample}"][data-format="{fmt}"] .drawing')
            if drawing is None:
                raise SystemExit(f"no drawing of {sample} in {fmt} on the preview page")
            path = out / file_name(sample, fmt)
            drawing.screenshot(path=str(path))
            written.append(path)
        return written
    finally:
        context.close()


#: The picture of a Slack app channel against an incoming webhook, for the README.
BEFORE_AFTER = "slack-app-before-after.png"


def before_after_html() -> str:
    """Bitrise build #41 started, then failed: two webhook messages, or one Slack app message
    updated to its outcome with the broadcast reply that notifies (the preview's Slack drawing)."""
    import json

    from translators import pipeline, preview, samples, settings, sources
    from translators.destinations import slackapp
    from translators.model import Notification
    from translators.preview import slack_html

    example = settings.load(samples.mapped_env(["slack"]))
    channel = example.channel("slack")
    failed_sample = samples.get("bitrise/build-failed")
    failed = samples.notification(failed_sample, example)
    source = sources.get("bitrise")
    assert source is not None
    started = source.translate(
        {**json.loads(failed_sample.body()), "build_status": 0}, {"bitrise-event-type": "build/triggered"}
    )
    assert isinstance(started, Notification) and isinstance(failed, Notification)
    started_body = pipeline.prepare(channel, pipeline.named(started, example), example).body
    failed_body = pipeline.prepare(channel, failed, example).body
    names = preview.slack_names(example)
    # The broadcast reply, as the Slack app channel sends it (its text made from the notification).
    reply = slackapp.message_text(pipeline.for_channel(channel, failed, example))
    css = (ROOT / "translators" / "preview" / "static" / "preview.css").read_text()

    def message(body: dict[str, object], time: str, note: str = "") -> str:
        meta = f'<div class="ba-meta"><b>Builds bot</b> {time} {note}</div>'
        return f'<div class="ba-msg">{meta}{slack_html.draw(body, names)}</div>'

    style = (
        "body{background:#fff} #before-after{display:grid;grid-template-columns:1fr 1fr;gap:28px;"
        "padding:20px;width:1100px} .ba-col h2{font-size:15px;margin:0 0 10px} .ba-msg{margin:0 0 14px}"
        " .ba-meta{font-size:13px;color:#616061;margin-bottom:2px} .ba-meta i{color:#616061}"
        " .ba-thread{font-size:13px;color:#1264a3;margin:-6px 0 14px 16px}"
        " .ba-reply{border-top:1px solid #eee;padding-top:10px}"
    )
    return "".join(
        [
            f"<!doctype html><html><head><meta charset='utf-8'><style>{css}{style}</style></head><body>",
            "<div id='before-after'><div class='ba-col'><h2>Incoming webhook: a message per event</h2>",
            message(started_body, "9:12 AM"),
            message(failed_body, "9:19 AM"),
            "</div><div class='ba-col'><h2>Slack app channel: one message per build, updated</h2>",
            message(failed_body, "9:12 AM", "<i>(edited)</i>"),
            "<div class='ba-thread'>1 reply</div><div class='ba-reply'>",
            message({"text": reply}, "9:19 AM", "<i>replied to a thread: Build #41 failed</i>"),
            "</div></div></div></body></html>",
        ]
    )


def capture_before_after(browser: Any, out: Path) -> Path:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=2)
    try:
        page = context.new_page()
        page.set_content(before_after_html())
        path = out / BEFORE_AFTER
        page.query_selector("#before-after").screenshot(path=str(path))
        return path
    finally:
        context.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__)
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "images"), help="folder for the PNGs")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM_ARGS, chromium_path
    from translators import host, preview, server

    executable = chromium_path()
    if executable is None:
        print(
            "chromium not found: install Debian's chromium (make screenshots does so as root)",
            file=sys.stderr,
        )
        return 2
    if not preview.teams_renderer_installed():
        print("the adaptivecards npm packages are missing: run `make node`", file=sys.stderr)
        return 2
    app, _ = server.create_app(server.load_function_app().get_functions())
    sock = host.listen("127.0.0.1", 0)
    httpd = host.serve_in_thread(app, sock)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                written = capture(browser, f"http://127.0.0.1:{sock.getsockname()[1]}", Path(args.out))
                written.append(capture_before_after(browser, Path(args.out)))
                for path in written:
                    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            finally:
                browser.close()
    finally:
        host.stop_in_thread(httpd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
