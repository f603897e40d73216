"""A loopback stand-in for Slack's Web API: ``chat.postMessage`` and ``chat.update``, keeping the
messages it was sent, as Slack answers them (200 with ``ok``), with scripted errors and rate limits."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.chatserver import answer

TOKEN = "xoxb-1234567890-test-bot-token-d0e1f2"


@dataclass
class Posted:
    ts: str
    channel: str
    body: dict[str, Any]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    @property
    def current(self) -> dict[str, Any]:
        return self.updates[-1] if self.updates else self.body

    @property
    def text(self) -> str:
        return json.dumps(self.current, ensure_ascii=False)


@dataclass
class Call:
    method: str
    authorization: str | None
    body: dict[str, Any]


class FakeSlack:
    def __init__(self) -> None:
        self.messages: dict[str, Posted] = {}
        self.calls: list[Call] = []
        #: method -> queued (status, answer, headers) replies that replace the real behaviour
        self._script: dict[str, deque[tuple[int, dict[str, Any], dict[str, str]]]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                method = self.path.rsplit("/", 1)[-1]
                body = json.loads(raw or b"{}")
                status, reply, headers = server._answer(method, self.headers.get("Authorization"), body)
                if server.delay:
                    time.sleep(server.delay)
                payload = json.dumps(reply).encode()
                answer(self, status, payload, {"Content-Type": "application/json; charset=utf-8", **headers})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _answer(
        self, method: str, auth: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.calls.append(Call(method, auth, body))
            scripted = self._script.get(method)
            if scripted:
                return scripted.popleft()
            if auth != f"Bearer {TOKEN}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            channel = body.get("channel")
            if method == "chat.postMessage":
                self._next += 1
                ts = f"1764500000.{self._next:06d}"
                self.messages[ts] = Posted(
                    ts, channel, body, body.get("thread_ts"), bool(body.get("reply_broadcast"))
                )
                return (
                    200,
                    {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}},
                    {},
                )
            if method == "chat.update":
                found = self.messages.get(body.get("ts", ""))
                if found is None or found.deleted or found.channel != channel:
                    return 200, {"ok": False, "error": "message_not_found"}, {}
                found.updates.append(body)
                return 200, {"ok": True, "channel": channel, "ts": found.ts, "text": body.get("text")}, {}
            return 200, {"ok": False, "error": "unknown_method"}, {}

    def script(
        self, method: str, status: int, answer: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._script.setdefault(method, deque()).append((status, answer, headers or {}))

    def delete(self, ts: str) -> None:
        """What a person deleting the message in Slack does."""
        with self._lock:
            self.messages[ts].deleted = True

    def top_level(self, channel: str | None = None) -> list[Posted]:
        """Messages in the channel itself, not thread replies (a broadcast reply shows there too)."""
        with self._lock:
            return [
                m
                for m in self.messages.values()
                if m.thread_ts is None and (channel is None or m.channel == channel)
            ]

    def replies(self, ts: str) -> list[Posted]:
        with self._lock:
            return [m for m in self.messages.values() if m.thread_ts == ts]

    def methods(self) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
