"""Realistic payloads, one or more per source x event, used by the CLI, the tests and the demo.

Each source has a folder of raw request bodies (``*.json``) and a ``headers.json`` mapping a
file name to the headers its platform sends with it; ``api/`` beside them holds what the
platform's API answers about the same event, where a source asks one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translators.errors import Ignored

if TYPE_CHECKING:
    from translators.model import Notification
    from translators.settings import Settings

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

    def api_answers(self) -> dict[str, Any] | None:
        """Recorded answers of the platform's API for this event (``<source>/api/<name>.json``),
        for sources that complete their messages from one (Bitrise): tests, goldens, preview."""
        path = self.path.parent / "api" / self.path.name
        if not path.exists():
            return None
        loaded = json.loads(path.read_text())
        return loaded if isinstance(loaded, dict) else None


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


#: Example settings for the "mapped" variants of some samples (golden files, preview).
MAPPED_FILE = SAMPLES_DIR / "mapped.json"


@cache
def _mapped() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MAPPED_FILE.read_text())
    return loaded


def mapped_env(formats: Sequence[str]) -> dict[str, str]:
    """Settings with the example APP_NAMES and MENTIONS, and one channel per format named after it
    (delivering nowhere) with that format's example NOTIFY."""
    data = _mapped()
    env = {"APP_NAMES": json.dumps(data["APP_NAMES"]), "MENTIONS": json.dumps(data["MENTIONS"])}
    for fmt in formats:
        prefix = "CHANNEL_" + fmt.upper().replace("-", "_")
        env |= {f"{prefix}_URL": "http://127.0.0.1:9/", f"{prefix}_FORMAT": fmt}
        if data["NOTIFY"].get(fmt):
            env[f"{prefix}_NOTIFY"] = data["NOTIFY"][fmt]
    return env


def notification(sample: Sample, settings: Settings | None = None) -> Notification | Ignored:
    """The sample translated by its source. With ``settings``, also what the pipeline adds before
    rendering: details from the recorded API answers (where the source asks an API) and app names."""
    from translators import pipeline, sources

    source = sources.get(sample.source)
    assert source is not None, sample.source
    n = source.translate(json.loads(sample.body()), {k.lower(): v for k, v in sample.headers.items()})
    if settings is None or isinstance(n, Ignored):
        return n
    enricher = sources.enricher(source)
    answers = sample.api_answers()
    if enricher is not None and answers is not None:
        n = enricher.replay(n, answers)
    return pipeline.named(n, settings)


def mapped_samples() -> tuple[Sample, ...]:
    """The samples drawn a second time with the example settings, and API answers where recorded."""
    return tuple(get(sample_id) for sample_id in _mapped()["samples"])
