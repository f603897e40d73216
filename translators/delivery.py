"""Deliver one rendered JSON body to one webhook URL, within a deadline, without leaking the URL.

Retries, backoff and ``Retry-After`` are urllib3's (:class:`urllib3.util.Retry`); this module adds
a per-call wall-clock deadline on top of them and turns every outcome into a :class:`DeliveryResult`:

- ``delivered``: the destination accepted it. A 2xx status line is taken as received, even when
  the rest of the answer does not come in time (``incomplete``).
- ``failed``: it did not arrive, or was refused. ``final`` when sending the same body again would
  be refused the same way (a 4xx other than 408 and 429).
- ``unknown``: it was sent and no answer came in time. A POST is never retried once the
  destination may have received it (urllib3 read retries are off), since that would be a second
  copy. Only connection failures (nothing sent), 5xx, 429 and 408 are retried within the call.

The deadline is wall-clock. Socket timeouts alone do not bound an answer that drips a byte at a
time, so a watchdog shuts this call's sockets when the deadline passes (``_Watchdog``).

The destination URL is a secret: Slack and Teams webhook URLs carry their token in the path or in
the query. requests and urllib3 put the URL into exception messages and log lines, so no exception
text is passed through (errors are described from their types), every text that leaves this module
goes through :func:`redact`, and urllib3's log records are redacted while a delivery runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import requests
from requests import exceptions as req_exc
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    InvalidHeader,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout

from translators import __version__, logs
from translators.logs import redact

if TYPE_CHECKING:
    from translators.settings import AppSettings

__all__ = ["DeliveryPolicy", "DeliveryResult", "deliver", "redact"]

log = logging.getLogger("translators.delivery")

USER_AGENT = f"mobile-ci-webhook-translator/{__version__}"

# 5xx and 429 are worth another attempt; any other 4xx would fail the same way again.
_RETRY_STATUSES = frozenset({429, *range(500, 600)})
# Below this, an attempt has no realistic chance of finishing, so it is not started at all.
_MIN_ATTEMPT_SECONDS = 0.1
# How much of an answer is read: enough for any error text, bounded against huge bodies.
_MAX_ANSWER_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 300
# URL parts shorter than this ("/", "v=1") are not secret and would mangle texts if replaced.
# Hosts kept in the pool (Slack, Teams, Logic Apps …) and connections kept per host, which should
# cover the worker threads that deliver at the same time.
_POOL_HOSTS = 10
_POOL_PER_HOST = 16


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: every attempt, backoff and ``Retry-After`` wait fits in ``deadline_seconds``.

    An answer may take all the time that is left (a slow destination that accepts the message is
    answered, not abandoned and sent again); ``connect_timeout`` bounds each connection attempt.
    """

    deadline_seconds: float = 15.0
    connect_timeout: float = 3.05
    max_attempts: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 5.0

    def __post_init__(self) -> None:
        if not (self.deadline_seconds > 0 and self.connect_timeout > 0):
            raise ValueError("deadline and timeouts must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_settings(cls, app: AppSettings) -> DeliveryPolicy:
        """``DELIVERY_DEADLINE_SECONDS`` and ``DELIVERY_MAX_ATTEMPTS`` (validated by the settings)."""
        return cls(deadline_seconds=app.delivery_deadline_seconds, max_attempts=app.delivery_max_attempts)


Outcome = Literal["delivered", "failed", "unknown"]


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery; ``error`` never holds the destination URL."""

    outcome: Outcome
    status: int | None
    attempts: int
    error: str | None
    elapsed_ms: int
    retry_after: float | None = None
    #: A refusal that sending the same body again would meet again (4xx other than 408/429).
    final: bool = False
    #: A 2xx status line arrived but the rest of the answer did not, in time.
    incomplete: bool = False
    #: The destination's answer when it accepted the message (Slack's Web API returns the message's
    #: ``ts`` in it); None otherwise.
    answer: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Redaction


# ---------------------------------------------------------------------------------------------
# Per-call deadline, carried by urllib3's own Retry and Timeout objects


class _CallBudget:
    """State of one ``deliver()`` call, shared by its Retry copies and its Timeout clones.

    Only the calling thread touches it (urllib3 retries inside that thread), so it needs no lock.
    """

    def __init__(self, policy: DeliveryPolicy, context: Mapping[str, object] | None = None) -> None:
        self.policy = policy
        #: Fields every attempt's log line carries (request id, channel, format).
        self.context = dict(context or {})
        self.started = time.monotonic()
        self.deadline = self.started + policy.deadline_seconds
        self.attempts = 0
        # The timeouts the latest attempt got, to describe its failure.
        self.connect_timeout = policy.connect_timeout
        self.read_timeout = policy.deadline_seconds
        #: Set by the watchdog when the deadline passed with the call still waiting on a socket.
        self.aborted = False
        #: The URL and other secrets, kept out of every error text and log line of this call.
        self.secrets: tuple[str, ...] = ()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


class _DeadlineTimeout(Timeout):
    """A Timeout that fits every attempt into what is left of the call's deadline.

    urllib3 clones the request's Timeout at the start of every attempt (``urlopen`` →
    ``_get_timeout``), before it takes a connection; that makes ``clone()`` the one per-attempt hook
    that runs inside the retry machinery, so it also counts the attempts.
    """

    def __init__(self, budget: _CallBudget) -> None:
        super().__init__(connect=budget.policy.connect_timeout, read=budget.remaining())
        self._budget = budget

    def clone(self) -> Timeout:
        budget = self._budget
        budget.attempts += 1
        # Timeout refuses values <= 0; the Retry below does not start attempts this late anyway.
        remaining = max(budget.remaining(), 0.01)
        budget.connect_timeout = min(budget.policy.connect_timeout, remaining)
        budget.read_timeout = remaining
        # total= makes urllib3 give the read what the connect left of the remaining time.
        return Timeout(connect=budget.connect_timeout, read=budget.read_timeout, total=remaining)


class _DeadlineRetry(Retry):
    """urllib3's Retry, plus: no attempt, backoff or ``Retry-After`` wait runs past the deadline.

    When the wait before the next attempt would end too close to the deadline, ``increment`` gives
    up at once (as if retries were exhausted) instead of sleeping first and failing afterwards; with
    ``raise_on_status=False`` urllib3 then hands back the last response, e.g. the 429 itself.
    """

    # urllib3 also retries a 413 that carries Retry-After; a 4xx other than 429 is never retried.
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(self, *, budget: _CallBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget

    def new(self, **kw: Any) -> Self:
        # Retry objects are immutable and copied on every increment; the copies share the budget.
        kw.setdefault("budget", self.budget)
        return super().new(**kw)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        # A malformed Retry-After would raise out of urlopen; treat it as absent (plain backoff).
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None

    def _wait_before_next(self, response: BaseHTTPResponse | None) -> float:
        """What ``Retry.sleep`` would wait: Retry-After when the response has one, else backoff."""
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                return retry_after
        return self.get_backoff_time()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = new_retry._wait_before_next(response)
        if wait + _MIN_ATTEMPT_SECONDS > self.budget.remaining():
            # What urllib3 raises when retries run out: the caller sees the last error or response.
            raise MaxRetryError(_pool, url, error or ResponseError("deadline reached"))  # type: ignore[arg-type]
        budget = self.budget
        failure = None if response is not None else redact(_describe_error(error, budget), budget.secrets)
        logs.event(
            log,
            "delivery.attempt",
            {
                **budget.context,
                "attempt": budget.attempts,
                "outcome": "retry",
                "status": response.status if response is not None else None,
                "error": failure,
                "retry_in_s": round(wait, 2),
                "ms": budget.elapsed_ms(),
            },
        )
        return new_retry

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        # increment() already refused waits past the deadline; clamping keeps that true regardless.
        wait = min(self._wait_before_next(response), self.budget.remaining())
        if wait > 0:
            time.sleep(wait)


# ---------------------------------------------------------------------------------------------
# The shared session


@dataclass(frozen=True)
class _Call:
    retry: Retry
    secrets: tuple[str, ...]
    #: The sockets this call sends on, for the watchdog to shut when the deadline passes.
    sockets: list[socket.socket] = field(default_factory=list)


def _register(sock: socket.socket | None) -> None:
    call = _current_call.get()
    if call is not None and sock is not None and sock not in call.sockets:
        call.sockets.append(sock)


class _Watchdog:
    """Shuts a call's sockets at its deadline, so that no answer, however slowly it drips, holds it.

    A shut socket makes the blocked read fail at once; the call then reports what it knows: a 2xx
    status line already read means delivered, a request sent without an answer means unknown.

    One thread per process watches every call (a thread per call cost more than the rest of a
    loopback delivery), started on first use, and again in a forked worker: a child inherits the
    parent's state but not its thread, and starts afresh.
    """

    def __init__(self) -> None:
        self._tickets = itertools.count()
        self._fresh()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._fresh)

    def _fresh(self) -> None:
        # A new lock too: the parent's watchdog thread may have held the old one at the fork.
        self._lock = threading.Condition(threading.Lock())
        self._pending: dict[int, tuple[_Call, _CallBudget]] = {}
        # Deadlines in order; an entry whose ticket is no longer pending was cancelled.
        self._deadlines: list[tuple[float, int]] = []
        self._running = False

    def watch(self, call: _Call, budget: _CallBudget) -> int:
        ticket = next(self._tickets)
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="delivery-watchdog", daemon=True).start()
            self._pending[ticket] = (call, budget)
            heapq.heappush(self._deadlines, (budget.deadline, ticket))
            if self._deadlines[0][1] == ticket:
                self._lock.notify()  # the nearest deadline now: the thread waits less
        return ticket

    def cancel(self, ticket: int) -> None:
        with self._lock:
            self._pending.pop(ticket, None)  # gone already when the deadline fired first
            if len(self._deadlines) > 2 * len(self._pending) + 64:
                # Most calls end long before their deadline: drop what they left behind.
                self._deadlines = [entry for entry in self._deadlines if entry[1] in self._pending]
                heapq.heapify(self._deadlines)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._deadlines and self._deadlines[0][1] not in self._pending:
                    heapq.heappop(self._deadlines)
                if not self._deadlines:
                    self._lock.wait()
                    continue
                deadline, ticket = self._deadlines[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._deadlines)
                call, budget = self._pending.pop(ticket)
                budget.aborted = True
                for sock in list(call.sockets):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


_watchdog = _Watchdog()


class _WatchedConnection:
    """Registers the socket of every request it makes with the delivery running in this thread."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _register(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)  # a kept-alive connection is not connected again
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# The delivery running in this thread (each thread has its own context; deliver() resets it).
_current_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "translators_delivery_call", default=None
)


class _PerCallRetryAdapter(HTTPAdapter):
    """An HTTPAdapter whose ``max_retries`` is the Retry of the delivery running in this thread.

    requests has no per-request retries: ``HTTPAdapter.send`` passes ``self.max_retries`` to
    urllib3. One adapter per call would mean one connection pool per call, and swapping the
    attribute would race between threads. Reading it from a context variable keeps one shared,
    thread-safe connection pool while every call gets its own deadline.
    """

    _default_retries: Retry

    @property
    def max_retries(self) -> Retry:
        call = _current_call.get()
        return call.retry if call is not None else self._default_retries

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        # HTTPAdapter.__init__ assigns max_retries; that value serves requests made outside deliver().
        self._default_retries = value

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # Pools whose connections report their sockets to the watchdog of the call using them.
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _RedactingFilter(logging.Filter):
    """Redacts records logged during a delivery; urllib3 logs the request path (the token) on retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = _current_call.get()
        if call is not None:
            try:
                record.msg = redact(record.getMessage(), call.secrets)
                if record.exc_info:
                    record.exc_text = redact(
                        logging.Formatter().formatException(record.exc_info), call.secrets
                    )
            except Exception:  # a filter must not raise into urllib3; drop the text instead
                record.msg = "(log record withheld: could not be redacted)"
                record.exc_text = None
            record.args = ()
            record.exc_info = None
        return True


# A filter on a logger only sees that logger's own records, not those propagated from children.
_REDACTED_LOGGERS = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.http2.connection",
    "requests",
    log.name,
)

_session: requests.Session | None = None
_session_lock = threading.Lock()


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = _PerCallRetryAdapter(pool_connections=_POOL_HOSTS, pool_maxsize=_POOL_PER_HOST)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # The environment's proxies and CA bundle are read once per destination (_request) instead of on
    # every call, where requests scanned the whole environment twice and looked for ~/.netrc. A
    # netrc login is no business of a webhook anyway.
    session.trust_env = False
    # Deliveries are independent: a cookie set by one destination must not ride along later.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    redacting = _RedactingFilter()
    for name in _REDACTED_LOGGERS:
        logging.getLogger(name).addFilter(redacting)
    return session


def _shared_session() -> requests.Session:
    """The process's one pooled session, created on first use (under a lock: threads race here)."""
    global _session
    session = _session
    if session is None:
        with _session_lock:
            if _session is None:
                _session = _new_session()
            session = _session
    return session


@dataclass(frozen=True)
class _Destination:
    """What requests would work out again on every call to one URL with the same headers."""

    #: The request with the session's headers merged and the URL parsed; each call sends a copy.
    template: requests.PreparedRequest
    #: The environment's proxies (``HTTPS_PROXY``, ``NO_PROXY`` …) and CA bundle (``REQUESTS_CA_BUNDLE``).
    environment: dict[str, Any]


_destinations: dict[tuple[str, tuple[tuple[str, str], ...]], _Destination] = {}


def _request(
    session: requests.Session, url: str, headers: dict[str, str], body: bytes
) -> tuple[requests.PreparedRequest, dict[str, Any]]:
    """``body`` POSTed to ``url``, prepared as ``Session.post`` would, and the environment's settings.

    Preparing (URL parsing, merging the session's headers and cookies) and reading the environment
    were a fifth of a delivery's CPU, so they are done once per destination and the prepared
    request is copied. Raises what ``Session.post`` raises for an unusable URL.
    """
    key = (url, tuple(sorted(headers.items())))
    found = _destinations.get(key)
    if found is None:
        # requests' own reading of the environment, as Session.post would do it on every call.
        with requests.Session() as trusting:
            merged = trusting.merge_environment_settings(url, {}, None, None, None)
        environment = {"proxies": merged["proxies"], "verify": merged["verify"], "cert": merged["cert"]}
        found = _Destination(
            session.prepare_request(requests.Request("POST", url, headers=headers)), environment
        )
        if len(_destinations) >= 256:  # destinations come from settings: a guard, not a cache policy
            _destinations.clear()
        _destinations[key] = found
    prepared = found.template.copy()
    prepared.prepare_body(body, None)
    return prepared, found.environment


# ---------------------------------------------------------------------------------------------
# Delivery


def deliver(
    url: str,
    body: bytes,
    *,
    is_success: Callable[[int, str], bool],
    policy: DeliveryPolicy = DeliveryPolicy(),
    secrets: Iterable[str] = (),
    context: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> DeliveryResult:
    """POST ``body`` to ``url`` and report the outcome; network problems never raise.

    ``is_success(status, text)`` decides whether the destination accepted the message (Slack says
    ``200 ok``; some destinations answer 200 with an error text). ``secrets`` are further strings
    to keep out of the returned error, in addition to the URL and its parts. ``context`` fields
    (request id, channel) go into the one structured log line each attempt writes. ``headers`` are
    sent too (a bot token's ``Authorization``: give the token in ``secrets``).
    """
    hidden = (url, *secrets)
    budget = _CallBudget(policy, context)
    budget.secrets = hidden
    retry = _DeadlineRetry(
        budget=budget,
        total=policy.max_attempts - 1,
        connect=policy.max_attempts - 1,  # nothing was sent: always safe to try again
        read=0,  # sent, no answer: another attempt could be a second copy
        other=0,
        allowed_methods=None,  # POST included, for the retries above
        status_forcelist=_RETRY_STATUSES,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        raise_on_status=False,  # hand back the last error response, whose body says what is wrong
        respect_retry_after_header=True,
    )
    sent_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    call = _Call(retry, hidden)
    token = _current_call.set(call)
    ticket = _watchdog.watch(call, budget)
    try:
        session = _shared_session()
        request, environment = _request(session, url, sent_headers, body)
        response = session.send(
            request,
            # requests passes a urllib3 Timeout through as is (HTTPAdapter.send); its stubs omit that.
            timeout=_DeadlineTimeout(budget),  # type: ignore[arg-type]
            # A webhook does not redirect; following one would resend the message elsewhere.
            allow_redirects=False,
            stream=True,  # to bound how much of the answer is read
            **environment,
        )
        try:
            text, complete = _read_text(response, budget)
        finally:
            response.close()
    except (requests.RequestException, Urllib3Error, OSError) as exc:
        failure = redact(_describe_error(exc, budget), hidden)
        outcome: Outcome = "failed" if _not_sent(exc) else "unknown"
        if outcome == "unknown":
            failure = f"no answer in time, so it is not known whether it arrived ({failure})"
        _log_last_attempt(budget, outcome, None, failure)
        return DeliveryResult(
            outcome=outcome,
            status=None,
            attempts=budget.attempts,
            error=failure,
            elapsed_ms=budget.elapsed_ms(),
        )
    finally:
        _watchdog.cancel(ticket)
        _current_call.reset(token)

    status = response.status_code
    incomplete = not complete and 200 <= status < 300
    ok = incomplete or is_success(status, text)
    error: str | None = None
    retry_after: float | None = None
    if not ok:
        error = _cut(redact(text.strip() or response.reason or f"HTTP {status}", hidden))
        if status in _DeadlineRetry.RETRY_AFTER_STATUS_CODES and response.raw is not None:
            retry_after = retry.get_retry_after(response.raw)
    result: Outcome = "delivered" if ok else "failed"
    _log_last_attempt(budget, result, status, error)
    return DeliveryResult(
        outcome=result,
        status=status,
        attempts=budget.attempts,
        error=error,
        elapsed_ms=budget.elapsed_ms(),
        retry_after=retry_after,
        final=not ok and 400 <= status < 500 and status not in (408, 429),
        incomplete=incomplete,
        answer=text if ok and not incomplete else None,
    )


def _not_sent(exc: BaseException) -> bool:
    """Whether the failure happened before the request could have reached the destination."""
    return any(
        isinstance(
            e,
            (
                NameResolutionError,
                NewConnectionError,
                ConnectTimeoutError,
                ProxyError,
                req_exc.ProxyError,
                req_exc.InvalidURL,
                req_exc.MissingSchema,
                req_exc.InvalidSchema,
                req_exc.ConnectTimeout,
                ssl.SSLError,
                Urllib3SSLError,
                req_exc.SSLError,
            ),
        )
        for e in _chain(exc)
    )


def _log_last_attempt(budget: _CallBudget, outcome: str, status: int | None, error: str | None) -> None:
    # A delivery made at the first attempt is in the request's own line: this one is for debugging.
    if outcome == "delivered":
        level = logging.DEBUG if budget.attempts == 1 else logging.INFO
    else:
        level = logging.WARNING
    logs.event(
        log,
        "delivery.attempt",
        {
            **budget.context,
            "attempt": budget.attempts,
            "outcome": outcome,
            "status": status,
            "error": error,
            "ms": budget.elapsed_ms(),
        },
        level,
    )


def _read_text(response: requests.Response, budget: _CallBudget) -> tuple[str, bool]:
    """The start of the answer as text, read no further than the cap or the deadline.

    Also whether the answer arrived whole: a destination that stalls after its status line (or the
    watchdog shutting the socket) leaves it incomplete, which is not an error here.
    """
    chunks: list[bytes] = []
    size = 0
    complete = True
    try:
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_ANSWER_BYTES:
                break
            if budget.remaining() <= 0:
                complete = False
                break
    except (requests.RequestException, Urllib3Error, OSError):
        complete = False
    if budget.aborted:  # the watchdog cut the answer short, wherever it was (headers included)
        complete = False
    raw = b"".join(chunks)[:_MAX_ANSWER_BYTES]
    try:
        return raw.decode(response.encoding or "utf-8", errors="replace"), complete
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace"), complete


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: requests → MaxRetryError.reason → the socket error."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
        elif isinstance(current, (requests.RequestException, ProtocolError)) and any(
            isinstance(arg, BaseException) for arg in current.args
        ):
            current = next(arg for arg in current.args if isinstance(arg, BaseException))
        else:
            current = current.__cause__ or current.__context__
    return found


def _seconds(value: float) -> str:
    return f"{round(value, 2):g} s"


def _describe_error(exc: BaseException | None, budget: _CallBudget) -> str:
    """A fixed description of a failed attempt, built from exception types only.

    Exception messages from requests and urllib3 embed the URL (with its token), so none of their
    text is used.
    """
    if exc is None:
        return "request failed"
    chain = _chain(exc)

    def first(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    def cause_name(wrapper: BaseException) -> str:
        inner = chain[chain.index(wrapper) + 1 :]
        return type(inner[0]).__name__ if inner else type(wrapper).__name__

    if first(NameResolutionError):
        return "DNS lookup failed"
    if first(ssl.SSLError, Urllib3SSLError, req_exc.SSLError):
        tls = first(ssl.SSLError)
        return f"TLS error ({type(tls).__name__})" if tls else "TLS error"
    if first(ProxyError, req_exc.ProxyError):
        return "proxy error"
    if refused := first(NewConnectionError):  # before ConnectTimeoutError, its base class
        return f"connection failed ({cause_name(refused)})"
    if first(ConnectTimeoutError, req_exc.ConnectTimeout):
        return f"connect timed out after {_seconds(budget.connect_timeout)}"
    if budget.aborted:
        return f"the {_seconds(budget.policy.deadline_seconds)} deadline passed waiting for the answer"
    if first(ReadTimeoutError, req_exc.Timeout, TimeoutError):
        return f"timed out after {_seconds(budget.read_timeout)} waiting for the answer"
    if first(req_exc.InvalidURL, req_exc.MissingSchema, req_exc.InvalidSchema):
        return "invalid destination URL"
    if first(req_exc.ChunkedEncodingError, req_exc.ContentDecodingError, DecodeError):
        return "unreadable answer"
    if dropped := first(ProtocolError):
        return f"connection dropped ({cause_name(dropped)})"
    if first(req_exc.ConnectionError, OSError):
        return f"connection failed ({type(chain[-1]).__name__})"
    return f"request failed ({type(exc).__name__})"
