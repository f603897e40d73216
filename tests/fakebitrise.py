"""A loopback stand-in for Bitrise's API, answering from the recorded answers in
``translators/samples/bitrise/api/``, or failing as told (401, 404, 429, slow, malformed)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.chatserver import answer
from translators.samples import all_samples

TOKEN = "bitrise-test-token-7f3a9c2e51d84b06"


@dataclass
class Failure:
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FakeBitrise:
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
        self.failure: Failure | None = None
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append((self.path, self.headers.get("Authorization")))
                    failure = server.failure
                status, payload, headers = server._answer(self.path, self.headers.get("Authorization"))
                if failure is not None:
                    if failure.delay:
                        time.sleep(failure.delay)
                    if failure.status != 200 or failure.body is not None:
                        status = failure.status
                        payload = failure.body if failure.body is not None else b'{"message": "no"}'
                    headers = failure.headers
                answer(self, status, payload, {"Content-Type": "application/json", **headers})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _answer(self, path: str, auth: str | None) -> tuple[int, bytes, dict[str, str]]:
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

    def fail(self, failure: Failure | None) -> None:
        with self._lock:
            self.failure = failure

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _list_item(artifact: dict[str, Any]) -> dict[str, Any]:
    """The artifact list leaves the install page out: it is in each artifact's own answer."""
    return {k: v for k, v in artifact.items() if k != "public_install_page_url"}
