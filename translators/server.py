"""Serve the function app's HTTP functions locally without Azure Functions Core Tools.

``python -m translators serve`` (and ``make run``) runs the very functions registered in
``function_app.app`` on their own routes, under the host's route prefix (``api`` unless host.json
says otherwise), as one WSGI app (werkzeug routes and parses; translators/host.py serves it with
waitress, under gunicorn for more processes). Each request becomes the ``azure.functions.HttpRequest``
the Azure worker would build and the returned ``HttpResponse`` is sent back as is (less hop-by-hop
headers, which the host sets), so the answers are the ones Azure gives. Function keys are not checked, as with
``func start``, but an ``authLevel: admin`` route (the outbox's actions) and ``DELETE /inbox``
need ``WEBHOOK_TOKEN`` when it is set, as Azure needs the master key for them.

Beside the functions the server keeps a local *inbox*: ``POST /inbox/<format>`` answers the way
that chat destination does (Slack ``200 ok``, Workflows ``202``, MessageCard ``200 1``) and keeps
the body; ``GET /inbox`` lists what arrived, newest first. With no ``CHANNEL_*_URL`` configured
the CLI points channels ``slack``, ``teams`` and ``teams-messagecard`` at it, so a posted sample
runs the whole real path (render, validate, HTTP delivery with retries) and can be looked at. A
channel of your own may point at ``/inbox/<format>/<name>`` to be listed under ``<name>``.

waitress, gunicorn and werkzeug are in requirements.txt (the app's run-time requirements, so that a
plain ``pip install -r requirements.txt`` can serve): Azure installs them with the rest, but never
imports this module.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from wsgiref.util import is_hop_by_hop

import azure.functions as func
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import ClosingIterator

from translators import formats, guard, logs, settings
from translators.destinations.webhook import RULES

log = logs.logger("translators.serve")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROUTE_PREFIX = "api"
#: Azure's limit on an HTTP request to a function (the pipeline's own MAX_BODY_BYTES is lower).
MAX_REQUEST_BYTES = 100 * 1024 * 1024
INBOX_SIZE = 200
#: On Ctrl+C or SIGTERM, calls in progress get at least this long to finish and be answered;
#: serve passes the delivery deadline plus this, so that no delivery is cut off mid-way.
STOP_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------
# Routes: Azure route templates as werkzeug rules


_PARAM = re.compile(r"\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+(?:\([^)]*\))?)*(\?|=[^}]*)?\}")


class RouteError(ValueError):
    """A route template this server cannot serve (named, so the user knows which function)."""


def rule_strings(prefix: str, template: str) -> list[tuple[str, dict[str, str]]]:
    """An Azure route template as werkzeug rule strings, each with default route values.

    ``{name}`` matches one path segment, ``{*name}`` the rest of the path; an optional last
    parameter (``{name?}`` or ``{name=default}``) gives a second rule without it. Constraints
    (``{id:int}``) are not enforced here: the function gets any segment, which Azure would refuse.
    """
    template = template.strip("/")
    optional: tuple[str, str] | None = None

    def convert(match: re.Match[str]) -> str:
        nonlocal optional
        star, name, suffix = match.groups()
        if suffix:
            if match.end() != len(template):
                raise RouteError(f"route {template!r}: only the last parameter may be optional")
            optional = (name, "" if suffix == "?" else suffix[1:])
        return f"<path:{name}>" if star else f"<{name}>"

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
            drain = "a timer on Azure; here a thread drains the outbox all the time"
            skipped.append(f"{name}: {drain if name == 'drain' else 'not an HTTP function'}")
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


class Inbox:
    """The last ``size`` messages delivered to the local server, safe to use from many threads."""

    def __init__(self, size: int = INBOX_SIZE) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._received = 0
        self.capacity = size

    def add(self, channel: str, fmt: str, body: dict[str, Any], size: int) -> None:
        shown = formats.get(fmt)
        headline = shown.headline(body) if shown else None
        self._keep({"channel": channel, "format": fmt, "text": headline, "bytes": size, "body": body})

    def _keep(self, item: dict[str, Any]) -> None:
        with self._lock:  # the id and the time taken together: they agree on the order
            self._received += 1
            self._items.append({"id": self._received, "received_at": _now(), **item})

    def newest_first(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._items))

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._items)
            self._items.clear()
        return cleared

    @property
    def received(self) -> int:
        """How many messages arrived since start, including those no longer kept."""
        return self._received


class SharedInbox(Inbox):
    """The inbox in an SQLite file, for ``serve --workers``: every worker process keeps to it and
    lists it, whichever one a request reaches (WAL: they write while others read)."""

    def __init__(self, path: Path, size: int = INBOX_SIZE) -> None:
        from translators.state.sqlite import Turn

        super().__init__(size)
        self.path, self._local, self._turn = path, threading.local(), Turn(path)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT)")
        self._local.conn.close()  # made before the workers fork: each thread of theirs opens its own
        self._local = threading.local()

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if getattr(self._local, "conn", None) is None:  # one per thread, reused: the inbox is hot
            self._local.conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._local.conn.execute("PRAGMA synchronous=OFF")  # a scratch file for one run
        with self._turn():
            yield self._local.conn

    def _keep(self, item: dict[str, Any]) -> None:
        with self._db() as db:  # in turn: ids and times agree across the workers
            stored = json.dumps({"received_at": _now(), **item}, ensure_ascii=False)
            (row_id,) = db.execute("INSERT INTO inbox (item) VALUES (?) RETURNING id", (stored,)).fetchone()
            if row_id % 50 == 0:  # now and then, not on every add: keep the newest ``capacity``
                db.execute("DELETE FROM inbox WHERE id <= ?", (row_id - self.capacity,))

    def newest_first(self) -> list[dict[str, Any]]:
        with self._db() as db:
            query = "SELECT id, item FROM inbox ORDER BY id DESC LIMIT ?"
            rows = db.execute(query, (self.capacity,)).fetchall()
        return [{"id": row_id, **json.loads(item)} for row_id, item in rows]

    def clear(self) -> int:
        with self._db() as db:
            kept = min(db.execute("SELECT count(*) FROM inbox").fetchone()[0], self.capacity)
            db.execute("DELETE FROM inbox")
        return int(kept)

    @property
    def received(self) -> int:
        with self._db() as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").fetchone()
        return int(row[0]) if row else 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------------------------
# The WSGI application


def _admin_allowed(request: Request) -> bool:
    """An admin action (the outbox's actions, clearing the inbox) carries ``WEBHOOK_TOKEN`` when one
    is set: on Azure these need the master key, and a local server must not be looser."""
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


def _stopping() -> Response:
    """503 for a call that arrives while the server stops, closing its connection.

    The body is an iterator so that it has no Content-Length, and an HTTP/1.1 server must then
    close the connection after it (an application may not send ``Connection: close`` itself): a
    client sending on a keep-alive connection learns at once that this server is going away.
    """
    answer = _json(503, {"error": "stopping", "message": "the local server is stopping; send it again later"})
    return Response(iter([answer.get_data()]), status=503, content_type=answer.content_type)


#: The environ key naming the function a request was routed to.
CALLED = "translators.function"


class LocalFunctionApp:
    """WSGI app: the function app's HTTP functions on their routes, plus the inbox."""

    def __init__(self, functions: Sequence[HttpFunction], prefix: str, inbox: Inbox) -> None:
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
            strict_slashes=False,  # ASP.NET routing ignores a trailing slash
            merge_slashes=False,
            redirect_defaults=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        counted = is_call(request.path)
        if counted:
            self._count(1)
        try:
            response = self.dispatch(request)
        except Exception:  # a bug here must still answer JSON; the traceback goes to the (redacted) log
            log.exception("unexpected error serving %s %s", request.method, quote(request.path))
            response = _json(500, {"error": "internal_error", "message": "unexpected error; see the log"})
        # One line per request at INFO: a function call logs its own (the pipeline's ``request``
        # line, with the outcome of every channel), so the server's access line is DEBUG for it.
        # So is a delivery to the inbox: the request that made it says how it went.
        routine = CALLED in environ or (request.method == "POST" and request.path.startswith("/inbox/"))
        level = logging.DEBUG if routine and response.status_code < 500 else logging.INFO
        if log.isEnabledFor(level):  # the path without its query (it may hold a token), quoted
            log.log(
                level,
                "%s %s %d %d ms",
                request.method,
                quote(request.path),
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

            return Response(preview.inbox_page(items), mimetype="text/html")  # charset: utf-8
        return _json(
            200,
            {
                "count": len(items),
                "received": self.inbox.received,
                "kept": self.inbox.capacity,
                "messages": items,
            },
        )

    def call_function(self, f: HttpFunction, request: Request, values: Mapping[str, Any]) -> Response:
        req = func.HttpRequest(
            request.method,
            request.url,
            # A repeated header is one comma-joined value: the WSGI server joined it, as Azure's host does.
            headers=dict(request.headers.items()),
            params=request.args.to_dict(),  # the first of repeated parameters
            route_params={k: str(v) for k, v in values.items()},
            body=request.get_data(cache=False),  # within MAX_REQUEST_BYTES: waitress refused more (413)
        )
        return _to_response(f.name, f.call(**{f.param: req}))

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
            return Response(page, status=status, mimetype="text/html")
        files = preview.VENDOR if what == "vendor" else {p.name: p for p in preview.STATIC.iterdir()}
        path = files.get(name or "")
        if path is None or not path.is_file():
            hint = " (run `make node` to install the npm packages)" if what == "vendor" else ""
            return _json(404, {"error": "not_found", "message": f"no preview file {name!r}{hint}"})
        return send_file(path, request.environ)  # its type from its name; cached by the browser

    def receive(self, request: Request, fmt: str, channel: str | None) -> Response:
        """Take a message as the real destination of that format would, and keep it.

        ``_`` and ``-`` are the same in the format, as in channel names: see ``inbox_url``.
        """
        fmt = fmt.lower().replace("_", "-")
        if fmt not in RULES:
            return _json(
                404,
                {
                    "error": "not_found",
                    "message": f"no inbox for format {fmt!r}",
                    "valid": sorted(RULES),
                },
            )
        body = request.get_json(force=True, silent=True)  # None when it is not JSON
        if not isinstance(body, dict):
            # What Slack answers (Teams answers 400 too); the pipeline never sends such a body.
            return Response("invalid_payload", status=400, content_type="text/plain; charset=utf-8")
        self.inbox.add(channel or fmt, fmt, body, len(request.get_data()))
        status, text = RULES[fmt].accepted
        return Response(text, status=status, content_type="text/plain; charset=utf-8")


def inbox_url(base: str, fmt: str) -> str:
    """Where a channel of this format delivers to the inbox of the server at ``base``.

    Channel URLs are secrets to the log filter, which masks every part of 8 characters or more
    wherever it appears; ``teams_messagecard`` keeps the channel named ``teams-messagecard`` (and
    the format) readable in the log lines, since the inbox reads ``_`` as ``-``.
    """
    return f"{base}/inbox/{fmt.replace('-', '_')}"


def _to_response(name: str, result: Any) -> Response:
    """The function's return value as the host would send it."""
    if isinstance(result, func.HttpResponse):
        # The host, not the function, manages the connection: a WSGI server refuses these headers
        # (PEP 3333). The content type is set apart.
        headers = [
            (k, v) for k, v in result.headers.items() if k.lower() != "content-type" and not is_hop_by_hop(k)
        ]
        content_type = dict((k.lower(), v) for k, v in result.headers.items()).get("content-type")
        if content_type is None and result.mimetype:
            content_type = result.mimetype + (f"; charset={result.charset}" if result.charset else "")
        return Response(
            result.get_body(), status=result.status_code, headers=headers, content_type=content_type
        )
    log.error("function %s returned %s, not an HttpResponse", name, type(result).__name__)
    return _json(500, {"error": "internal_error", "message": f"function {name!r} returned no HttpResponse"})


# ---------------------------------------------------------------------------------------------
# Building the app


def is_call(path: str) -> bool:
    """Counted as a call (a stop waits for these): all but the inbox, health and the preview."""
    own = any(path == p or path.startswith(f"{p}/") for p in ("/inbox", "/preview"))
    return not (own or path.endswith("/health"))


def create_app(registered: Iterable[Any]) -> tuple[LocalFunctionApp, list[str]]:
    """The app serving the registered functions; also notes on the functions it cannot serve."""
    functions, skipped = http_functions(registered)
    return LocalFunctionApp(functions, route_prefix(), Inbox()), skipped


def load_function_app() -> Any:
    """``function_app.app``, imported from the project root whatever the current directory is."""
    import importlib
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("function_app").app
