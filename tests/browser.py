"""A real browser for tests: Playwright driving Debian's chromium (no browser download).

``make test`` installs Debian's ``chromium`` with apt-get when it runs as root and the browser is
missing, as it installs Azurite with npm. Without a browser (or without the npm packages the
preview draws Teams cards with) the browser tests skip with the reason, except where ``CI`` is
set: there they fail, because CI must draw every message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from translators import preview

#: Flags for a headless browser on a machine with no network and no desktop: no sandbox (root in
#: a container), no GPU, and none of the background connections a closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _unavailable(reason: str) -> None:
    if "CI" in os.environ:
        pytest.fail(f"{reason}: CI must run the browser tests, never skip them")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        _unavailable("Debian's chromium is not installed (make test installs it when run as root)")
    if not preview.teams_renderer_installed():
        _unavailable("the adaptivecards npm packages are not installed; run `make node` (npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
