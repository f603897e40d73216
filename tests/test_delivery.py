"""translators.delivery against a real HTTP server on the loopback interface, scripted per test."""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.chatserver import Dripping
from translators import __version__, delivery
from translators.delivery import DeliveryPolicy, DeliveryResult, deliver, redact

SECRET_PATH = "/services/T123/B456/secretsecret"
SECRET_QUERY = "sig=secretsignature42"


def slack_ok(status: int, text: str) -> bool:
    return status == 200 and text == "ok"


def any_2xx(status: int, text: str) -> bool:
    return 200 <= status < 300


# Fast retries, so that tests about retrying do not spend their time in backoff.
FAST = DeliveryPolicy(backoff_factor=0.01)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    echo_path: bool = False  # answer with the request's path and query, as a careless server might


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() when the request arrived
    client: tuple[str, int]  # the client's address: equal for requests on one TCP connection


class FakeWebhook:
    """Answers POSTs from a script of replies and records every request it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replies: deque[Reply] = deque()
        self.otherwise = Reply(599, b"no reply scripted")
        self.responder: Callable[[Seen], Reply] | None = None
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def url(self, path: str = SECRET_PATH, query: str = SECRET_QUERY) -> str:
        return f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def take(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            if self.responder is not None:
                return self.responder(seen)
            return self.replies.popleft() if self.replies else self.otherwise


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so that connection reuse can be observed
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        fake = self.server.fake
        reply = fake.take(
            Seen(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.monotonic(),
                client=self.client_address,
            )
        )
        if reply.delay:
            fake.stopping.wait(reply.delay)  # a sleep that the fixture's teardown cuts short
        payload = self.path.encode() if reply.echo_path else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections would hold server_close() otherwise

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = FakeWebhook(self.server_address[1])
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()  # handler threads remove their connections themselves

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def open_connections(self) -> list[socket.socket]:
        with self._open_lock:
            return list(self._open)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts) make the late answer fail; that is expected


@pytest.fixture
def server() -> Iterator[FakeWebhook]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.fake
    finally:
        httpd.fake.stopping.set()
        httpd.shutdown()
        for sock in httpd.open_connections():
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        thread.join(timeout=2)


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}?{SECRET_QUERY}"


def timed(fn: Callable[[], DeliveryResult]) -> tuple[DeliveryResult, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Outcomes


def test_success_sends_the_body_and_headers_exactly(server: FakeWebhook) -> None:
    body = '{"text": "Build #42 ✅ passed"}'.encode()
    server.script(Reply(200, b"ok"))

    result = deliver(server.url(), body, is_success=slack_ok)

    assert result == DeliveryResult(
        outcome="delivered", status=200, attempts=1, error=None, elapsed_ms=result.elapsed_ms, answer="ok"
    )
    [seen] = server.seen
    assert seen.body == body
    assert seen.headers["content-type"] == "application/json; charset=utf-8"
    assert seen.headers["user-agent"] == f"mobile-ci-webhook-translator/{__version__}"
    assert seen.path == f"{SECRET_PATH}?{SECRET_QUERY}"


def test_200_with_an_error_text_is_a_failure_and_not_retried(server: FakeWebhook) -> None:
    server.script(Reply(200, b"  not ok \n"), Reply(200, b"ok"))

    result = deliver(server.url(), b"{}", is_success=slack_ok)

    assert not result.ok
    assert result.status == 200
    assert result.attempts == 1
    assert result.error == "not ok"
    assert len(server.seen) == 1


def test_server_errors_are_retried_with_backoff(server: FakeWebhook) -> None:
    server.script(Reply(500, b"boom"), Reply(502, b"bad gateway"), Reply(200, b"ok"))

    result = deliver(server.url(), b"{}", is_success=slack_ok, policy=DeliveryPolicy(backoff_factor=0.1))

    assert result.ok
    assert result.attempts == 3
    assert result.error is None
    assert len(server.seen) == 3
    # urllib3 retries the first failure at once and waits backoff_factor * 2 = 0.2 s after the second.
    assert server.seen[2].at - server.seen[1].at >= 0.15


def test_429_waits_for_retry_after(server: FakeWebhook) -> None:
    server.script(Reply(429, b"rate_limited", {"Retry-After": "1"}), Reply(200, b"ok"))

    result = deliver(server.url(), b"{}", is_success=slack_ok)

    assert result.ok
    assert result.attempts == 2
    assert server.seen[1].at - server.seen[0].at >= 0.9
    assert result.elapsed_ms >= 900


@pytest.mark.parametrize(
    "retry_after",
    ["120", "http-date"],
)
def test_retry_after_past_the_deadline_is_not_waited_for(server: FakeWebhook, retry_after: str) -> None:
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 120, usegmt=True)
    server.script(Reply(429, b"rate_limited", {"Retry-After": retry_after}), Reply(200, b"ok"))

    result, elapsed = timed(
        lambda: deliver(server.url(), b"{}", is_success=slack_ok, policy=DeliveryPolicy(deadline_seconds=2))
    )

    assert elapsed < 1.0
    assert not result.ok
    assert result.status == 429
    assert result.attempts == 1
    assert result.error == "rate_limited"
    assert result.retry_after is not None
    assert 115 <= result.retry_after <= 120
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(400, b"invalid_blocks"), "invalid_blocks"),
        (Reply(404, b"no_service"), "no_service"),
        (Reply(403, b""), "Forbidden"),  # an empty body falls back to the reason phrase
        (Reply(413, b"too big", {"Retry-After": "1"}), "too big"),  # urllib3 alone would retry this
    ],
)
def test_client_errors_are_not_retried(server: FakeWebhook, reply: Reply, error: str) -> None:
    server.otherwise = reply

    result = deliver(server.url(), b"{}", is_success=slack_ok, policy=FAST)

    assert not result.ok
    assert result.status == reply.status
    assert result.attempts == 1
    assert result.error == error
    assert len(server.seen) == 1


def test_persistent_503_gives_up_after_max_attempts(server: FakeWebhook) -> None:
    server.otherwise = Reply(503, b"  Service Unavailable: try later  ")

    result = deliver(server.url(), b"{}", is_success=any_2xx, policy=DeliveryPolicy(backoff_factor=0.01))

    assert not result.ok
    assert result.status == 503
    assert result.attempts == 4
    assert result.error == "Service Unavailable: try later"
    assert result.retry_after is None
    assert len(server.seen) == 4


def test_long_error_texts_are_cut(server: FakeWebhook) -> None:
    server.otherwise = Reply(400, b"x" * 5000)

    result = deliver(server.url(), b"{}", is_success=slack_ok)

    assert result.error is not None
    assert len(result.error) == 300


def test_a_post_is_not_sent_again_once_it_may_have_arrived(server: FakeWebhook) -> None:
    server.otherwise = Reply(200, b"ok", delay=5)
    policy = DeliveryPolicy(deadline_seconds=1.5, backoff_factor=0.05)

    result, elapsed = timed(lambda: deliver(server.url(), b"{}", is_success=slack_ok, policy=policy))

    assert result.outcome == "unknown" and not result.ok
    assert result.status is None
    assert result.error is not None and "not known whether it arrived" in result.error
    assert result.attempts == 1 and len(server.seen) == 1, "a second copy would be a duplicate"
    assert 1.4 <= elapsed < 2.5


def test_a_slow_answer_within_the_deadline_is_waited_for(server: FakeWebhook) -> None:
    server.otherwise = Reply(200, b"ok", delay=2.5)
    policy = DeliveryPolicy(deadline_seconds=4)

    result = deliver(server.url(), b"{}", is_success=slack_ok, policy=policy)

    assert result.ok and result.attempts == 1 and len(server.seen) == 1


@pytest.mark.parametrize(
    ("fast", "slow", "outcome"),
    [
        # The status line arrives, the rest of the answer drips: the destination has the message.
        (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\nok", "delivered"),
        # Even the status line drips: sent, and it is not known whether it arrived.
        (b"", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "unknown"),
        # The answer drips after its headers: still delivered once the status is in.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok", "delivered"),
    ],
    ids=["headers-drip", "status-line-drips", "body-drips"],
)
def test_the_deadline_is_wall_clock_even_for_an_answer_that_drips(
    fast: bytes, slow: bytes, outcome: str
) -> None:
    drip = Dripping(fast, slow)
    try:
        result, elapsed = timed(
            lambda: deliver(
                drip.url(), b"{}", is_success=slack_ok, policy=DeliveryPolicy(deadline_seconds=1.5)
            )
        )
    finally:
        drip.close()
    assert result.outcome == outcome, result
    assert elapsed < 2.5, "the deadline is wall-clock"
    assert drip.requests == 1, "never sent twice"


def test_connection_refused(refused_url: str) -> None:
    result = deliver(refused_url, b"{}", is_success=slack_ok, policy=FAST)

    assert not result.ok
    assert result.status is None
    assert result.error == "connection failed (ConnectionRefusedError)"
    assert result.attempts == FAST.max_attempts


def test_the_deadline_bounds_backoff(server: FakeWebhook) -> None:
    server.otherwise = Reply(500, b"boom")
    policy = DeliveryPolicy(deadline_seconds=1.0, backoff_factor=10, backoff_max=60)

    result, elapsed = timed(lambda: deliver(server.url(), b"{}", is_success=slack_ok, policy=policy))

    assert elapsed < 2.5
    assert not result.ok
    assert result.status == 500
    assert result.error == "boom"
    assert 1 <= result.attempts < policy.max_attempts
    assert result.attempts == len(server.seen)


def test_unusable_urls_do_not_raise() -> None:
    result = deliver(f"ftp://example.invalid{SECRET_PATH}", b"{}", is_success=slack_ok)

    assert not result.ok
    assert result.status is None
    assert result.attempts == 0
    assert result.error == "invalid destination URL"


# ---------------------------------------------------------------------------------------------
# The shared session


def test_connections_are_pooled(server: FakeWebhook) -> None:
    server.otherwise = Reply(200, b"ok")

    first = deliver(server.url(), b"{}", is_success=slack_ok)
    second = deliver(server.url(), b"{}", is_success=slack_ok)

    assert first.ok
    assert second.ok
    assert len(server.seen) == 2
    assert server.seen[0].client == server.seen[1].client


def test_concurrent_deliveries_keep_their_own_retry_policies(server: FakeWebhook) -> None:
    server.responder = lambda seen: Reply(503, seen.path.encode(), delay=0.05)
    policies = {f"/hook/{n}": DeliveryPolicy(max_attempts=n, backoff_factor=0.01) for n in (1, 2, 3, 4)}

    with ThreadPoolExecutor(max_workers=len(policies)) as pool:
        futures = {
            path: pool.submit(deliver, server.url(path, ""), b"{}", is_success=any_2xx, policy=policy)
            for path, policy in policies.items()
        }
        results = {path: future.result() for path, future in futures.items()}

    for path, policy in policies.items():
        assert results[path].attempts == policy.max_attempts
        assert sum(seen.path == path for seen in server.seen) == policy.max_attempts


def test_the_environment_proxy_carries_deliveries_unless_no_proxy_names_the_host(
    server: FakeWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loopback fake plays a forward proxy: a proxied request line carries the absolute URL.
    server.otherwise = Reply(200, b"ok")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(delivery, "_destinations", {})

    proxied = deliver("http://hooks.invalid/services/x", b"{}", is_success=slack_ok, policy=FAST)
    direct = deliver(server.url("/direct", ""), b"{}", is_success=slack_ok, policy=FAST)

    assert proxied.ok
    assert direct.ok
    assert [seen.path for seen in server.seen] == ["http://hooks.invalid/services/x", "/direct"]


def test_one_watchdog_thread_serves_every_call(server: FakeWebhook) -> None:
    server.otherwise = Reply(200, b"ok")
    deliver(server.url(), b"{}", is_success=slack_ok)
    before = threading.active_count()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: deliver(server.url(), b"{}", is_success=slack_ok), range(40)))

    assert all(result.ok for result in results)
    watchdogs = [t for t in threading.enumerate() if t.name == "delivery-watchdog"]
    assert len(watchdogs) == 1
    assert threading.active_count() <= before + 4, "no thread per call beyond the pool's own"


# ---------------------------------------------------------------------------------------------
# Secret safety


def _leaks(text: str, url: str) -> list[str]:
    secrets = [url, url.split("://", 1)[1], SECRET_PATH, "secretsecret", SECRET_QUERY, "secretsignature42"]
    return [secret for secret in secrets if secret in text]


@pytest.mark.parametrize("case", ["refused", "timeout", "echo"])
def test_no_error_text_or_log_line_holds_the_url(
    case: str, server: FakeWebhook, refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = refused_url if case == "refused" else server.url()
    server.otherwise = Reply(200, b"ok", delay=5) if case == "timeout" else Reply(500, b"", echo_path=True)
    policy = DeliveryPolicy(deadline_seconds=1, backoff_factor=0.01, max_attempts=2)

    result = deliver(url, b"{}", is_success=slack_ok, policy=policy)

    assert not result.ok
    assert result.attempts == (1 if case == "timeout" else 2)
    assert result.error
    if case == "echo":
        assert server.seen[0].path == f"{SECRET_PATH}?{SECRET_QUERY}"  # the body did echo the secrets
        assert result.error == "***"
    texts = [result.error, repr(result), json.dumps(result.as_dict())]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    assert [leak for text in texts for leak in _leaks(text, url)] == []
    # urllib3 does log the request path on these paths; the test is moot unless it saw such lines.
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    assert any(record.name == "translators.delivery" for record in caplog.records)


def test_extra_secrets_are_redacted_from_answers(server: FakeWebhook) -> None:
    server.otherwise = Reply(401, b"bad credentials for token xoxb-12345-abcdef")

    result = deliver(server.url(), b"{}", is_success=slack_ok, secrets=["xoxb-12345-abcdef"])

    assert result.error == "bad credentials for token ***"


def test_redact() -> None:
    url = f"https://hooks.example.com{SECRET_PATH}?api-version=1&{SECRET_QUERY}"

    assert redact(f"failed: {url} (x)", [url]) == "failed: *** (x)"
    assert redact(f"POST hooks.example.com{SECRET_PATH}", [url]) == "POST ***"
    assert redact(f"url: {SECRET_PATH}?api-version=1&{SECRET_QUERY}", [url]) == "url: ***"
    assert redact("signature secretsignature42 is wrong", [url]) == "signature *** is wrong"
    assert redact("token SECRETSECRET", [url]) == "token ***"
    encoded = url.replace("secretsecret", "secret%73ecret")
    assert redact(f"decoded: {SECRET_PATH}", [encoded]) == "decoded: ***"
    # Parameter names and short parts ("T123", the "1" of api-version) are not secret and stay readable.
    assert redact("api-version=1 and T123", [url]) == "api-version=1 and T123"
    assert redact("nothing to hide", []) == "nothing to hide"
    assert redact("a plain secret: hunter2", ["hunter2", ""]) == "a plain secret: ***"


# ---------------------------------------------------------------------------------------------
# Policy and result


def test_policy_from_settings() -> None:
    from translators import settings

    app = settings.load({"DELIVERY_DEADLINE_SECONDS": "7.5", "DELIVERY_MAX_ATTEMPTS": "2"}).app
    policy = DeliveryPolicy.from_settings(app)
    assert (policy.deadline_seconds, policy.max_attempts) == (7.5, 2)
    default = DeliveryPolicy.from_settings(settings.load({}).app)
    assert (default.deadline_seconds, default.max_attempts) == (15.0, 4)


def test_result_as_dict() -> None:
    result = DeliveryResult(
        outcome="failed", status=429, attempts=1, error="rate_limited", elapsed_ms=12, retry_after=3
    )

    assert json.loads(json.dumps(result.as_dict())) == {
        "outcome": "failed",
        "status": 429,
        "attempts": 1,
        "error": "rate_limited",
        "elapsed_ms": 12,
        "retry_after": 3,
        "final": False,
        "incomplete": False,
        "answer": None,
    }
