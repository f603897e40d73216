"""A loopback stand-in for Bitrise's API, answering from the recorded answers in
``translators/samples/bitrise/api/``, or failing as told (401, 404, 429, slow, malformed)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakeapi import Failure, FakeApi
from translators.samples import all_samples

TOKEN = "bitrise-test-token-7f3a9c2e51d84b06"
__all__ = ["TOKEN", "Failure", "FakeBitrise"]


class FakeBitrise(FakeApi):
    def __init__(self) -> None:
        self.apps: dict[str, Any] = {}
        self.builds: dict[tuple[str, str], Any] = {}
        self.artifacts: dict[tuple[str, str], list[Any]] = {}
        for sample in all_samples():
            answers = sample.api_answers()
            if sample.source != "bitrise" or answers is None:
                continue
            body = json.loads(sample.body())
            app, build = body["app_slug"], body["build_slug"]
            self.apps[app] = answers["app"]
            self.builds[(app, build)] = answers["build"]
            self.artifacts[(app, build)] = answers.get("artifacts", [])
        super().__init__()

    def route(self, path: str, auth: str | None) -> tuple[int, bytes, dict[str, str]]:
        if auth != TOKEN:
            return 401, b'{"message": "Unauthorized"}', {}
        parts = path.split("?", 1)[0].strip("/").split("/")
        if parts[:2] != ["v0.1", "apps"] or len(parts) < 3:
            return 404, b'{"message": "Not Found"}', {}
        app = parts[2]
        found: Any = None
        if len(parts) == 3:
            found = self.apps.get(app)
        elif len(parts) == 5 and parts[3] == "builds":
            found = self.builds.get((app, parts[4]))
        elif len(parts) == 6 and parts[5] == "artifacts":
            listed = self.artifacts.get((app, parts[4]))
            found = None if listed is None else [_list_item(a) for a in listed]
        elif len(parts) == 7 and parts[5] == "artifacts":
            found = next((a for a in self.artifacts.get((app, parts[4]), []) if a["slug"] == parts[6]), None)
        if found is None:
            return 404, b'{"message": "Not Found"}', {}
        return 200, json.dumps({"data": found}).encode(), {}


def _list_item(artifact: dict[str, Any]) -> dict[str, Any]:
    """The artifact list leaves the install page out: it is in each artifact's own answer."""
    return {k: v for k, v in artifact.items() if k != "public_install_page_url"}
