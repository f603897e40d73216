"""``make screenshots``: pictures of representative messages, drawn by the preview page, for docs/.

Runs the local server in this process, opens ``/preview`` in Debian's chromium through Playwright
(the same browser the tests use) and saves each chosen message's drawing as a PNG. Emoji need a
colour emoji font (Debian's ``fonts-noto-color-emoji``; ``make screenshots`` installs it as root).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from translators.preview import MAPPED_SUFFIX as MAPPED

ROOT = Path(__file__).resolve().parent.parent
#: (sample, format) pairs that show what each format looks like: a failure with facts, as a team
#: with app names, mentions and a Bitrise token sees it (the preview's "mapped" drawing); a release
#: with Markdown notes; and tester feedback whose lines matter.
PICKS: list[tuple[str, str]] = [
    (sample, fmt)
    for sample in ("bitrise/build-failed" + MAPPED, "appcenter/distribute", "applivery/bug-multiline")
    for fmt in ("slack", "teams", "teams-messagecard")
]


def file_name(sample: str, fmt: str) -> str:
    return f"{fmt}-{sample.removesuffix(MAPPED).replace('/', '-')}.png"


def capture(browser: Any, base: str, out: Path, picks: Sequence[tuple[str, str]] = PICKS) -> list[Path]:
    """Screenshot each picked message of ``base``/preview into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, device_scale_factor=2)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__)
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "images"), help="folder for the PNGs")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM_ARGS, chromium_path
    from translators import preview, server

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
    httpd, _, _ = server.create_server("127.0.0.1", 0, server.load_function_app().get_functions())
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                for path in capture(browser, f"http://127.0.0.1:{httpd.server_port}", Path(args.out)):
                    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            finally:
                browser.close()
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
