"""A real HTTP server on loopback that plays Slack, Teams or a broken destination in tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: What each real destination answers on success.
SUCCESS = {"slack": (200, "ok"), "teams": (202, ""), "teams-messagecard": (200, "1")}


@dataclass
class Reply:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


def answer(handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]) -> None:
    """Send one HTTP/1.1 answer with its length; a client that went away is no error of the test's."""
    try:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass


class ChatServer:
    """Scripted per path: ``script(path, *replies)`` queues replies; after that the default answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._responders: dict[str, Callable[[Received], Reply]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with server._lock:
                    server.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                        )
                    )
                    queue = server._scripts[self.path]
                    responder = server._responders.get(self.path)
                    if queue:
                        reply = queue.popleft()
                    elif responder is not None:
                        reply = responder(server.received[-1])
                    else:
                        reply = server._defaults.get(self.path, Reply(200, "ok"))
                if reply.delay:
                    time.sleep(reply.delay)
                answer(self, reply.status, reply.body.encode(), reply.headers)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path].extend(replies)

    def respond(self, path: str, responder: Callable[[Received], Reply]) -> None:
        """Answer each request to ``path`` with what ``responder`` says (after any scripted replies)."""
        with self._lock:
            self._responders[path] = responder

    def default(self, path: str, reply: Reply) -> None:
        with self._lock:
            self._defaults[path] = reply

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Dripping:
    """A destination that reads the request, sends ``fast`` at once, then ``slow`` a byte a second."""

    def __init__(self, fast: bytes, slow: bytes) -> None:
        self.fast, self.slow = fast, slow
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = [line.split(b": ", 1) for line in head.split(b"\r\n")[1:]]
            length = int(next(value for name, value in lines if name.lower() == b"content-length"))
            while len(body) < length:
                body += conn.recv(4096)
            self.requests += 1
            try:
                conn.sendall(self.fast)
                for byte in self.slow:
                    if self.stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def url(self, path: str = "/hook/drip") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
