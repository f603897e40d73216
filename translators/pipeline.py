"""One webhook request, from raw bytes to per-channel results. No HTTP framework in here.

``function_app.py`` (Azure) and the local server both build a ``Request`` and send back the
``Answer``; every outcome, including broken input, is an Answer with a JSON body.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from translators import config, formats, guard, logs, render, rules, sources
from translators.errors import BadBody, Ignored, NotFound, TranslatorError
from translators.formats import ChatFormat, OutputInvalid, dumps
from translators.model import Notification
from translators.render import TemplateFailure

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

log = logs.logger("translators.pipeline")

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Request:
    source: str
    channels: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == name), "")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    def json(self) -> bytes:
        return dumps(self.body)


@dataclass(frozen=True)
class Prepared:
    """A rendered, fitted and validated body for one channel."""

    channel: config.Channel
    fmt: ChatFormat
    template: str
    body: dict[str, Any]
    template_error: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel": self.channel.name,
            "format": self.fmt.name,
            "template": self.template,
        }
        if self.template_error:
            out["template_error"] = self.template_error
        return out


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or BadBody naming what is wrong with it."""
    if not raw or not raw.strip():
        raise BadBody("the request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadBody(f"the request body is not UTF-8 (byte {exc.start})") from None
    try:
        if text.startswith("\ufeff"):  # a second BOM: what json.loads says, word for word
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        payload = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BadBody(
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise BadBody(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadBody("the request body nests too deeply") from None
    if guard.may_break_shape(raw):
        guard.check_shape(payload)
    if not isinstance(payload, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
        raise BadBody(f"the request body is {kind.get(type(payload), 'null')}; expected a JSON object")
    return payload


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: What ``json.loads(text, parse_constant=...)`` builds on every call, built once.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def resolve_channels(settings: config.Settings, spec: str) -> list[config.Channel]:
    """``slack+teams`` -> the channels, in order, once each; 404 listing the valid names."""
    names = [config.channel_key(n) for n in spec.split("+") if n.strip()]
    unknown = [n for n in names if n not in settings.channels and n not in settings.channel_errors]
    if unknown or not names:
        raise NotFound(
            f"unknown channel {', '.join(repr(n) for n in unknown) or repr(spec)}",
            error="unknown_channel",
            valid=settings.known(),
        )
    return [settings.channel(n) for n in dict.fromkeys(names)]


def render_checked(renderer: render.Renderer, n: Notification) -> tuple[str, dict[str, Any]]:
    """Render, fit to the format's limits and validate: (template name, body) or TemplateFailure.

    A body the destination would reject is a TemplateFailure naming the template, whose
    ``__cause__`` is the OutputInvalid with each field's path. ``prepare`` falls back to the
    minimal message on it; ``python -m translators render/check`` report it instead.
    """
    fmt = renderer.fmt
    name, body = renderer.render(n)
    encoded = fmt.fit_encoded(body)
    try:
        fmt.validate(body, encoded)
    except OutputInvalid as exc:
        raise TemplateFailure(name, str(exc)) from exc
    return name, body


def prepare(channel: config.Channel, n: Notification, settings: config.Settings) -> Prepared:
    """Render with the channel's templates; on any template problem use the minimal built-in body."""
    fmt = formats.get(channel.format)
    assert fmt is not None, channel.format  # config only admits known formats
    renderer = render.renderer_for(fmt, channel.templates, settings.templates_dir)
    try:
        name, body = render_checked(renderer, n)
        return Prepared(channel, fmt, name, body)
    except TemplateFailure as exc:
        problem = str(exc)
    log.warning(
        "template failed for channel %s, sending the minimal message instead: %s", channel.name, problem
    )
    body = fmt.minimal(n)
    fmt.validate(body)
    return Prepared(channel, fmt, "(built-in minimal)", body, template_error=problem)


_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        # Imported here: only a fan-out to several channels needs it, and a cold start should not.
        from concurrent.futures import ThreadPoolExecutor

        _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deliver")
    return _executor


def deliver_all(
    prepared: list[Prepared], env: Mapping[str, str], request_id: str = ""
) -> list[dict[str, Any]]:
    from translators import delivery  # requests is imported only when something is sent

    policy = delivery.DeliveryPolicy.from_env(env)

    def one(p: Prepared) -> dict[str, Any]:
        # delivery writes one structured line per attempt, carrying this context.
        context = {"request_id": request_id, "channel": p.channel.name, "format": p.fmt.name}
        result = delivery.deliver(
            p.channel.url.get_secret_value(),
            dumps(p.body),
            is_success=p.fmt.is_success,
            policy=policy,
            context=context,
        )
        outcome = "delivered" if result.ok else "failed"
        answer = {
            **p.describe(),
            "status": outcome,
            "http_status": result.status,
            "attempts": result.attempts,
        }
        if result.error:
            answer["error"] = result.error
        if result.retry_after is not None:
            answer["retry_after"] = result.retry_after
        return answer | {"ms": result.elapsed_ms}

    if len(prepared) == 1:
        return [one(prepared[0])]
    return list(_pool().map(one, prepared))


def handle(req: Request, env: Mapping[str, str] | None = None) -> Answer:
    """Answer one webhook POST. Never raises."""
    env = os.environ if env is None else env
    started = time.perf_counter()
    # 12 random hex digits, as uuid4().hex[:12] gives, for a fifth of its cost.
    request_id = os.urandom(6).hex()
    answer = _handle(req, env, request_id)
    answer.body.setdefault("request_id", request_id)
    level = logging.INFO if answer.status < 500 else logging.WARNING
    if not log.isEnabledFor(level):  # the line is not wanted: do not gather its fields either
        return answer
    channel_results = answer.body.get("channels") or []
    logs.event(
        log,
        "request",
        {
            "request_id": request_id,
            "source": answer.body.get("source") or req.source,
            "event": answer.body.get("event"),
            "channels": req.channels,
            "status": answer.status,
            "outcome": answer.body.get("status") or answer.body.get("error"),
            "channel_outcomes": {
                c.get("channel"): c.get("status") for c in channel_results if isinstance(c, dict)
            },
            "attempts": sum(c.get("attempts") or 0 for c in channel_results if isinstance(c, dict)),
            "ms": round((time.perf_counter() - started) * 1000),
        },
        level,
    )
    return answer


def _handle(req: Request, env: Mapping[str, str], request_id: str) -> Answer:
    try:
        guard.check_token(env, req.headers, req.query)
        guard.check_size(env, req.body)
        settings = config.load(env)
        logs.register_secrets(settings.secrets())
        source = sources.get(req.source)
        if source is None and req.source.lower() != sources.AUTO:
            raise NotFound(
                f"unknown source {req.source!r}",
                error="unknown_source",
                valid=[*sorted(sources.registry()), sources.AUTO],
            )
        channels = resolve_channels(settings, req.channels)
        payload = parse_body(req.body)
        headers = {k.lower(): v for k, v in req.headers.items()}
        if source is None:  # /api/auto/...: the payload (or a header) says who sent it
            source = sources.detect(payload, headers)
        result = source.translate(payload, headers)
        if isinstance(result, Ignored):
            body: dict[str, Any] = {"status": "ignored", "source": source.name, "reason": result.reason}
            if result.event:
                body["event"] = result.event
            return Answer(200, body)
        dry_run = req.query.get("dry_run", "").strip().lower() in TRUE_WORDS
        # Channel rules and memory (translators/rules.py): filters, build modes, duplicates.
        plan = rules.plan(result, channels, env, dry_run=dry_run)
        n = plan.notification
        prepared = [prepare(c, n, settings) for c in plan.send]
        summary = {"source": source.name, "event": n.event, "title": n.title, **plan.notes()}
        if dry_run:
            rendered = [{**p.describe(), "body": p.body} for p in prepared]
            return Answer(200, {"status": "dry_run", **summary, "channels": plan.merge(rendered)})
        results = plan.deliver(prepared, lambda ready: deliver_all(ready, env, request_id))
        summary |= plan.notes()  # memory may have failed while claiming
        failed = [r for r in results if r["status"] == "failed"]
        if failed:
            message = f"{len(failed)} of {len(results)} channel(s) failed after retries"
            return Answer(
                502,
                {
                    "status": "failed",
                    "error": "delivery_failed",
                    "message": message,
                    **summary,
                    "channels": results,
                },
            )
        if rules.all_skipped(results):
            message = "every channel skipped this event (see channels[].reason)"
            return Answer(200, {"status": "skipped", "message": message, **summary, "channels": results})
        return Answer(200, {"status": "delivered", **summary, "channels": results})
    except TranslatorError as exc:
        return Answer(exc.status, exc.body())
    except Exception:  # a bug of ours must still answer JSON, and must not leak a URL
        log.exception("unexpected error handling request %s", request_id)
        return Answer(
            500,
            {"error": "internal_error", "message": "unexpected error; see the log", "request_id": request_id},
        )


def health(env: Mapping[str, str] | None = None) -> Answer:
    settings = config.load(os.environ if env is None else env)
    return Answer(
        200,
        {
            "status": "ok",
            "sources": {name: s.label for name, s in sources.registry().items()}
            | {sources.AUTO: sources.AUTO_LABEL},
            "channels": [c.public() for c in settings.channels.values()],
            "channel_errors": dict(settings.channel_errors),  # a copy: config.load caches settings
            "formats": sorted(formats.registry()),
        },
    )
