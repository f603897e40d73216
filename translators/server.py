"""Serve the function app's HTTP functions locally without Azure Functions Core Tools.

``python -m translators serve`` (and ``make run``) runs the very functions registered in
``function_app.app`` on their own routes, under the host's route prefix (``api`` unless host.json
says otherwise), behind waitress (HTTP/1.1 keep-alive, fixed thread pools; werkzeug routes and
parses within the app). Each request becomes the ``azure.functions.HttpRequest`` the Azure worker
would build and the returned ``HttpResponse`` is sent back as is (less hop-by-hop headers, which
the host sets), so the answers are the ones Azure gives. Function keys are not checked, as with
``func start``, but an ``authLevel: admin`` route (the outbox's actions) and ``DELETE /inbox``
need ``WEBHOOK_TOKEN`` when it is set, as Azure needs the master key for them.

Beside the functions the server keeps a local *inbox*: ``POST /inbox/<format>`` answers the way
that chat destination does (Slack ``200 ok``, Workflows ``202``, MessageCard ``200 1``) and keeps
the body; ``GET /inbox`` lists what arrived, newest first. With no ``CHANNEL_*_URL`` configured
the CLI points channels ``slack``, ``teams`` and ``teams-messagecard`` at it, so a posted sample
runs the whole real path (render, validate, HTTP delivery with retries) and can be looked at. A
channel of your own may point at ``/inbox/<format>/<name>`` to be listed under ``<name>``.

Deliveries to the inbox are served by threads of their own (see ``_SplitDispatcher``), so calls
waiting for them cannot take every thread; on SIGINT or SIGTERM the calls in progress are still
answered (see ``LocalServer.serve_forever``).

waitress and werkzeug are in requirements.txt (the app's run-time requirements, so that a plain
``pip install -r requirements.txt`` can serve): Azure installs them with the rest, but never imports
this module.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
import waitress.server
from waitress import wasyncore
from waitress.task import ThreadedTaskDispatcher
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import ClosingIterator

from translators import logs, settings

log = logs.logger("translators.serve")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROUTE_PREFIX = "api"
#: Azure's limit on an HTTP request to a function (the pipeline's own MAX_BODY_BYTES is lower).
MAX_REQUEST_BYTES = 100 * 1024 * 1024
#: What each real destination answers when it accepts a message: (status, body).
INBOX_ANSWERS: dict[str, tuple[int, str]] = {
    "slack": (200, "ok"),
    "teams": (202, ""),
    "teams-messagecard": (200, "1"),
}
INBOX_SIZE = 200
#: Idle keep-alive connections are closed after this many seconds.
IDLE_SECONDS = 30
#: A request must arrive whole (headers and body) within this many seconds of its first byte: a
#: client that sends half a request and stalls (or drips it) is disconnected, so that such
#: connections are bounded by time and cannot pile up to the connection limit.
REQUEST_SECONDS = 10.0
#: Open connections at most (waitress's default is 100; a few slow clients could take them all).
CONNECTION_LIMIT = 500
#: Threads that run function calls. The process runs Python on one core at a time (the GIL):
#: under load (python -m bench), 2, 4, 8 and 16 threads served as many requests per second, and
#: more threads only lengthened p99. Enough let calls that wait on a slow destination overlap,
#: and the deliverer bounds how many wait on one destination (translators/deliverer.py).
FUNCTION_THREADS = 8
#: Threads of the quick pool: the inbox, health and the preview page (see _SplitDispatcher).
QUICK_THREADS = 2
#: On Ctrl+C or SIGTERM, calls in progress get at least this long to finish and be answered;
#: serve passes the delivery deadline plus this, so that no delivery is cut off mid-way.
STOP_SECONDS = 5.0
#: The longest the I/O loop waits for a socket before it looks whether it was told to stop.
LOOP_SECONDS = 0.2


# ---------------------------------------------------------------------------------------------
# Routes: Azure route templates as werkzeug rules


class _Constrained(BaseConverter):
    """A route parameter with an ASP.NET Core route constraint; the value stays text, as on Azure."""

    def to_python(self, value: str) -> str:
        return value


def _constraint(pattern: str) -> type[BaseConverter]:
    return type("Constraint", (_Constrained,), {"regex": pattern})


#: The inline constraints Azure route templates use most, as regexes.
#: https://learn.microsoft.com/aspnet/core/fundamentals/routing#route-constraints
CONSTRAINTS: dict[str, type[BaseConverter]] = {
    "int": _constraint(r"-?\d+"),
    "long": _constraint(r"-?\d+"),
    "alpha": _constraint(r"[A-Za-z]+"),
    "bool": _constraint(r"(?i:true|false)"),
    "guid": _constraint(r"\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?"),
    "double": _constraint(r"-?\d+(?:\.\d+)?"),
    "decimal": _constraint(r"-?\d+(?:\.\d+)?"),
    "float": _constraint(r"-?\d+(?:\.\d+)?"),
}
_PARAM = re.compile(r"\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?|=[^}]*)?\}")


class RouteError(ValueError):
    """A route template this server cannot serve (named, so the user knows which function)."""


def rule_strings(prefix: str, template: str) -> list[tuple[str, dict[str, str]]]:
    """An Azure route template as werkzeug rule strings, each with default route values.

    ``{name}`` matches one path segment, ``{*name}`` the rest of the path, ``{name:int}`` (and the
    other constraints in CONSTRAINTS) what the constraint admits; an optional last parameter
    (``{name?}`` or ``{name=default}``) gives a second rule without it. Constraints not listed are
    not enforced here (Azure still enforces them).
    """
    template = template.strip("/")
    optional: tuple[str, str] | None = None

    def convert(match: re.Match[str]) -> str:
        nonlocal optional
        star, name, constraint, suffix = match.groups()
        if suffix:
            if match.end() != len(template):
                raise RouteError(f"route {template!r}: only the last parameter may be optional")
            optional = (name, "" if suffix == "?" else suffix[1:])
        if star:
            return f"<path:{name}>"
        if constraint and constraint.lower() in CONSTRAINTS:
            return f"<{constraint.lower()}:{name}>"
        return f"<{name}>"

    if "<" in template or ">" in template:
        raise RouteError(f"route {template!r}: '<' and '>' cannot be served locally")
    body = _PARAM.sub(convert, template)
    if "{" in body or "}" in body:
        raise RouteError(f"route {template!r}: a parameter this server does not understand")
    base = "/" + "/".join(p for p in (prefix.strip("/"), body) if p)
    rules: list[tuple[str, dict[str, str]]] = [(base, {})]
    if optional is not None:
        name, default = optional
        shorter = base[: base.rindex("/")] or "/"
        rules.append((shorter, {name: default}))
    return rules


def route_prefix(host_json: Path = ROOT / "host.json") -> str:
    """``extensions.http.routePrefix`` from host.json; ``api`` when absent, as on Azure."""
    try:
        data = json.loads(host_json.read_text(encoding="utf-8"))
        prefix = data["extensions"]["http"]["routePrefix"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_ROUTE_PREFIX
    return prefix if isinstance(prefix, str) else DEFAULT_ROUTE_PREFIX


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP-triggered function of the app, as the worker indexes it."""

    name: str
    route: str
    methods: tuple[str, ...] | None  # None: any method
    param: str  # the name of the HttpRequest argument
    call: Callable[..., Any]
    #: ``authLevel: admin`` (the outbox's actions): Azure asks for the master key; here the
    #: webhook token, when one is set.
    admin: bool = False


def http_functions(registered: Iterable[Any]) -> tuple[list[HttpFunction], list[str]]:
    """The app's HTTP functions, and a note for each function this server cannot run.

    ``registered`` is what ``FunctionApp.get_functions()`` returned (it may be called only once).
    """
    found: list[HttpFunction] = []
    skipped: list[str] = []
    for f in registered:
        name = f.get_function_name()
        if not f.is_http_function():
            kind = getattr(f.get_trigger(), "get_binding_name", lambda: "")()
            if kind == "timerTrigger" and name == "drain":
                skipped.append(f"{name}: a timer on Azure; here a thread drains the outbox all the time")
            else:
                skipped.append(f"{name}: not an HTTP function")
            continue
        trigger = f.get_trigger()
        user = f.get_user_function()
        extra = [
            p.name
            for p in inspect.signature(user).parameters.values()
            if p.name != trigger.name and p.default is inspect.Parameter.empty
        ]
        if extra:
            skipped.append(f"{name}: needs bindings the local server does not provide ({', '.join(extra)})")
            continue
        methods = tuple(str(getattr(m, "value", m)).upper() for m in trigger.methods or ()) or None
        level = str(getattr(getattr(trigger, "auth_level", None), "value", "")).lower()
        found.append(HttpFunction(name, trigger.route or name, methods, trigger.name, user, level == "admin"))
    return found, skipped


# ---------------------------------------------------------------------------------------------
# The inbox: a stand-in chat destination inside the server


@dataclass(frozen=True)
class Delivered:
    id: int
    received_at: datetime
    channel: str
    format: str
    body: Any
    size: int
    #: The worker process that received it (``serve --workers``).
    worker: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(timespec="milliseconds"),
            "channel": self.channel,
            "format": self.format,
            "text": _headline(self.format, self.body),
            "bytes": self.size,
            "worker": self.worker,
            "body": self.body,
        }


class Inbox:
    """The last ``size`` messages delivered to the local server, safe to use from many threads."""

    def __init__(self, size: int = INBOX_SIZE) -> None:
        self._items: deque[Delivered] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._count = 0

    def add(self, channel: str, fmt: str, body: Any, size: int) -> Delivered:
        with self._lock:
            self._count += 1
            item = Delivered(self._count, datetime.now(UTC), channel, fmt, body, size, os.getpid())
            self._items.append(item)
        return item

    def newest_first(self) -> list[Delivered]:
        with self._lock:
            return list(reversed(self._items))

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._items)
            self._items.clear()
        return cleared

    @property
    def capacity(self) -> int:
        return self._items.maxlen or 0

    @property
    def received(self) -> int:
        """How many messages arrived since start, including those no longer kept."""
        return self._count


class SharedInbox:
    """The inbox in an SQLite file, for ``serve --workers``: every worker process adds to it and
    lists it, whichever one a request reaches. WAL lets them write while others read."""

    def __init__(self, path: Path, size: int = INBOX_SIZE) -> None:
        import sqlite3

        from translators.state.sqlite import Turn

        self.path = path
        self.size = size
        self._local = threading.local()
        self._sqlite = sqlite3
        self._turn = Turn(path)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT"
                " NOT NULL, channel TEXT NOT NULL, format TEXT NOT NULL, body TEXT NOT NULL, size INTEGER"
                " NOT NULL, worker INTEGER NOT NULL)"
            )

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # one connection per thread, reused: the inbox is hot under load
            conn = self._sqlite.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=OFF")  # a scratch file for one run
            self._local.conn = conn
        with self._turn():
            yield conn

    def add(self, channel: str, fmt: str, body: Any, size: int) -> Delivered:
        with self._db() as db:
            # The time is taken by the insert itself, under SQLite's write lock: ids and times of
            # messages from different workers then agree on the order.
            row_id, received = db.execute(
                "INSERT INTO inbox (received_at, channel, format, body, size, worker)"
                " VALUES (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00', ?, ?, ?, ?, ?)"
                " RETURNING id, received_at",
                (channel, fmt, json.dumps(body, ensure_ascii=False), size, os.getpid()),
            ).fetchone()
            moment = datetime.fromisoformat(received)
            if row_id % 50 == 0:  # now and then, not on every add: keep the newest ``size``
                db.execute("DELETE FROM inbox WHERE id <= ?", (row_id - self.size,))
        return Delivered(row_id, moment, channel, fmt, body, size, os.getpid())

    def newest_first(self) -> list[Delivered]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, received_at, channel, format, body, size, worker FROM inbox"
                " ORDER BY id DESC LIMIT ?",
                (self.size,),
            ).fetchall()
        return [
            Delivered(r[0], datetime.fromisoformat(r[1]), r[2], r[3], json.loads(r[4]), r[5], r[6])
            for r in rows
        ]

    def clear(self) -> int:
        with self._db() as db:
            kept = min(db.execute("SELECT count(*) FROM inbox").fetchone()[0], self.size)
            db.execute("DELETE FROM inbox")
        return int(kept)

    @property
    def capacity(self) -> int:
        return self.size

    @property
    def received(self) -> int:
        with self._db() as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").fetchone()
        return int(row[0]) if row else 0


def _headline(fmt: str, body: Any) -> str | None:
    """The line a chat client would show in a notification, to make the inbox listing skimmable."""
    if not isinstance(body, dict):
        return None
    if fmt == "slack":
        text = body.get("text")
        attachments = body.get("attachments")
        if not text and isinstance(attachments, list) and attachments and isinstance(attachments[0], dict):
            text = attachments[0].get("fallback")
    elif fmt == "teams-messagecard":
        text = body.get("summary") or body.get("title") or body.get("text")
    else:
        try:
            card = body["attachments"][0]["content"]
            text = card.get("fallbackText") or next(
                (e.get("text") for e in card.get("body", []) if isinstance(e, dict) and e.get("text")), None
            )
        except (KeyError, IndexError, TypeError, AttributeError):
            text = None
    return text if isinstance(text, str) else None


# ---------------------------------------------------------------------------------------------
# The WSGI application


def _admin_allowed(request: Request) -> bool:
    """An admin action (the outbox's actions, clearing the inbox) carries ``WEBHOOK_TOKEN`` when one
    is set: on Azure these need the master key, and a local server must not be looser."""
    from translators import guard, settings

    token = settings.from_environ().app.webhook_token
    return guard.token_ok(token, dict(request.headers.items()), request.args.get(guard.TOKEN_PARAM))


def _json(status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A JSON answer of the server's own, which carries a ``request_id`` as the functions' answers do."""
    body = {**body, "request_id": body.get("request_id") or os.urandom(6).hex()}
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        headers=list(headers),
        content_type="application/json; charset=utf-8",
    )


def _html(status: int, page: str) -> Response:
    return Response(page, status=status, content_type="text/html; charset=utf-8")


_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
}


def _stopping() -> Response:
    """503 for a call that arrives while the server stops, closing its connection.

    The body is an iterator so that it has no Content-Length, and an HTTP/1.1 server must then
    close the connection after it (an application may not send ``Connection: close`` itself): a
    client sending on a keep-alive connection learns at once that this server is going away.
    """
    body = json.dumps(
        {
            "error": "stopping",
            "message": "the local server is stopping; send it again later",
            "request_id": os.urandom(6).hex(),
        }
    )
    return Response(iter([body.encode()]), status=503, content_type="application/json; charset=utf-8")


def _loggable_path(environ: dict[str, Any]) -> str:
    """The request path as sent, without the query string (it may hold a token) or control characters."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""))
    path = str(raw).split("?", 1)[0].split("#", 1)[0]
    return quote(path, safe="/%+:@!$&'()*,;=-._~")


#: The environ key naming the function a request was routed to.
CALLED = "translators.function"


class LocalFunctionApp:
    """WSGI app: the function app's HTTP functions on their routes, plus the inbox."""

    def __init__(self, functions: Sequence[HttpFunction], prefix: str, inbox: Inbox | SharedInbox) -> None:
        self.functions = {f.name: f for f in functions}
        self.inbox = inbox
        #: Set when the server stops: function calls are refused (503), the inbox still answers.
        self.stopping = False
        #: Function calls not yet answered in full (the server waits for them when it stops).
        self.in_flight = 0
        self._in_flight_lock = threading.Lock()
        rules: list[Rule] = [
            Rule("/inbox", methods=["GET", "DELETE"], endpoint="inbox:list"),
            Rule("/inbox/<fmt>", methods=["POST"], endpoint="inbox:post"),
            Rule("/inbox/<fmt>/<channel>", methods=["POST"], endpoint="inbox:post"),
            Rule("/preview", methods=["GET", "POST"], endpoint="preview:page"),
            Rule("/preview/static/<name>", methods=["GET"], endpoint="preview:static"),
            Rule("/preview/vendor/<name>", methods=["GET"], endpoint="preview:vendor"),
        ]
        self.routes: list[str] = []
        for f in functions:
            try:
                strings = rule_strings(prefix, f.route)
            except RouteError as exc:
                raise RouteError(f"function {f.name!r}: {exc}") from None
            for string, defaults in strings:
                methods = list(f.methods) if f.methods else None
                rules.append(
                    Rule(string, methods=methods, endpoint=f"fn:{f.name}", defaults=defaults or None)
                )
            shown = "/" + "/".join(p for p in (prefix.strip("/"), f.route.strip("/")) if p)
            self.routes.append(f"{','.join(f.methods or ('ANY',))} {shown}")
        self.routes += ["GET /inbox", "DELETE /inbox", "POST /inbox/{format}", "GET /preview"]
        self.url_map = Map(
            rules,
            converters=CONSTRAINTS,
            strict_slashes=False,  # ASP.NET routing ignores a trailing slash
            merge_slashes=False,
            redirect_defaults=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        request.max_content_length = MAX_REQUEST_BYTES
        counted = not is_quick(request.path)
        if counted:
            self._count(1)
        try:
            response = self.dispatch(request)
        except Exception:  # a bug here must still answer JSON; the traceback goes to the (redacted) log
            log.exception("unexpected error serving %s %s", request.method, _loggable_path(environ))
            response = _json(500, {"error": "internal_error", "message": "unexpected error; see the log"})
        # One line per request at INFO: a function call logs its own (the pipeline's ``request``
        # line, with the outcome of every channel), so the server's access line is DEBUG for it.
        # So is a delivery to the inbox: the request that made it says how it went.
        routine = CALLED in environ or (request.method == "POST" and request.path.startswith("/inbox/"))
        level = logging.DEBUG if routine and response.status_code < 500 else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "%s %s %d %d ms",
                request.method,
                _loggable_path(environ),
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
        body = response(environ, start_response)
        if not counted:
            return body
        # The server closes the body once it has all of it: the call is answered then, not before.
        return ClosingIterator(body, lambda: self._count(-1))

    def _count(self, delta: int) -> None:
        with self._in_flight_lock:
            self.in_flight += delta

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or ())
            return _json(
                405,
                {
                    "error": "method_not_allowed",
                    "message": f"{request.method} is not allowed here; use {' or '.join(allowed)}",
                    "allowed": allowed,
                },
                [("Allow", ", ".join(allowed))],
            )
        except NotFound:
            return _json(
                404,
                {
                    "error": "not_found",
                    "message": f"nothing is served at {request.path}",
                    "routes": self.routes,
                },
            )
        except HTTPException as exc:  # werkzeug's own routing answers, e.g. a redirect
            return _json(exc.code or 400, {"error": "bad_request", "message": exc.description or exc.name})
        kind, _, name = str(endpoint).partition(":")
        admin = (kind == "fn" and self.functions[name].admin) or (
            kind == "inbox" and request.method == "DELETE"
        )
        if admin and not _admin_allowed(request):
            from translators import guard

            return _json(401, {"error": "unauthorized", "message": str(guard.token_refused())})
        if kind == "fn":
            if self.stopping:
                return _stopping()
            request.environ[CALLED] = name
            return self.call_function(self.functions[name], request, values)
        if kind == "preview":
            return self.preview(request, name, values.get("name"))
        if name == "post":
            return self.receive(request, values["fmt"], values.get("channel"))
        if request.method == "DELETE":
            return _json(200, {"cleared": self.inbox.clear()})
        items = self.inbox.newest_first()
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
            from translators import preview  # a browser asked: draw the messages

            return _html(200, preview.inbox_page([i.as_dict() for i in items]))
        return _json(
            200,
            {
                "count": len(items),
                "received": self.inbox.received,
                "kept": self.inbox.capacity,
                "messages": [i.as_dict() for i in items],
            },
        )

    def call_function(self, f: HttpFunction, request: Request, values: Mapping[str, Any]) -> Response:
        try:
            body = request.get_data(cache=False)
        except HTTPException as exc:  # RequestEntityTooLarge
            return _json(
                exc.code or 400,
                {"error": "body_too_large", "message": f"the request body is over {MAX_REQUEST_BYTES} bytes"},
            )
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            # Repeated headers become one comma-joined value, as the Functions host passes them.
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        req = func.HttpRequest(
            request.method,
            request.url,
            headers=headers,
            params=request.args.to_dict(),  # the first of repeated parameters
            route_params={k: str(v) for k, v in values.items()},
            body=body,
        )
        result = f.call(**{f.param: req})
        if inspect.isawaitable(result):
            import asyncio  # only for an async function: none of ours is

            result = asyncio.run(_awaited(result))
        return _to_response(f.name, result)

    def preview(self, request: Request, what: str, name: str | None) -> Response:
        """The preview page (see translators/preview), its own files, and the npm files it draws with."""
        from translators import preview

        if what == "page":
            choice = request.values.get("templates", "builtin")
            pasted = None
            if request.method == "POST":
                form = request.form
                pasted = preview.Pasted(
                    form.get("source", "auto"), form.get("headers", ""), form.get("payload", "")
                )
            status, page = preview.page(settings.from_environ(), choice, pasted)
            return _html(status, page)
        files = preview.VENDOR if what == "vendor" else {p.name: p for p in preview.STATIC.iterdir()}
        path = files.get(name or "")
        if path is None or not path.is_file():
            hint = " (run `make node` to install the npm packages)" if what == "vendor" else ""
            return _json(404, {"error": "not_found", "message": f"no preview file {name!r}{hint}"})
        return Response(
            path.read_bytes(), status=200, content_type=_CONTENT_TYPES.get(path.suffix, "text/plain")
        )

    def receive(self, request: Request, fmt: str, channel: str | None) -> Response:
        """Take a message as the real destination of that format would, and keep it.

        ``_`` and ``-`` are the same in the format, as in channel names: see ``inbox_url``.
        """
        fmt = fmt.lower().replace("_", "-")
        if fmt not in INBOX_ANSWERS:
            return _json(
                404,
                {
                    "error": "not_found",
                    "message": f"no inbox for format {fmt!r}",
                    "valid": sorted(INBOX_ANSWERS),
                },
            )
        raw = request.get_data(cache=False)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # What Slack answers (Teams answers 400 too); the pipeline never sends such a body.
            return Response("invalid_payload", status=400, content_type="text/plain; charset=utf-8")
        self.inbox.add(channel or fmt, fmt, body, len(raw))
        status, text = INBOX_ANSWERS[fmt]
        return Response(text, status=status, content_type="text/plain; charset=utf-8")


def inbox_url(base: str, fmt: str) -> str:
    """Where a channel of this format delivers to the inbox of the server at ``base``.

    Channel URLs are secrets to the log filter, which masks every part of 8 characters or more
    wherever it appears; ``teams_messagecard`` keeps the channel named ``teams-messagecard`` (and
    the format) readable in the log lines, since the inbox reads ``_`` as ``-``.
    """
    return f"{base}/inbox/{fmt.replace('-', '_')}"


#: Response headers not taken from a function: the content type is set apart, the others are
#: hop-by-hop (RFC 9110 section 7.6.1), which PEP 3333 forbids an application to send.
_NOT_FROM_FUNCTIONS = frozenset(
    {
        "content-type",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


async def _awaited(result: Any) -> Any:
    return await result


def _to_response(name: str, result: Any) -> Response:
    """The function's return value as the host would send it."""
    if isinstance(result, func.HttpResponse):
        # The host, not the function, manages the connection: a WSGI server refuses these headers.
        headers = [(k, v) for k, v in result.headers.items() if k.lower() not in _NOT_FROM_FUNCTIONS]
        content_type = dict((k.lower(), v) for k, v in result.headers.items()).get("content-type")
        if content_type is None and result.mimetype:
            content_type = result.mimetype + (f"; charset={result.charset}" if result.charset else "")
        return Response(
            result.get_body(), status=result.status_code, headers=headers, content_type=content_type
        )
    if isinstance(result, (str, bytes)):
        return Response(result, status=200, content_type="text/plain; charset=utf-8")
    log.error("function %s returned %s, not an HttpResponse", name, type(result).__name__)
    return _json(500, {"error": "internal_error", "message": f"function {name!r} returned no HttpResponse"})


# ---------------------------------------------------------------------------------------------
# The server


def is_inbox(path: str) -> bool:
    """Whether a request path is the inbox's."""
    return path == "/inbox" or path.startswith("/inbox/")


def is_quick(path: str) -> bool:
    """Served by the quick pool and not counted as a call: the inbox, health and the preview.

    None of these waits on anything outside this process, so none can be held up by a slow
    destination: health answers at once even when every function thread waits on one.
    """
    return is_inbox(path) or path.endswith("/health") or path == "/preview" or path.startswith("/preview/")


_QUEUE_LOG = logging.getLogger("translators.serve.queue")
_QUEUE_LOG.setLevel(logging.ERROR)


class _SplitDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool for the functions, plus a quick pool for the inbox, health, preview.

    A function call holds its thread while it delivers, and with the embedded default it delivers
    to this very server's inbox. With a single pool, as many concurrent calls as threads would
    leave no thread to take those deliveries, and every call would wait out its delivery timeout.
    The quick pool only serves requests that wait on nothing outside the process, so it is never
    held up, and the function pool can stay small (more threads only contend for the GIL).

    waitress hands over a connection (its ``HTTPChannel``) whose first queued request is the one
    to serve, and re-adds it for each further request on it, so each request is routed by its own
    path.
    """

    def __init__(self, threads: int, quick_threads: int) -> None:
        super().__init__()
        self.quick = ThreadedTaskDispatcher()
        # waitress warns whenever a request finds every thread busy: under a burst, that is a line
        # per request, saying only what the per-request log line's milliseconds already show.
        self.queue_logger = self.quick.queue_logger = _QUEUE_LOG
        self.quick.set_thread_count(quick_threads)
        self.set_thread_count(threads)

    def add_task(self, task: Any) -> None:
        requests = getattr(task, "requests", None)
        if requests and is_quick(getattr(requests[0], "path", "")):
            self.quick.add_task(task)
        else:
            super().add_task(task)

    def shutdown(self, cancel_pending: bool = True, timeout: int = 5) -> bool:
        done = super().shutdown(cancel_pending, timeout)
        return self.quick.shutdown(cancel_pending, timeout) and done


class LocalServer:
    """waitress serving the app: HTTP/1.1 keep-alive, fixed thread pools, one I/O thread.

    The socket is bound on creation; ``serve_forever`` returns after SIGINT or SIGTERM once the
    function calls already running have been answered.
    """

    def __init__(
        self,
        app: LocalFunctionApp,
        host: str,
        port: int,
        threads: int = FUNCTION_THREADS,
        quick_threads: int = QUICK_THREADS,
        stop_seconds: float = STOP_SECONDS,
        reuse_port: bool = False,
        listen: bool = True,
    ) -> None:
        self.app = app
        self.stop_seconds = stop_seconds
        #: Set by ``server_close``: a ``serve_forever`` running in another thread then returns.
        self.closed = threading.Event()
        # A server that only holds its port (serve --workers) runs no threads: its process forks.
        self.dispatcher = _SplitDispatcher(threads if listen else 0, quick_threads if listen else 0)
        #: Connections with a request partly received, and when its first part was seen.
        self._partial: dict[int, float] = {}
        self._map: dict[int, Any] = {}  # waitress's socket map: the listener, trigger, connections
        server = waitress.server.create_server(
            app,
            map=self._map,
            _dispatcher=self.dispatcher,  # waitress's hook for its own dispatcher; see _SplitDispatcher
            # waitress binds the socket it is given: one with SO_REUSEPORT set shares the port.
            # The process that holds the port for its workers checks it is free; the workers then
            # share it with that process alone.
            _sock=reuse_port_socket(host, port, probe=not listen) if reuse_port else None,
            _start=listen,
            host=host,
            port=port,
            channel_timeout=IDLE_SECONDS,
            cleanup_interval=2,  # how often idle connections are looked for (waitress: every 30 s)
            connection_limit=CONNECTION_LIMIT,
            # As the Functions host does, refuse an oversized body (413) before reading it.
            max_request_body_size=MAX_REQUEST_BYTES,
            # Headers reach the function as sent, X-Forwarded-* included (no proxy to trust here).
            clear_untrusted_proxy_headers=False,
        )
        assert isinstance(server, waitress.server.BaseWSGIServer)  # one address: never MultiSocketServer
        self._server = server
        self.server_port = int(server.getsockname()[1])  # the one picked when port is 0

    def serve_forever(self) -> None:
        """Serve until SIGINT (Ctrl+C) or SIGTERM, then answer the calls in progress.

        Meanwhile new connections are refused, a call arriving on an open one gets a 503, and the
        inbox keeps taking deliveries; after ``stop_seconds``, or a second signal, it stops anyway.
        What waitress's own ``run()`` does differs in two ways: it stops on a KeyboardInterrupt
        raised wherever the loop happens to be (possibly between sending bytes and noting them
        sent), and it then waits for busy threads while no socket is served, so a call delivering
        to the inbox could only time out.
        """
        signals = [0]

        def note(signum: int, frame: Any) -> None:
            signals[0] += 1  # the loop polls at least every LOOP_SECONDS and sees it

        previous: dict[signal.Signals, Any] = {}
        try:
            for stop in (signal.SIGINT, signal.SIGTERM):
                previous[stop] = signal.signal(stop, note)
        except ValueError:  # not the main thread: KeyboardInterrupt stops it, as in waitress
            pass
        try:
            with contextlib.suppress(KeyboardInterrupt):
                while not signals[0] and not self.closed.is_set():
                    wasyncore.loop(timeout=LOOP_SECONDS, map=self._map, count=1)
                    self._drop_stalled_requests()
            if self.closed.is_set():
                return
            self.app.stopping = True
            wasyncore.dispatcher.close(self._server)  # the listening socket: no new connections
            deadline = time.monotonic() + self.stop_seconds
            with contextlib.suppress(KeyboardInterrupt):
                while (
                    signals[0] < 2 and time.monotonic() < deadline and (self.app.in_flight or self._unsent())
                ):
                    wasyncore.loop(timeout=LOOP_SECONDS, map=self._map, count=1)
        finally:
            for stop, handler in previous.items():
                signal.signal(stop, handler)
        if self.app.in_flight:
            log.warning("stopped with %d request(s) unanswered", self.app.in_flight)

    def _drop_stalled_requests(self) -> None:
        """Close connections whose request has not arrived whole within REQUEST_SECONDS."""
        now = time.monotonic()
        seen: dict[int, float] = {}
        for fd, channel in list(self._map.items()):
            if getattr(channel, "request", None) is None:
                continue  # idle between requests (channel_timeout bounds that), or not a connection
            started = self._partial.get(fd, now)
            if now - started > REQUEST_SECONDS:
                log.info("closing a connection whose request did not arrive within %.0f s", REQUEST_SECONDS)
                channel.handle_close()
            else:
                seen[fd] = started
        self._partial = seen

    def _unsent(self) -> bool:
        return any(getattr(c, "total_outbufs_len", 0) for c in list(self._map.values()))

    def server_close(self) -> None:
        """Close every connection and the listening socket, and stop the thread pools."""
        self.app.stopping = True
        self.closed.set()
        trigger = self._server.trigger  # waitress's wake-up pipe, which a running thread may still pull
        for obj in list(self._map.values()):
            if obj is not trigger:
                obj.close()
        if self.dispatcher.shutdown(cancel_pending=True, timeout=1):
            wasyncore.close_all(self._map)
        # else a call is stuck (logged by waitress): the pipe stays open until the process ends,
        # rather than make that thread fail on it with a traceback.


def create_server(
    host: str,
    port: int,
    registered: Iterable[Any],
    inbox: Inbox | SharedInbox | None = None,
    stop_seconds: float = STOP_SECONDS,
    reuse_port: bool = False,
    listen: bool = True,
) -> tuple[LocalServer, LocalFunctionApp, list[str]]:
    """Bind a server for the registered functions; also the app and the skipped notes.

    The socket is bound here, so ``server.server_port`` is known (``port=0`` picks a free one)
    before channels that point back at the inbox are configured. ``reuse_port``: the socket shares
    its port with the other workers of ``serve --workers`` (``SO_REUSEPORT``: the kernel spreads
    new connections over them). ``listen=False`` only holds the port: the kernel gives connections
    to listening sockets alone, so ``serve --workers`` keeps the port this way while its workers serve.
    """
    functions, skipped = http_functions(registered)
    app = LocalFunctionApp(functions, route_prefix(), inbox or Inbox())
    server = LocalServer(app, host, port, stop_seconds=stop_seconds, reuse_port=reuse_port, listen=listen)
    return server, app, skipped


def reuse_port_socket(host: str, port: int, *, probe: bool = True) -> Any:
    """An unbound TCP socket that may share ``port`` with other processes (``SO_REUSEPORT``).

    The port must be free first: ``SO_REUSEPORT`` would otherwise let this server share it with a
    forgotten one, each answering half the requests (with its own settings). A plain bind tells
    (``OSError`` ``EADDRINUSE``, which the CLI turns into "port N is in use").
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port and probe:
        with socket.socket(family, socket.SOCK_STREAM) as plain:
            # SO_REUSEADDR: a port whose last server just stopped (TIME_WAIT) is free; one that any
            # socket is bound to, with or without SO_REUSEPORT, is not.
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            plain.bind((host, port))
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def load_function_app() -> Any:
    """``function_app.app``, imported from the project root whatever the current directory is."""
    import importlib
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("function_app").app
