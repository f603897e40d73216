"""``python -m translators``: run the function app locally and work on templates, without Azure
(each command's ``--help``, and docs/local.md, say what it does).

Exit status: 0 all good; 1 what was checked or sent failed (a template error, a failed delivery);
2 bad input (arguments, files, payloads). Everything heavy is imported inside the command that
needs it, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from translators.render import TemplateFailure
    from translators.sources import Source

FORMATS_HELP = "slack, teams (Adaptive Card in the Workflows envelope) or teams-messagecard"
DEMO_SAMPLE = "bitrise/build-failed"


class UsageError(Exception):
    """Bad input from the person at the terminal: printed as is, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _out(text: str = "", *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _dumps(value: Any) -> str:
    # Emoji and accents as themselves where the terminal takes UTF-8, escaped where it does not.
    encoding = (sys.stdout.encoding or "").lower().replace("-", "")
    return json.dumps(value, indent=2, ensure_ascii=encoding != "utf8")


def _settings(given: str | None) -> tuple[dict[str, str], Path | None, list[str]]:
    """The app settings a function would see: the Values of local.settings.json (the one given, else
    the one here, if any), the environment winning; that file; the names the environment kept."""
    from translators import localsettings
    from translators.settings import environ

    try:
        path = localsettings.find(given)
        values = localsettings.read_values(path) if path else {}
    except localsettings.SettingsFileError as exc:
        raise UsageError(str(exc)) from None
    environment = environ()
    return localsettings.merged(values, environment), path, sorted(k for k in values if k in environment)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


@dataclass(frozen=True)
class Payload:
    label: str
    raw: bytes
    #: The headers its platform sends with it, when it is a bundled sample.
    headers: dict[str, str] = field(default_factory=dict)


def _read_payload(arg: str) -> Payload:
    """A file, ``-`` for standard input, or the id of a bundled sample (``bitrise/build-failed``)."""
    from translators import samples

    if arg == "-":
        return Payload("standard input", sys.stdin.buffer.read())
    path = Path(arg).expanduser()
    if path.is_file():
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {arg}: {exc.strerror or exc}") from None
        resolved = path.resolve()
        sample = next((s for s in samples.all_samples() if s.path == resolved), None)
        return Payload(arg, raw, dict(sample.headers) if sample else {})
    if path.exists():
        raise UsageError(f"{arg} is not a file")
    try:
        sample = samples.get(arg)
    except KeyError:
        raise UsageError(
            f"no such file: {arg} (nor a bundled sample id; `python -m translators samples` lists them)"
        ) from None
    return Payload(sample.id, sample.body(), dict(sample.headers))


@contextlib.contextmanager
def _refused(label: str) -> Iterator[None]:
    """What the function would refuse in the payload ``label`` names: a UsageError saying why,
    field by field."""
    from translators.errors import TranslatorError

    try:
        yield
    except TranslatorError as exc:
        fields = [f"  {e.path}: {e.message}" for e in getattr(exc, "errors", ())]
        raise UsageError("\n".join([f"{label}: {exc.message}", *fields])) from None


def _sender(
    name: str, payload: Payload, given: Sequence[tuple[str, str]]
) -> tuple[Source, dict[str, Any], dict[str, str]]:
    """The source (named, or ``auto``), the parsed payload, and the headers sent: the sample's
    own, overridden (case-insensitively) by those given with -H."""
    from translators import pipeline, sources

    merged = {k.lower(): (k, v) for k, v in payload.headers.items()}
    merged.update({k.lower(): (k, v) for k, v in given})
    source = sources.get(name)
    if source is None and name.lower() != sources.AUTO:
        raise UsageError(f"unknown source {name!r}; valid: {', '.join([*sources.registry(), sources.AUTO])}")
    with _refused(payload.label):
        body = pipeline.parse_body(payload.raw)
        if source is None:  # headers as the pipeline hands them to sources
            lowered = {k: v for k, (_, v) in merged.items()}
            source = sources.detect(body, lowered, name_it="name the source (SOURCE)")
        return source, body, dict(merged.values())


def _templates_dir(given: str | None, env: Mapping[str, str]) -> str | None:
    """``--templates`` (relative to the current directory, as any path on a command line), else
    ``TEMPLATES_DIR`` from the settings (relative to the app's folder); None: the built-in ones only."""
    from translators import settings

    if given:
        folder = Path(given).expanduser().resolve()
        if not folder.is_dir():
            raise UsageError(f"no template folder at {given}")
        return str(folder)
    loaded = settings.load(env)
    if "TEMPLATES_DIR" in loaded.errors:
        raise UsageError(loaded.errors["TEMPLATES_DIR"])
    return loaded.templates_dir


def _said(loaded: Any) -> list[str]:
    """What the settings say is wrong: broken channels, invalid settings, then warnings."""
    return [
        *(f"BROKEN {reason}" for reason in loaded.channel_errors.values()),
        *(f"SETTING {reason}" for reason in loaded.errors.values()),
        *(f"WARNING {note}" for note in loaded.warnings.values()),
    ]


def _table(heading: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last one, free text, is not padded."""
    widths = [max(len(row[i]) for row in [heading, *rows]) for i in range(len(heading) - 1)]
    for row in [heading, *rows]:
        _out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _shown_path(path: Path) -> str:
    """Relative to the current directory when inside it (shorter to read and to click)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class Problem:
    """One template failure, with every (sample, format) that ran into it."""

    where: str
    message: str
    details: list[str]
    cases: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"FAIL {self.where}: {self.message}", *(f"     {d}" for d in self.details)]
        if self.cases:
            shown = ", ".join(self.cases[:4]) + (
                f", … (+{len(self.cases) - 4} more)" if len(self.cases) > 4 else ""
            )
            out.append(f"     hit by {len(self.cases)}: {shown}")
        return out


def _problem(exc: TemplateFailure) -> Problem:
    """Where (template file and line) and what, with a validation failure's field paths one per line."""
    from translators.formats import OutputInvalid

    cause = exc.__cause__
    if not isinstance(cause, OutputInvalid):
        return Problem(exc.where, exc.message, [])
    n = len(cause.errors)
    message = f"renders a {cause.format_name} body the destination would reject ({n} problem{'s' * (n != 1)})"
    return Problem(exc.where, message, [f"{e.path}: {e.message}" for e in cause.errors])


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_render(args: argparse.Namespace) -> int:
    from translators import formats, pipeline, render
    from translators.errors import Ignored
    from translators.render import TemplateFailure

    env = _settings(args.settings)[0]
    fmt = formats.get(args.format)
    if fmt is None:
        raise UsageError(f"unknown format {args.format!r}; valid: {', '.join(formats.registry())}")
    templates = _templates_dir(args.templates, env)
    payload = _read_payload(args.payload)
    source, body, headers = _sender(args.source, payload, args.header)
    with _refused(payload.label):
        n = source.translate(body, {k.lower(): v for k, v in headers.items()})
    if isinstance(n, Ignored):
        hint = "" if headers else " (does the platform send a header with it? pass it with -H 'Name: value')"
        raise UsageError(
            f"{source.label} ignores this payload, so there is nothing to render: {n.reason}{hint}"
        )
    renderer = render.renderer_for(fmt, None, templates)
    try:
        _, rendered = pipeline.render_checked(renderer, n)
    except TemplateFailure as exc:
        _out("\n".join(_problem(exc).lines()), err=True)
        return 1
    _out(_dumps(rendered))
    _out(f"{source.name} {n.event} -> {fmt.name}: {renderer.shown(n.source, n.event)}", err=True)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Every sample through every format, for every set of template folders the settings use."""
    from translators import formats, model, render, settings, sources

    env = _settings(args.settings)[0]
    loaded = settings.load(env)
    if args.templates:
        given = _templates_dir(args.templates, env)
        sets = [render.TemplateSet("given", f"--templates {given}", render.search_path(None, given))]
    else:
        for note in loaded.warnings.values():
            _out(f"WARNING {note}")
        # A template folder that is not there is a configuration error, as the settings say it.
        missing = [
            reason
            for name, reason in [*loaded.errors.items(), *loaded.channel_errors.items()]
            if name == "TEMPLATES_DIR" or "_TEMPLATES names no folder" in reason
        ]
        if missing:
            raise UsageError("\n".join(missing))
        sets = render.template_sets(loaded)
    failed = False
    for template_set in sets:
        if len(sets) > 1 or template_set.key != "builtin":
            _out(f"== {template_set.label}")
        failed |= _check_set(template_set.dirs) > 0
    # Files in the user's folders (each once, whichever sets share it) that no lookup would ever use.
    valid = render.lookup_names(sources.registry(), model.EVENTS, formats.FORMAT_NAMES)
    folders = dict.fromkeys(d for s in sets for d in s.dirs if d != render.BUILTIN_TEMPLATES)
    unused = [
        (folder / name, nearest) for folder in folders for name, nearest in render.unused_files(folder, valid)
    ]
    for path, nearest in unused:
        hint = f"; did you mean {nearest}?" if nearest else ""
        _out(f"WARN {_shown_path(path)}: no lookup uses this name, so it is never used{hint}")
    if not args.templates:
        _routes(loaded)
    if unused and args.strict:
        _out("--strict: files that are never used count as problems")
        return 1
    return 1 if failed else 0


def _routes(loaded: Any) -> None:
    """Which bundled samples each channel with filters takes, and why it skips the others."""
    from collections import Counter

    from translators import pipeline, rules, samples
    from translators.model import Notification

    filtered = [c for c in loaded.channels.values() if c.events or c.branches or c.apps]
    if not filtered:
        return
    found = [(s.id, samples.notification(s)) for s in samples.all_samples()]
    events = [(sid, pipeline.named(n, loaded)) for sid, n in found if isinstance(n, Notification)]
    _out(f"== what each channel takes of the {len(events)} bundled sample events")
    for channel in filtered:
        taken: list[str] = []
        reasons: Counter[str] = Counter()
        for sample_id, n in events:
            # known=False: the build modes depend on memory, not on the samples; filters are shown.
            skip = rules.skip_reason(channel, n, None, False)
            if skip is None:
                taken.append(sample_id)
            else:
                reasons[skip.reason] += 1
        shown = ", ".join(taken[:6]) + (f" and {len(taken) - 6} more" if len(taken) > 6 else "")
        why = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        _out(
            f"channel {channel.name}: takes {len(taken)}"
            + (f" ({shown})" if taken else "")
            + (f"; skips {sum(reasons.values())}: {why}" if reasons else "")
        )


def _check_set(dirs: Sequence[Path]) -> int:
    """Render every sample in every format with ``dirs``, as the preview draws them (the mapped
    variants too: app names, mentions); print problems; return how many."""
    from translators import preview, render
    from translators.render import TemplateFailure

    problems: dict[tuple[str, str, tuple[str, ...]], Problem] = {}

    def record(problem: Problem, case: str) -> None:
        key = (problem.where, problem.message, tuple(problem.details))
        problems.setdefault(key, problem).cases.append(case)

    rows = preview.samples_drawn(dirs)
    drawn = [d for _, _, row in rows for d in row]
    for d in drawn:
        if d.failure is not None:
            record(_problem(d.failure), f"{d.sample} -> {d.format}")
    renderers = {r.fmt.name: r for r in preview.renderers(dirs)}
    # Templates no sample reaches (an event without a sample, a typo in a name) must at least compile.
    for name in render.names(dirs):
        fmt_name = name.split("/", 1)[0]
        if fmt_name not in renderers:
            continue  # named by unused_files, with the nearest valid name
        try:
            renderers[fmt_name].compile(name)
        except TemplateFailure as exc:
            record(_problem(exc), f"compiling {name}")

    searched = ", ".join(_shown_path(d) if d != render.BUILTIN_TEMPLATES else "built-in" for d in dirs)
    _out(f"templates: {searched}")
    bodies, good = len(drawn), sum(d.failure is None for d in drawn)
    _out(
        f"rendered {len(rows)} samples x {len(renderers)} formats ({bodies} bodies), compiled every template"
    )
    if problems:
        for problem in problems.values():
            _out()
            _out("\n".join(problem.lines()))
        _out()
        count = len(problems)
        _out(f"{count} problem{'s' if count != 1 else ''}; {good} of {bodies} bodies rendered and valid")
        return count
    _out(f"OK: all {bodies} bodies rendered and valid")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from translators import pipeline, settings, sources

    env = _settings(args.settings)[0]
    # WEBHOOK_TOKEN guards the public URL; whoever runs this holds the settings already.
    env.pop("WEBHOOK_TOKEN", None)
    payload = _read_payload(args.payload)
    # The payload itself is the function's to judge, as it would be posted: only its source is needed.
    source, _, headers = _sender(args.source, payload, args.header)
    query = (("dry_run", "1"),) if args.dry_run else ()
    loaded = settings.load(env)
    # Likewise a source's signing secret: sign the body as the platform would, unless -H gave one.
    how, secret = sources.signing(source), sources.signing_secret(source, loaded.app)
    if how is not None and secret is not None and not any(k.lower() == how.header for k in headers):
        headers[how.header] = how.sign(secret, payload.raw)
    request = pipeline.Request(source.name, args.channel, payload.raw, headers, query)
    answer = pipeline.handle(request, loaded, force=args.force)
    _out(_dumps(answer.body))
    if answer.status >= 400:
        _out(f"error: {answer.body.get('message')}", err=True)
    if answer.body.get("status") == "skipped" and any(
        c.get("reason") == "duplicate" for c in answer.body.get("channels", [])
    ):
        _out("already delivered to that channel; --force sends it again", err=True)
    broken = [c for c in answer.body.get("channels", []) if c.get("template_error")]
    for channel in broken:
        _out(
            f"channel {channel.get('channel')}: the template failed, so the minimal message was"
            f" {'rendered' if args.dry_run else 'sent'} instead: {channel['template_error']}",
            err=True,
        )
    if answer.status == 200:
        return 1 if broken else 0
    return 2 if answer.status in (400, 404, 413, 422) else 1


def cmd_samples(args: argparse.Namespace) -> int:
    from translators import samples
    from translators.errors import Ignored

    rows: list[dict[str, Any]] = []
    for sample in samples.all_samples():  # each a valid payload: tests/test_golden.py renders them all
        result = samples.notification(sample)
        if isinstance(result, Ignored):
            event, app = f"(ignored: {result.reason})", ""
        else:  # and the app id APP_NAMES names its app by
            event, app = result.event, f"{sample.source}:{result.app_key}" if result.app_key else ""
        rows.append(
            {
                "id": sample.id,
                "source": sample.source,
                "event": event,
                "app": app,
                "headers": sample.headers,
                "path": _shown_path(sample.path),
            }
        )
    if args.json:
        _out(_dumps(rows))
        return 0
    table = [
        (r["id"], r["source"], r["event"], r["app"], ", ".join(f"{k}: {v}" for k, v in r["headers"].items()))
        for r in rows
    ]
    _table(("ID", "SOURCE", "EVENT", "APP", "HEADERS"), table)
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    from translators import settings, state
    from translators.state import StoreUnavailable

    if args.action is None:
        raise UsageError("memory: say what to do: the one action is `memory clear` (--yes: do not ask)")
    loaded = settings.load(_settings(args.settings)[0])
    where = state.backend(loaded.app)
    if where == "sqlite":
        try:
            where += f" ({_shown_path(state.sqlite_path(loaded.app))})"
        except StoreUnavailable as exc:
            _out(f"memory unavailable: {exc}", err=True)
            return 1
    else:
        where += " (Table Storage)"
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("memory clear forgets every delivery and build outcome: confirm with --yes")
        _out(f"This forgets every delivery and build outcome in {where}: an event posted again will be")
        answer = input("sent again, and after-change build modes start over. Type 'clear' to go on: ")
        if answer.strip() != "clear":
            _out("nothing was cleared")
            return 1
    try:
        count = state.open_store(loaded.app).clear()
    except StoreUnavailable as exc:
        _out(f"memory unavailable: {exc}", err=True)
        return 1
    _out(f"cleared {count} record{'s' if count != 1 else ''} from {where}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from translators import settings

    if args.markdown:
        _out(settings.documentation().rstrip("\n"))
        return 0
    loaded = settings.load(_settings(args.settings)[0])
    for name, channel in loaded.channels.items():
        rules = ", ".join(f"{k}={v}" for k, v in channel.public().items() if k not in ("name", "format"))
        _out(f"channel {name}: {channel.format}" + (f" ({rules})" if rules else ""))
    for line in _said(loaded):
        _out(line)
    if not loaded.channels and not loaded.channel_errors:
        _out("no channels: set CHANNEL_<NAME>_URL (see docs/configuration.md)")
    return 1 if loaded.errors or loaded.channel_errors else 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from translators import admin, settings

    if args.action is None:
        raise UsageError(
            "outbox: say what to do: `outbox list` (--dead for the dead letters), `outbox replay ID...`"
            " (or --dead for every dead letter), or `outbox drop ID...`"
        )
    loaded = settings.load(_settings(args.settings)[0])
    if args.action == "list":
        answer = admin.listing(loaded, dead=args.dead)
    elif args.action == "replay":
        if not args.ids and not args.dead:
            raise UsageError(
                "name the entries to replay (IDs from `outbox list --dead`), or give --dead for all"
            )
        answer = admin.replay(loaded, None if args.dead and not args.ids else args.ids)
    else:
        if not args.ids:
            raise UsageError("name the entries to drop (IDs from `outbox list`)")
        answer = admin.drop(loaded, args.ids)
    if args.json or args.action != "list" or answer.status != 200:
        _out(_dumps(answer.body))
    else:
        _out_listing(answer.body)
    return 0 if answer.status == 200 else 1


def _out_listing(body: dict[str, Any]) -> None:
    counts = body["outbox"]
    oldest = counts["oldest_age_seconds"]
    _out(
        f"{counts['queued']} queued, {counts['dead']} dead"
        + (f"; the oldest queued is {oldest} s old" if oldest is not None else "")
    )
    rows = [
        (
            e["id"],
            e["channel"],
            e["event"] or "",
            str(e["tries"]),
            str(e["attempts"]),
            e["next_attempt_at"] or "dead",
            f"{e['age_seconds']} s",
            (e["dead_reason"] or e["last_error"] or "")[:80],
        )
        for e in body["entries"]
    ]
    # TRIES: the delivery's tries (its request's, then each outbox pass); ATTEMPTS: the HTTP requests
    # they made, summed (an answer's `attempts` counts those of its one try).
    _table(("ID", "CHANNEL", "EVENT", "TRIES", "ATTEMPTS", "NEXT", "AGE", "LAST ERROR"), rows)


#: ``serve``'s workers by default: one per CPU it may use, up to this (its threads do the waiting).
MAX_DEFAULT_WORKERS = 4
DEFAULT_WORKERS = min(os.process_cpu_count() or 1, MAX_DEFAULT_WORKERS) if hasattr(os, "fork") else 1


def cmd_serve(args: argparse.Namespace) -> int:
    import errno
    import re
    import tempfile

    if args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if args.workers > 1 and not hasattr(os, "fork"):
        raise UsageError("--workers needs fork (gunicorn), which this system lacks; use --workers 1")
    from translators import formats, host, server, settings, state

    host.log_to_stderr(args.log_level.upper(), pid=args.workers > 1)
    merged, path, kept = _settings(args.settings)
    try:
        sock, inbox_sock = host.listen(args.host, args.port), host.listen("127.0.0.1", 0)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            taken = "is in use" if exc.errno == errno.EADDRINUSE else "may not be used by this user"
            raise UsageError(f"port {args.port} {taken}; try `make run PORT={args.port + 1}`") from None
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    # The inbox starts empty on every run, and so does the memory of what was delivered to it
    # (otherwise a sample posted in an earlier run would now be skipped as a duplicate).
    scratch = tempfile.TemporaryDirectory(prefix="translators-serve-")
    try:
        # get_functions() may be called only once per FunctionApp: this is that call.
        app, skipped = server.create_app(server.load_function_app().get_functions())
    except server.RouteError as exc:
        scratch.cleanup()
        raise UsageError(str(exc)) from None
    base = f"http://{_url_host(args.host)}:{sock.getsockname()[1]}"
    inbox_base = f"http://127.0.0.1:{inbox_sock.getsockname()[1]}"
    if args.workers > 1:  # a request for the inbox reaches any worker: they keep one together
        app.inbox = server.SharedInbox(Path(scratch.name, "inbox.db"))
    configured = any(
        re.fullmatch(r"CHANNEL_.+_URL", key, re.IGNORECASE) and value.strip() for key, value in merged.items()
    )
    if not configured:
        # The embedded default: the real delivery path, with the server's own inbox as the destination.
        for fmt in formats.FORMAT_NAMES:
            key = settings.channel_env(fmt)
            merged[f"{key}_URL"] = server.inbox_url(inbox_base, fmt)
            merged[f"{key}_FORMAT"] = fmt
            merged.setdefault(f"{key}_RATE", "50")  # the inbox has no rate limit to respect
        if not merged.get("STATE_STORE", "").strip():
            merged["STATE_STORE"] = f"sqlite://{Path(scratch.name, 'state.db').as_posix()}"
    # The functions read their settings from the environment, as on Azure: give them these.
    settings.publish(merged)
    loaded = settings.from_environ()
    # A stop waits for the calls in progress to finish their deliveries (and confirm them).
    grace = loaded.app.delivery_deadline_seconds + server.STOP_SECONDS
    _out("\n".join(_banner(args, base, path, kept, app.routes, skipped, configured, loaded)))
    host.raise_open_files_limit()
    try:
        if args.workers > 1:
            from translators import workers

            return workers.run_gunicorn(app, sock, inbox_sock, args.workers, grace, args.log_level)
        from translators import drainer

        host.serve_in_thread(app, inbox_sock, threads=host.INBOX_THREADS)
        draining, stop_draining = drainer.start(settings.from_environ)
        try:
            host.run_waitress(app, sock, grace)
        finally:
            stop_draining.set()
            draining.join(timeout=grace)  # an entry being sent is settled before the process ends
        return 0
    finally:
        state.close_all()  # the memory's files, before their scratch folder goes
        scratch.cleanup()
        _out("stopped")


def _banner(
    args: argparse.Namespace,
    base: str,
    path: Path | None,
    kept: Sequence[str],
    routes: Sequence[str],
    skipped: Sequence[str],
    configured: bool,
    loaded: Any,
) -> list[str]:
    """What ``serve`` prints when it starts: where, what, which channels, what is wrong, how to try."""
    from translators import host, server

    channels = list(loaded.channels)
    lines = [f"Serving function_app on {base} (Ctrl+C to stop)"]
    if path:
        lines.append(
            f"settings: {_shown_path(path)}" + (f" (environment kept for {', '.join(kept)})" if kept else "")
        )
    lines += [f"  {route.replace(' /', f' {base}/', 1)}" for route in routes]
    lines += [f"  not served: {note}" for note in skipped]
    if configured:
        lines.append(f"channels: {', '.join(channels) or '(none usable)'}")
    else:
        lines.append(f"channels: {', '.join(channels)} -> the local inbox (no CHANNEL_*_URL is configured)")
    lines += [f"  {line}" for line in _said(loaded)]
    lines += [f"  WARNING {note}" for note in host.dropped_signatures(loaded.app)]
    if not _loopback(args.host) and loaded.app.webhook_token is None:
        lines.append(
            f"  WARNING listening on {args.host or 'every address'} with no WEBHOOK_TOKEN: anyone who"
            " can reach this machine can post to your channels and act on the outbox; set"
            " WEBHOOK_TOKEN, or serve on 127.0.0.1 (the default)"
        )
    lines += _try_lines(
        base, server.route_prefix(), channels, inbox=not configured, token=loaded.app.webhook_token
    )
    lines.append(f"Preview every message: {base}/preview")
    if args.workers > 1:
        lines.append(f"workers: {args.workers} processes (gunicorn) (--workers 1 for one)")
    return lines


def _loopback(host: str) -> bool:
    """Whether only this machine can reach a server bound to ``host``."""
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """How to reach a server bound to ``host`` from this machine."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _try_lines(base: str, prefix: str, channels: Sequence[str], *, inbox: bool, token: object) -> list[str]:
    """A ready-to-paste curl line posting a bundled sample, and where to look at the result."""
    import shlex

    from translators import samples

    if not channels:
        return []
    sample = samples.get(DEMO_SAMPLE)
    headers = " ".join(f"-H {shlex.quote(f'{k}: {v}')}" for k, v in sample.headers.items())
    api = "/".join(p for p in (base, prefix.strip("/"), sample.source, "+".join(channels)) if p)
    post = f"curl -s -X POST {headers} --data-binary {shlex.quote('@' + _shown_path(sample.path))} {api}"
    lines = ["Try:", f"  {' '.join(post.split())}"]
    if inbox:
        lines.append(f"  curl -s {base}/inbox")
    if token is not None:
        lines.append("  (WEBHOOK_TOKEN is set: add -H 'X-Webhook-Token: <the token>')")
    return lines


# ---------------------------------------------------------------------------------------------
# Arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m translators",
        description="Run the webhook translator locally and work on its templates, without Azure.",
        epilog="Exit status: 0 fine, 1 a check or delivery failed, 2 bad input.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument(
        "--settings",
        metavar="FILE",
        help="local.settings.json whose Values to use (default: the one in the current directory, if any); "
        "environment variables win over it",
    )
    headers = argparse.ArgumentParser(add_help=False)
    headers.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header the platform sends (repeatable); bundled samples bring their own",
    )
    templates = argparse.ArgumentParser(add_help=False)
    templates.add_argument(
        "--templates",
        metavar="DIR",
        help="a template folder searched before the built-in one (default: TEMPLATES_DIR)",
    )
    payload_help = (
        "the request body: a JSON file, - for standard input, or a bundled sample id (see `samples`)"
    )
    source_help = "the platform (bitrise, appcenter, ...), or auto to tell it from the payload"

    serve = commands.add_parser(
        "serve",
        parents=[settings],
        help="serve the function app's HTTP functions and a local inbox",
        description="Serve the functions of function_app.py on their /api/... routes, as `func start` does, "
        "without Azure Functions Core Tools. With no CHANNEL_*_URL configured, channels slack, teams and "
        "teams-messagecard deliver to the server's own inbox: GET /inbox lists what arrived.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=7071, help="port (default: 7071, as func start; 0 picks one)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default: info)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="processes serving the port under gunicorn (1: waitress alone), each with its own threads;"
        f" they share memory, the outbox and the inbox (default: the CPUs, at most"
        f" {MAX_DEFAULT_WORKERS}; here {DEFAULT_WORKERS})",
    )
    serve.set_defaults(handler=cmd_serve)

    render = commands.add_parser(
        "render",
        parents=[settings, headers, templates],
        help="print the body one payload becomes in one format",
        description="Translate a payload and render it with the templates, as a channel of that format "
        "would get it (shortened to the format's limits and validated). A template error is reported with "
        "its file and line (exit 1) instead of falling back to the minimal message.",
    )
    render.add_argument("source", metavar="SOURCE", help=source_help)
    render.add_argument("format", metavar="FORMAT", help=FORMATS_HELP)
    render.add_argument("payload", metavar="PAYLOAD", help=payload_help)
    render.set_defaults(handler=cmd_render)

    check = commands.add_parser(
        "check",
        parents=[settings, templates],
        help="render every bundled sample through every format and validate",
        description="Render every bundled sample through every format with every set of template folders "
        "the settings use (built-in, TEMPLATES_DIR, each channel's own folder, each labelled), validate each "
        "body as its destination would, compile every template file, and list each problem with its "
        "template file and line; warn about files no lookup uses, with the nearest valid name. Exit 1 on any "
        "problem (and on such files with --strict).",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="also fail (exit 1) on files in a template folder that are never used",
    )
    check.set_defaults(handler=cmd_check)

    send = commands.add_parser(
        "send",
        parents=[settings, headers],
        help="translate a payload and deliver it through a configured channel",
        description="Translate a payload and deliver it to one or more (+-joined) configured channels "
        "(CHANNEL_<NAME>_URL in the environment or local.settings.json), then print the JSON answer the "
        "function would give. Exit 1 when a delivery fails.",
    )
    send.add_argument("source", metavar="SOURCE", help=source_help)
    send.add_argument("channel", metavar="CHANNEL", help="a configured channel, or several joined with +")
    send.add_argument("payload", metavar="PAYLOAD", help=payload_help)
    send.add_argument("--dry-run", action="store_true", help="render and validate but do not send")
    send.add_argument(
        "--force", action="store_true", help="send even if memory says this event was already delivered there"
    )
    send.set_defaults(handler=cmd_send)

    outbox = commands.add_parser(
        "outbox",
        parents=[settings],
        help="list, replay or drop what the outbox holds",
        description="The outbox holds deliveries that did not go within their request, until they do. "
        "list shows id, channel, event, tries, HTTP attempts, next attempt, age and last error (--dead: "
        "the dead letters); replay puts dead letters back in the queue (IDs, or --dead for all); drop "
        "removes entries for good. Never shows a URL.",
    )
    outbox.add_argument(
        "action", nargs="?", choices=["list", "replay", "drop"], help="list, replay or drop", metavar="ACTION"
    )
    outbox.add_argument("ids", nargs="*", metavar="ID", help="entry ids (from `outbox list`)")
    outbox.add_argument("--dead", action="store_true", help="dead letters (list), or all of them (replay)")
    outbox.add_argument("--json", action="store_true", help="print JSON")
    outbox.set_defaults(handler=cmd_outbox)

    memory = commands.add_parser(
        "memory",
        parents=[settings],
        help="reset what the app remembers (deliveries made, build outcomes)",
        description="memory clear forgets every delivery made and every build outcome in the configured "
        "state store: an event posted again is sent again, and after-change build modes start over. Asks "
        "for confirmation unless --yes.",
    )
    memory.add_argument("action", nargs="?", choices=["clear"], help="clear", metavar="ACTION")
    memory.add_argument("--yes", action="store_true", help="do not ask")
    memory.set_defaults(handler=cmd_memory)

    configuration = commands.add_parser(
        "settings",
        parents=[settings],
        help="show the configured channels and every setting that is wrong",
        description="Load the settings as the function does (local.settings.json Values, the environment "
        "winning) and list the channels, broken channels and invalid settings; exit 1 if anything is "
        "wrong. --markdown prints the settings reference (docs/configuration.md) made from the model.",
    )
    configuration.add_argument("--markdown", action="store_true", help="print the settings reference")
    configuration.set_defaults(handler=cmd_settings)

    listing = commands.add_parser(
        "samples",
        help="list the bundled sample payloads",
        description="List the bundled sample payloads: id, source, the event each becomes, the app"
        " id APP_NAMES would name its app by (source:id), the headers sent with it.",
    )
    listing.add_argument("--json", action="store_true", help="as JSON, with each file's path")
    listing.set_defaults(handler=cmd_samples)
    for command in commands.choices.values():  # so that a command's own usage says what is wrong
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args))
    except UsageError as exc:
        _out(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`samples --json | head`): that is not an error, and not worth a
        # traceback. Output still buffered would fail again at exit: send it nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
