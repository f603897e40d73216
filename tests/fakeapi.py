"""A loopback stand-in for a platform's JSON API (Bitrise, App Store Connect): it answers what the
subclass's ``route`` says, records every request, and fails as a test tells it to (a status, a
body, a delay, headers)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.chatserver import answer


@dataclass
class Failure:
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FakeApi:
    """Override ``route(path, authorization) -> (status, body, headers)``."""

    #: What a failure answers when it gives a status but no body.
    refusal = b'{"message": "no"}'

    def __init__(self) -> None:
        self.failure: Failure | None = None
        #: (path with query, Authorization header) of each request, in order.
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                with server._lock:
                    server.requests.append((self.path, authorization))
                    failure = server.failure
                status, payload, headers = server.route(self.path, authorization)
                if failure is not None:
                    if failure.delay:
                        time.sleep(failure.delay)
                    if failure.status != 200 or failure.body is not None:
                        status = failure.status
                        payload = failure.body if failure.body is not None else server.refusal
                    headers = failure.headers
                answer(self, status, payload, {"Content-Type": "application/json", **headers})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def route(self, path: str, authorization: str | None) -> tuple[int, bytes, dict[str, str]]:
        raise NotImplementedError

    def fail(self, failure: Failure | None) -> None:
        with self._lock:
            self.failure = failure

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
