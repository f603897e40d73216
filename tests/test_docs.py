"""The README and docs/: every relative link and picture resolves, anchors included, and the README
stays a few screens long (the rest belongs under docs/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
README_LIMIT = 15_000


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)}


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)  # code is not a link
    return [next(g for g in m.groups() if g) for m in LINK.finditer(text)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_docs_are_linked_from_the_readme() -> None:
    linked = {
        (ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md") if not t.startswith("http")
    }
    for doc in DOCS:
        if doc.name != "README.md" or doc.parent != ROOT:
            assert doc.resolve() in linked, f"{doc.relative_to(ROOT)} is not linked from the README"


def test_the_readme_fits_on_a_few_screens() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail to docs/"


def test_the_quick_start_is_the_two_make_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.DOTALL)
    assert block is not None
    commands = [line.split("#", 1)[0].strip() for line in block[1].splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_link_checking_catches_a_broken_link(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    (tmp_path / "y.md").write_text("# Real heading\n")
    doc.write_text("[a](y.md#real-heading) [b](y.md#missing) [c](nowhere.md) ![d](pic.png) [e](https://x)\n")
    assert links(doc) == ["y.md#real-heading", "y.md#missing", "nowhere.md", "pic.png", "https://x"]
    assert anchors(tmp_path / "y.md") == {"real-heading"}
    assert slug("Memory (the state store)") == "memory-the-state-store"


def test_every_event_name_is_explained() -> None:
    from translators.model import EVENTS

    text = (ROOT / "docs" / "platforms.md").read_text()
    table = text.split("### Event names", 1)[1]
    named = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", table))
    assert set(EVENTS) <= named, f"not in docs/platforms.md#event-names: {sorted(set(EVENTS) - named)}"


# -- the docs say what the code does (issue 26) --------------------------------------------------


def _flat(path: Path) -> str:
    return " ".join((ROOT / path).read_text(encoding="utf-8").split())


def test_answers_say_a_long_retry_after_is_queued_not_failed() -> None:
    text = _flat(Path("docs/answers.md"))
    assert "reported failed" not in text
    assert "the channel is `queued` (200) with `retry_after`" in text
    # The 502 row is about refusals for good, which become dead letters.
    row = next(line for line in (ROOT / "docs/answers.md").read_text().splitlines() if "| 502 " in line)
    assert "dead_letter" in row and "after retries" not in row


def test_local_md_gives_the_stop_grace_the_server_uses() -> None:
    from translators import server
    from translators.settings import AppSettings

    deadline = AppSettings().delivery_deadline_seconds
    text = _flat(Path("docs/local.md"))
    assert f"delivery deadline plus {server.STOP_SECONDS:g} s" in text
    assert f"{deadline:g} s by default, so {deadline + server.STOP_SECONDS:g} s" in text
    assert "(for up to 5 s)" not in text


def test_the_server_calls_its_dependencies_what_requirements_txt_makes_them() -> None:
    requirements = (ROOT / "requirements.txt").read_text()
    for needed in ("waitress", "gunicorn", "werkzeug"):
        assert re.search(rf"^{needed}", requirements, re.M), needed
    docstring = " ".join((ROOT / "translators/server.py").read_text().split('"""')[1].split())
    assert "development dependencies" not in docstring and "requirements.txt" in docstring
