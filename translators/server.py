"""Serve the function app's HTTP functions locally without Azure Functions Core Tools.

``python -m translators serve`` (and ``make run``) runs the very functions registered in
``function_app.app`` on their own routes, under the host's route prefix (``api`` unless host.json
says otherwise), behind werkzeug's threaded WSGI server. Each request becomes the
``azure.functions.HttpRequest`` the Azure worker would build and the returned ``HttpResponse`` is
sent back as is, so the answers are the ones Azure gives. As with ``func start``, function keys are
not checked (the ``authLevel`` of a route matters only on Azure).

Beside the functions the server keeps a local *inbox*: ``POST /inbox/<format>`` answers the way
that chat destination does (Slack ``200 ok``, Workflows ``202``, MessageCard ``200 1``) and keeps
the body; ``GET /inbox`` lists what arrived, newest first. With no ``CHANNEL_*_URL`` configured
the CLI points channels ``slack``, ``teams`` and ``teams-messagecard`` at it, so a posted sample
runs the whole real path (render, validate, HTTP delivery with retries) and can be looked at. A
channel of your own may point at ``/inbox/<format>/<name>`` to be listed under ``<name>``.

werkzeug is a development dependency: Azure never imports this module.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from translators import logs

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
#: Idle keep-alive connections are closed after this many seconds, so they do not pin threads.
IDLE_SECONDS = 75


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


def http_functions(registered: Iterable[Any]) -> tuple[list[HttpFunction], list[str]]:
    """The app's HTTP functions, and a note for each function this server cannot run.

    ``registered`` is what ``FunctionApp.get_functions()`` returned (it may be called only once).
    """
    found: list[HttpFunction] = []
    skipped: list[str] = []
    for f in registered:
        name = f.get_function_name()
        if not f.is_http_function():
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
        found.append(HttpFunction(name, trigger.route or name, methods, trigger.name, user))
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(timespec="milliseconds"),
            "channel": self.channel,
            "format": self.format,
            "text": _headline(self.format, self.body),
            "bytes": self.size,
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
            item = Delivered(self._count, datetime.now(UTC), channel, fmt, body, size)
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


def _headline(fmt: str, body: Any) -> str | None:
    """The line a chat client would show in a notification, to make the inbox listing skimmable."""
    if not isinstance(body, dict):
        return None
    if fmt == "slack":
        text = body.get("text")
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


def _json(status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        headers=list(headers),
        content_type="application/json; charset=utf-8",
    )


def _loggable_path(environ: dict[str, Any]) -> str:
    """The request path as sent, without the query string (it may hold a token) or control characters."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""))
    path = str(raw).split("?", 1)[0].split("#", 1)[0]
    return quote(path, safe="/%+:@!$&'()*,;=-._~")


class LocalFunctionApp:
    """WSGI app: the function app's HTTP functions on their routes, plus the inbox."""

    def __init__(self, functions: Sequence[HttpFunction], prefix: str, inbox: Inbox) -> None:
        self.functions = {f.name: f for f in functions}
        self.inbox = inbox
        rules: list[Rule] = [
            Rule("/inbox", methods=["GET", "DELETE"], endpoint="inbox:list"),
            Rule("/inbox/<fmt>", methods=["POST"], endpoint="inbox:post"),
            Rule("/inbox/<fmt>/<channel>", methods=["POST"], endpoint="inbox:post"),
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
        self.routes += ["GET /inbox", "DELETE /inbox", "POST /inbox/{format}"]
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
        try:
            response = self.dispatch(request)
        except Exception:  # a bug here must still answer JSON; the traceback goes to the (redacted) log
            log.exception("unexpected error serving %s %s", request.method, _loggable_path(environ))
            response = _json(500, {"error": "internal_error", "message": "unexpected error; see the log"})
        log.info(
            "%s %s %d %d ms",
            request.method,
            _loggable_path(environ),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response(environ, start_response)

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
        if kind == "fn":
            return self.call_function(self.functions[name], request, values)
        if name == "post":
            return self.receive(request, values["fmt"], values.get("channel"))
        if request.method == "DELETE":
            return _json(200, {"cleared": self.inbox.clear()})
        items = self.inbox.newest_first()
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
            result = asyncio.run(_awaited(result))
        return _to_response(f.name, result)

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


async def _awaited(result: Any) -> Any:
    return await result


def _to_response(name: str, result: Any) -> Response:
    """The function's return value as the host would send it."""
    if isinstance(result, func.HttpResponse):
        headers = [(k, v) for k, v in result.headers.items() if k.lower() != "content-type"]
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


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's handler without its access log (it prints the query string, which may hold a token)."""

    timeout = IDLE_SECONDS

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # LocalFunctionApp logs each request itself

    def log_error(self, format: str, *args: Any) -> None:
        # Errors before a request is parsed ("Bad request syntax ('GET /x?token=...')") quote the raw line.
        text = re.sub(r"\?[^\s'\"]*", "?…", format % args if args else format)
        # An idle keep-alive connection reaching IDLE_SECONDS is routine, not a problem.
        level = logging.DEBUG if format.startswith("Request timed out") else logging.WARNING
        log.log(level, "%s: %s", self.address_string(), text)


def create_server(
    host: str, port: int, registered: Iterable[Any], inbox: Inbox | None = None
) -> tuple[BaseWSGIServer, LocalFunctionApp, list[str]]:
    """Bind a threaded server for the registered functions; also the app and the skipped notes.

    The socket is bound here, so ``server.server_port`` is known (``port=0`` picks a free one)
    before channels that point back at the inbox are configured.
    """
    functions, skipped = http_functions(registered)
    app = LocalFunctionApp(functions, route_prefix(), inbox or Inbox())
    server = make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
    return server, app, skipped


def load_function_app() -> Any:
    """``function_app.app``, imported from the project root whatever the current directory is."""
    import importlib
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("function_app").app
