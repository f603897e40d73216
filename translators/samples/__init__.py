"""Realistic payloads, one or more per source x event, used by the CLI, the tests and the demo.

Each source has a folder of raw request bodies (``*.json``) and a ``headers.json`` mapping a
file name to the headers its platform sends with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sample:
    source: str
    name: str
    path: Path
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.source}/{self.name}"

    def body(self) -> bytes:
        return self.path.read_bytes()


@cache
def all_samples() -> tuple[Sample, ...]:
    found = []
    for folder in sorted(p for p in SAMPLES_DIR.iterdir() if p.is_dir() and not p.name.startswith("_")):
        headers_file = folder / "headers.json"
        headers = json.loads(headers_file.read_text()) if headers_file.exists() else {}
        for path in sorted(folder.glob("*.json")):
            if path.name != "headers.json":
                found.append(Sample(folder.name, path.stem, path, headers.get(path.name, {})))
    return tuple(found)


def get(sample_id: str) -> Sample:
    for sample in all_samples():
        if sample.id == sample_id:
            return sample
    raise KeyError(sample_id)
