"""``make docs``: the settings tables of docs/configuration.md, written from the settings model.

They sit between two markers, so that the prose around them stays hand-written; a test
(tests/test_settings.py) fails until they are rewritten after a setting changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from translators import settings

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def write(path: Path) -> None:
    head, rest = path.read_text(encoding="utf-8").split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{settings.documentation()}{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "configuration.md"
    write(target)
    print(f"wrote the settings tables into {target}")
