"""One webhook request, from raw bytes to per-channel results. No HTTP framework in here.

The data walks one way: request -> source -> notification -> rules decide (a pure function of the
notification, the channels and what memory says) -> render only the channels that will be sent ->
the deliverer (claim, send, confirm) -> one ``ChannelResult`` per channel -> the answer, made in
one place (``results.summarise``).

``function_app.py`` (Azure) and the local server both build a ``Request`` and send back the
``Answer``; every outcome, including broken input and bugs of ours, is an Answer with a JSON body
and a ``request_id``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from translators import destinations, formats, guard, logs, people, render, rules, sources, state
from translators.deliverer import MINIMAL_TEMPLATE, Deliverer, Prepared
from translators.errors import BadBody, Ignored, NotFound, TranslatorError
from translators.formats import OutputInvalid, dumps
from translators.memory import Memory
from translators.model import Notification
from translators.render import TemplateFailure
from translators.results import ChannelResult, in_order, summarise
from translators.settings import Channel, Settings, channel_key
from translators.state import StoreUnavailable

if TYPE_CHECKING:
    from translators.outbox import OutboxStore

log = logs.logger("translators.pipeline")

DRY_RUN = "dry_run"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """Text that can be encoded, logged and stored: a lone surrogate (``"\\ud800"``) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


@dataclass(frozen=True)
class Request:
    source: str
    channels: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The query string's parameters in order, repeated ones included.
    query: Sequence[tuple[str, str]] = ()

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == name), "")

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def cleaned(self) -> Request:
        """The request with every text made safe once, here at the edge (see ``clean``)."""
        return Request(
            clean(self.source),
            clean(self.channels),
            self.body,
            {clean(k): clean(v) for k, v in self.headers.items()},
            tuple((clean(k), clean(v)) for k, v in self.query),
        )


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    def json(self) -> bytes:
        try:
            return dumps(self.body)
        except UnicodeEncodeError:  # a text nobody cleaned: never a reason not to answer
            return json.dumps(self.body, ensure_ascii=True, default=str).encode("ascii")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object with every text cleaned, or BadBody naming what is wrong with it."""
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
    except DuplicateKey as exc:
        raise BadBody(f"the request body is ambiguous JSON: {exc}", error="duplicate_key") from None
    except ValueError as exc:
        raise BadBody(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadBody("the request body nests too deeply") from None
    if guard.may_break_shape(raw):
        guard.check_shape(payload)
    if not isinstance(payload, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
        raise BadBody(f"the request body is {kind.get(type(payload), 'null')}; expected a JSON object")
    # A lone surrogate can only come from a \\uD8xx-\\uDFxx escape: look for one before walking.
    if _ESCAPED_SURROGATE.search(raw):
        cleaned: dict[str, Any] = _cleaned(payload)
        return cleaned
    return payload


_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: ``{"build_status": 2, "build_status": 1}`` is read
    as 1 by us and perhaps as 2 by whoever signed or checked it, so it is refused, not guessed."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key[:60]!r} appears twice in one object")
            seen.add(key)
    return found


#: What ``json.loads(text, parse_constant=..., object_pairs_hook=...)`` builds on every call, built once.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


#: Everything but the letters a-z, once a name is normalised: spaces, punctuation, NUL, brackets,
#: zero-width and other invisible characters.
_NOT_LETTERS = re.compile(r"[^a-z]+")


def _dry_run_like(name: str) -> bool:
    """Whether a parameter name reads as ``dry_run`` to a person: after Unicode normalisation
    (fullwidth letters), case, an ``amp;`` left by a URL copied out of HTML, and every character
    that is not a letter (``dry run``, ``dry.run``, `` dry_run``, ``dry_run%00``, ``dry_run[]``,
    ``dry_run.x``, ``dry_runs``)."""
    if name == DRY_RUN:
        return True
    folded = unicodedata.normalize("NFKC", name).casefold().strip()
    folded = folded.removeprefix("amp;")
    return _NOT_LETTERS.sub("", folded).startswith("dryrun")


def dry_run(query: Sequence[tuple[str, str]]) -> bool:
    """Whether the request asks for a dry run; BadBody for anything that only looks like it does.

    Only ``dry_run=1|true|yes|on`` (any case) is a dry run, and ``0|false|no|off`` plainly is not.
    A typo must not post to the real channel, so every other use of a dry-run-like parameter
    (no value, ``dry-run``, ``DRY_RUN``, an unknown value, two different values) is refused.
    """
    used = [(k, v) for k, v in query if _dry_run_like(k)]
    if not used:
        return False
    spelled = sorted({k for k, _ in used if k != DRY_RUN})
    values = {v.strip().lower() for _, v in used}
    accepted = "dry_run=1 (or true, yes, on) for a dry run; dry_run=0 (false, no, off) for a real one"
    if spelled:
        raise BadBody(
            f"unknown parameter {', '.join(map(repr, spelled))}; use {accepted}", error="invalid_dry_run"
        )
    if len(values) > 1:
        raise BadBody(
            f"dry_run is given more than once, with different values; use {accepted}", error="invalid_dry_run"
        )
    (value,) = values
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise BadBody(f"dry_run={value[:20]!r} is not a dry-run value; use {accepted}", error="invalid_dry_run")


def resolve_channels(settings: Settings, spec: str) -> tuple[list[Channel], list[ChannelResult]]:
    """``slack+teams`` -> the healthy channels in order (once each), and a result per broken one.

    404 listing the valid names for a channel that is not configured at all.
    """
    names = list(dict.fromkeys(channel_key(n) for n in spec.split("+") if n.strip()))
    unknown = [n for n in names if n not in settings.channels and n not in settings.channel_errors]
    if unknown or not names:
        valid = settings.known()
        hint = "" if valid else ": no channels are configured; set CHANNEL_<NAME>_URL (and _FORMAT)"
        raise NotFound(
            f"unknown channel {', '.join(repr(n) for n in unknown) or repr(spec)}{hint}",
            error="unknown_channel",
            valid=valid,
        )
    healthy = [settings.channels[n] for n in names if n in settings.channels]
    broken = [
        ChannelResult(
            channel=n, status="misconfigured", reason="configuration_error", error=settings.channel_errors[n]
        )
        for n in names
        if n in settings.channel_errors
    ]
    return healthy, broken


def render_checked(renderer: render.Renderer, n: Notification) -> tuple[str, dict[str, Any]]:
    """Render, fit to the format's limits and validate: (template name, body) or TemplateFailure.

    A body the destination would reject is a TemplateFailure naming the template, whose
    ``__cause__`` is the OutputInvalid with each field's path; so is a body whose shape fitting
    chokes on (the template made it). ``prepare`` falls back to the minimal message on it;
    ``python -m translators render/check`` and the preview report it instead.
    """
    fmt = renderer.fmt
    name, body = renderer.render(n)
    try:
        fmt.validate(body, fmt.fit_encoded(body))
    except OutputInvalid as exc:
        raise TemplateFailure(name, str(exc), file=renderer.shown(n.source, n.event)) from exc
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        raise TemplateFailure(name, message, file=renderer.shown(n.source, n.event)) from exc
    return name, body


def named(n: Notification, settings: Settings) -> Notification:
    """The app called as ``APP_NAMES`` says, if it says."""
    name = settings.app_name(n.source, n.app_key)
    return n.named(name) if name else n


def for_channel(channel: Channel, n: Notification, settings: Settings) -> Notification:
    """The notification as this channel gets it: with the mentions its settings ask for."""
    mentions = people.of_event(n.outcome, n.people, channel.mention, channel.notify, settings.people)
    return n.model_copy(update={"mentions": mentions}) if mentions else n


def prepare(
    channel: Channel, n: Notification, settings: Settings, update_only: rules.Skip | None = None
) -> Prepared:
    """Render with the channel's templates; on any template problem use the minimal built-in body.

    ``update_only``: the rules skipped this event, and it only updates the build's message where the
    channel's destination keeps one (translators/rules.py says why).
    """
    n = for_channel(channel, n, settings)
    fmt = formats.get(channel.format)
    assert fmt is not None, channel.format  # settings only admit known formats
    renderer = render.renderer_for(fmt, channel.templates, settings.templates_dir)
    try:
        name, body = render_checked(renderer, n)
        state = destinations.of(channel).state(channel, n, body, update_only)
        return Prepared(channel, fmt, name, body, n, state=state)
    except TemplateFailure as exc:
        problem = str(exc)
    log.warning(
        "template failed for channel %s, sending the minimal message instead: %s", channel.name, problem
    )
    body = fmt.minimal(n)
    fmt.validate(body)
    state = destinations.of(channel).state(channel, n, body, update_only)
    return Prepared(channel, fmt, MINIMAL_TEMPLATE, body, n, template_error=problem, state=state)


def handle(req: Request, settings: Settings, *, force: bool = False) -> Answer:
    """Answer one webhook POST. Never raises. ``force``: send even what memory says was delivered."""
    started = time.perf_counter()
    # 12 random hex digits, as uuid4().hex[:12] gives, for a fifth of its cost.
    request_id = os.urandom(6).hex()
    try:
        req = req.cleaned()
        answer = _handle(req, settings, request_id, force)
    except Exception:  # a bug of ours must still answer JSON, and must not leak a URL
        log.exception("unexpected error handling request %s", request_id)
        answer = internal_error(request_id)
    answer.body.setdefault("request_id", request_id)
    level = logging.INFO if answer.status < 500 else logging.WARNING
    if log.isEnabledFor(level):  # built only when the line is wanted
        logs.event(log, "request", _log_fields(req, answer, request_id, started), level)
    return answer


def internal_error(request_id: str) -> Answer:
    return Answer(
        500, {"error": "internal_error", "message": "unexpected error; see the log", "request_id": request_id}
    )


def _log_fields(req: Request, answer: Answer, request_id: str, started: float) -> dict[str, Any]:
    channel_results = answer.body.get("channels") or []
    return {
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
    }


def _handle(req: Request, settings: Settings, request_id: str, force: bool = False) -> Answer:
    try:
        headers = {k.lower(): v for k, v in req.headers.items()}
        source, payload = _admit(req, settings, headers)
        channels, broken = resolve_channels(settings, req.channels)
        dry = dry_run(req.query)
        if payload is None:
            payload = parse_body(req.body)
        if source is None:  # /api/auto/...: the payload (or a header) says who sent it
            source = sources.detect(payload, headers)
            sources.verify(source, settings.app, req.body, headers)
        result = source.translate(payload, headers)
        if isinstance(result, Ignored):
            body: dict[str, Any] = {"status": "ignored", "source": source.name, "reason": result.reason}
            if result.event:
                body["event"] = result.event
            return Answer(200, body)
        return _notify(
            result,
            channels,
            broken,
            settings,
            request_id,
            req.channels,
            dry=dry,
            force=force,
            enricher=sources.enricher(source),
        )
    except TranslatorError as exc:
        return Answer(exc.status, exc.body())


def _admit(
    req: Request, settings: Settings, headers: Mapping[str, str]
) -> tuple[sources.Source | None, dict[str, Any] | None]:
    """Who may post: the source named in the URL (None for ``auto``) once the request proved itself.

    A source whose signing secret is set is admitted by its signature alone (401 naming the header
    without it); any other request by ``WEBHOOK_TOKEN`` when that is set. Nothing about channels,
    settings or the body is said to a request that proved nothing. With ``auto`` and no token, only
    a signed source can admit the request, so the sender is recognised first (the parsed body is
    returned with it); a body that is not recognisable is then refused like a missing token.
    """
    app = settings.app
    token_ok = guard.token_ok(app.webhook_token, headers, req.param(guard.TOKEN_PARAM))
    source = sources.get(req.source)
    auto = source is None and req.source.lower() == sources.AUTO
    if not token_ok:
        vouched = sources.signed(app) if auto else frozenset()
        if not (auto and vouched) and not (source is not None and sources.signing_secret(source, app)):
            raise guard.token_refused()
    guard.check_size(app.max_body_bytes, req.body)
    settings.check()
    logs.register_secrets(settings.secrets())
    if source is not None:
        sources.verify(source, app, req.body, headers)
        return source, None
    if not auto:
        raise NotFound(
            f"unknown source {req.source!r}",
            error="unknown_source",
            valid=[*sorted(sources.registry()), sources.AUTO],
        )
    if token_ok:
        return None, None
    try:
        payload = parse_body(req.body)
        detected = sources.detect(payload, headers)
    except TranslatorError:
        raise guard.token_refused() from None
    if detected.name not in vouched:
        raise guard.token_refused()
    sources.verify(detected, app, req.body, headers)
    return detected, payload


def _notify(
    n: Notification,
    channels: Sequence[Channel],
    broken: Sequence[ChannelResult],
    settings: Settings,
    request_id: str,
    spec: str,
    *,
    dry: bool,
    force: bool = False,
    enricher: sources.Enriches | None = None,
) -> Answer:
    memory = Memory(settings.app)
    n = named(n, settings)  # APP_NAMES before the rules: a channel's APPS may name the app so
    outcome = rules.FINISHED.get(n.event)
    known, previous = True, None
    if outcome is not None and channels:
        known, previous = memory.previous(n)
        if previous is not None:
            n = n.model_copy(update={"previous_outcome": previous})
    if outcome is not None and not dry:
        # Recorded before anything is sent, whatever the channels decide: history does not depend
        # on who was listening.
        memory.record(n, outcome, n.finished_at or _now())
    decision = rules.decide(n, channels, previous, known, _posted(n, channels, memory))
    if n.opt_in and not decision.send and not broken:
        reason = f"{n.event} goes only to channels that ask for it in CHANNEL_<NAME>_EVENTS; none here does"
        return Answer(200, {"status": "ignored", "source": n.source, "event": n.event, "reason": reason})
    enrichment: str | None = None
    if decision.send:  # only what will be sent is completed and rendered
        if enricher is not None:
            done = enricher.enrich(n, settings.app)
            if done is not None:
                n, enrichment = done.notification, done.note
        n = named(n, settings)
    prepared = [prepare(c, n, settings, decision.update_only.get(c.name)) for c in decision.send]
    results: list[ChannelResult] = [
        ChannelResult(channel=c.name, format=c.format, status="skipped", reason=s.reason, message=s.message)
        for c, s in decision.skipped
    ]
    results += broken
    if dry:
        results += [_dry(p, memory) for p in prepared]
    else:
        from translators.delivery import DeliveryPolicy

        deliverer = Deliverer(
            memory,
            DeliveryPolicy.from_settings(settings.app),
            request_id,
            _outbox(settings),
            settings.app,
            force=force,
        )
        results += deliverer.deliver(n.event_id, prepared)
    names = [channel_key(name) for name in spec.split("+") if name.strip()]
    ordered = in_order(results, list(dict.fromkeys(names)))
    status, overall, message = summarise(ordered)
    body: dict[str, Any] = {"status": overall, "source": n.source, "event": n.event, "title": n.title}
    if overall == "failed":
        body["error"] = "delivery_failed"
    if overall == "misconfigured":
        body["error"] = "configuration_error"
    if message:
        body["message"] = message
    if n.previous_outcome:
        body["previous_outcome"] = n.previous_outcome
    if memory.problem:
        body["memory"] = f"unavailable: {memory.problem}"
    if enrichment:
        body["enrichment"] = enrichment
    body["channels"] = [r.as_dict() for r in ordered]
    return Answer(status, body)


def _posted(n: Notification, channels: Sequence[Channel], memory: Memory) -> frozenset[str]:
    """The channels whose destination keeps one message per build and has this build's already
    (memory is asked only for those)."""
    key = n.message_key
    if not key:
        return frozenset()
    return frozenset(
        c.name
        for c in channels
        if (dest := destinations.of(c)).keeps_one_message and dest.has_message(c, key, memory)
    )


def _dry(p: Prepared, memory: Memory) -> ChannelResult:
    """A dry run's result: the body, and what the destination would do with it now."""
    extra = destinations.of(p.channel).plan(p, memory)
    return p.result("dry_run", body=p.body, extra=extra) if extra else p.result("dry_run", body=p.body)


def _outbox(settings: Settings) -> OutboxStore | None:
    """The outbox beside memory, or None when its store cannot be opened (deliveries go on)."""
    from translators.outbox import open_outbox

    try:
        return open_outbox(settings.app)
    except StoreUnavailable as exc:
        log.warning("outbox unavailable (%s): failed deliveries cannot be kept", exc)
        return None


def _now() -> Any:
    from translators.state import now

    return now()


def health(settings: Settings) -> Answer:
    """Sources, channels (never URLs) and memory, and what is wrong: ``degraded`` (still 200) if anything."""
    memory = Memory(settings.app)
    unavailable = memory.probe()
    problems = [*settings.errors.values(), *settings.channel_errors.values()]
    if unavailable:
        problems.append(f"memory unavailable: {unavailable}")
    body: dict[str, Any] = {
        "status": "degraded" if problems else "ok",
        "sources": {name: s.label for name, s in sources.registry().items()}
        | {sources.AUTO: sources.AUTO_LABEL},
        "signatures": sources.signatures(settings.app),
        "channels": [c.public() for c in settings.channels.values()],
        "channel_errors": dict(settings.channel_errors),
        "formats": list(formats.FORMAT_NAMES),
        "memory": {**state.describe(settings.app), "available": unavailable is None},
    }
    outbox = _outbox(settings) if unavailable is None else None
    if outbox is not None:
        try:
            stats = outbox.stats()
        except StoreUnavailable as exc:
            problems.append(f"outbox unavailable: {exc}")
        else:
            body["outbox"] = stats.public()
            if stats.dead:
                listing = "`python -m translators outbox list --dead`"
                problems.append(f"{stats.dead} dead letter(s) in the outbox: see {listing}")
    body["status"] = "degraded" if problems else "ok"
    if settings.errors:
        body["setting_errors"] = dict(settings.errors)
    if settings.warnings:  # a misspelled setting name: worth saying, not worth "degraded"
        body["setting_warnings"] = dict(settings.warnings)
    if problems:
        body["problems"] = problems
    return Answer(200, body)
