"""Jinja rendering of a Notification into a chat body.

Safety is the environment's default, not the template author's duty: every ``{{ expression }}``
passes through ``finalize``, which escapes the value for the format's markup (Slack mrkdwn: ``&``,
``<``, ``>``; Teams and MessageCard Markdown: every formatting character) and then for a JSON
string. So a branch name like ``"}],"x":"<!channel>`` stays one inert string. Templates put
expressions inside JSON strings. What is not markup is said so:

- URLs that ``safe_url`` accepted (``n.url``, ``link.url``) are written as they are, JSON-escaped
  only: a URL field is not markup, and ``&amp;`` would break a signed link;
- ``| plain`` marks a plain-text field (Slack ``plain_text``, a Teams button title);
- a fact's value (runs of text and identifiers) is written by the format, identifiers literally;
- ``| markdown`` (release notes, feedback) and ``| lines`` (text whose lines matter; ``code=true``
  for stack traces) clip free text to what a chat reader reads and return the whole JSON value the
  format wants there: a Slack ``rich_text`` element list, a Markdown string for Teams and MessageCard;
- ``tojson`` (also escaping) emits whole values; ``link`` and ``when`` return trusted markup;
- ``n.mentions`` is written by the format (Slack ``<@U…>``, Teams ``<at>Name</at>``, names
  elsewhere) from configured ids: the one way a mention gets into a message.

Payload text is only ever data handed to a compiled template, never compiled itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from translators import text as text_module
from translators.formats import (
    OUTCOME_CARD_COLORS,
    OUTCOME_COLORS,
    OUTCOME_EMOJI,
    ChatFormat,
    clip,
    dumps,
)
from translators.model import Notification, Url, safe_url
from translators.people import Mentions

if TYPE_CHECKING:
    from translators.settings import Settings

#: The app's folder (that of function_app.py); the built-in templates are in its templates/.
APP_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_TEMPLATES = APP_ROOT / "templates"
TEMPLATE_SUFFIX = ".json.j2"
#: Compiled templates of the app's own folders (built-in and custom-templates/), written beside the
#: app's bytecode: tools/package-bytecode fills it, since Azure's read-only package can cache nothing.
COMPILED_TEMPLATES = APP_ROOT / "__pycache__" / "templates"


class Trusted(str):
    """Markup we built ourselves from escaped parts: JSON-escaped on output, not format-escaped."""

    __slots__ = ()


class RawJSON(str):
    """Already-serialised JSON (from ``tojson``): emitted as is."""

    __slots__ = ()


@dataclass(frozen=True)
class TemplateFailure(Exception):
    """A template that failed to load, render or produce valid JSON, named with its line."""

    template: str
    message: str
    line: int | None = None
    #: The file, named as everywhere (answers, logs, ``check``, the preview): see ``shown_file``.
    file: str | None = None

    @property
    def where(self) -> str:
        return (self.file or self.template) + (f", line {self.line}" if self.line else "")

    def __str__(self) -> str:
        return f"error in '{self.where}': {self.message}"


def shown_file(path: str | Path) -> str:
    """A template file as every message names it (answers, logs, ``check``, the preview): relative
    to the app's folder when inside it (``templates/slack/default.json.j2``,
    ``custom-templates/builds/slack/...``), else to the current directory when inside that, else in full."""
    full = Path(path).resolve()
    for base in (APP_ROOT, Path.cwd().resolve()):
        try:
            return full.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(full)


def template_chain(format_name: str, source: str, event: str) -> list[str]:
    """Most specific first: source+event, source default, format default."""
    return [
        f"{format_name}/{source}/{event}{TEMPLATE_SUFFIX}",
        f"{format_name}/{source}/default{TEMPLATE_SUFFIX}",
        f"{format_name}/default{TEMPLATE_SUFFIX}",
    ]


def search_path(channel_dir: str | None = None, templates_dir: str | None = None) -> tuple[Path, ...]:
    """Folders searched in order: the channel's own, TEMPLATES_DIR, then the built-in ones.

    A relative folder is relative to the app's folder, as the settings take it (not to the current
    directory, which differs between ``serve``, the CLI run from elsewhere, and Azure).
    """
    dirs = [_under_app(d) for d in (channel_dir, templates_dir) if d]
    return (*dirs, BUILTIN_TEMPLATES)


def _under_app(folder: str) -> Path:
    path = Path(folder).expanduser()
    return path if path.is_absolute() else APP_ROOT / path


class CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates on disk, so that a cold start loads a template rather than compiling it
    (about 8 ms for the Slack one, on every first request after an idle spell).

    An entry is used only while it was compiled from the same template text by the same renderer:
    its checksum covers the text, this module's source (the environment's options and filter
    names, which Jinja compiles into the code), the format module's source and Jinja's version.
    Anything else compiles as before. The key is the file's path inside the app folder, so that a
    package compiled in one place is valid where Azure mounts it; templates outside the app folder
    (a ``TEMPLATES_DIR`` elsewhere) are not cached. Nothing is written where Python writes no
    bytecode either (``PYTHONDONTWRITEBYTECODE``) or cannot (a read-only package).
    """

    def __init__(
        self,
        fmt: ChatFormat,
        directory: Path = COMPILED_TEMPLATES,
        *,
        root: Path = APP_ROOT,
        write: bool | None = None,
    ) -> None:
        """``root``: only templates inside it are kept; ``write``: keep what is compiled (default:
        unless Python writes no bytecode)."""
        self.directory = directory
        self.root = root.resolve()
        self.salt = _renderer_salt(type(fmt).__module__)
        self.write = write

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        if filename is None:
            return ""
        try:
            inside = Path(filename).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return ""
        return hashlib.sha1(f"{name}|{inside}".encode(), usedforsecurity=False).hexdigest()

    def get_source_checksum(self, source: str) -> str:
        return hashlib.sha1(f"{self.salt}|{source}".encode(), usedforsecurity=False).hexdigest()

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if not bucket.key:
            return
        try:
            with open(self.directory / f"{bucket.key}.jinja", "rb") as fh:
                bucket.load_bytecode(fh)  # a stale or foreign entry leaves the bucket empty
        except OSError:
            return
        except Exception:  # a damaged one (cut short: pickle and marshal raise): compiled again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        write = not sys.dont_write_bytecode if self.write is None else self.write
        if not bucket.key or not write:
            return
        path = self.directory / f"{bucket.key}.jinja"
        scratch = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(scratch, "wb") as fh:
                bucket.write_bytecode(fh)
            os.replace(scratch, path)  # whole or not at all, for another process reading it
        except OSError:  # a read-only package: the template was compiled, it is just not kept
            with contextlib.suppress(OSError):
                scratch.unlink(missing_ok=True)


@lru_cache(maxsize=8)
def _compiled(fmt: ChatFormat) -> CompiledTemplates:
    return CompiledTemplates(fmt)


@lru_cache(maxsize=8)
def _renderer_salt(format_module: str) -> str:
    """What, besides a template's text, decides the code Jinja compiles from it."""
    digest = hashlib.sha1(jinja2.__version__.encode(), usedforsecurity=False)
    digest.update(marshal.dumps(sys.version_info[:2]))
    for module in (__name__, format_module):
        origin = getattr(sys.modules[module].__spec__, "origin", None)
        digest.update(Path(origin).read_bytes() if origin else module.encode())
    return digest.hexdigest()


def precompile() -> list[str]:
    """Compile every template of the app's own folders (built-in and custom-templates/) into
    ``COMPILED_TEMPLATES``, for the package (tools/package-bytecode); returns the files compiled.

    A template that does not compile is left out: a request reports it as it always did.
    """
    from translators import formats

    done = []
    for folder in (BUILTIN_TEMPLATES, APP_ROOT / "custom-templates"):
        for path in sorted(folder.rglob(f"*{TEMPLATE_SUFFIX}")):
            parts = path.relative_to(folder).parts
            # A search folder holds <format>/...: what comes before the format is the folder's own path.
            at = next((i for i, part in enumerate(parts) if formats.get(part) is not None), None)
            fmt = formats.get(parts[at]) if at is not None else None
            if at is None or fmt is None:
                continue
            env = Renderer(fmt, (folder.joinpath(*parts[:at]),)).env
            env.bytecode_cache = CompiledTemplates(fmt, write=True)
            try:
                env.get_template("/".join(parts[at:]))
            except jinja2.TemplateError:
                continue
            done.append(shown_file(path))
    return done


class _Environment(jinja2.Environment):
    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """The globals as one plain dict rather than Jinja's ChainMap over the environment's.

        Every render copies a template's globals into a new context, and copying a ChainMap runs
        Python code per key: about a fifth of rendering a notification. Our globals are all set
        before the first template loads and never change after (as Jinja asks of any app).
        """
        return {**self.globals, **(d or {})}


class Renderer:
    """Renders notifications for one format from one template search path."""

    def __init__(self, fmt: ChatFormat, dirs: Sequence[Path], *, live: bool | None = None) -> None:
        """``live``: look at the files on every render (default: when a user folder is searched)."""
        self.fmt = fmt
        self.dirs = tuple(dirs)
        user_dirs = any(d != BUILTIN_TEMPLATES for d in self.dirs) if live is None else live
        self.env = _Environment(
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in self.dirs]),
            autoescape=False,  # the output is JSON: finalize escapes for it and for the format
            undefined=jinja2.StrictUndefined,
            finalize=self._finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            # Built-in templates never change under a running app; user folders are edited live.
            auto_reload=user_dirs,
            bytecode_cache=_compiled(fmt),
        )
        # (source, event) -> (folder, name, file): built-in templates do not come and go, so the
        # file lookups (three stat calls a render) are done once; user folders are checked live.
        self._chosen: dict[tuple[str, str], tuple[Path, str, str]] | None = None if user_dirs else {}
        self.env.filters.update(
            clip=self._clip,
            tojson=self._tojson,
            link=self._link,
            when=self._when,
            plain=_plain,
            markdown=self._markdown,
            lines=self._lines,
            text=self._text,
            escape_format=fmt.escape,
        )
        self.env.globals.update(
            link=self._link, emoji=OUTCOME_EMOJI, colors=OUTCOME_COLORS, card_colors=OUTCOME_CARD_COLORS
        )
        # A format's own helpers (Slack: rich(), rich text elements built from payload values).
        self.env.globals.update({name: _raw_json(helper) for name, helper in fmt.template_helpers().items()})

    def _finalize(self, value: Any) -> str:
        if type(value) is str:  # most expressions: payload text, escaped (what the branches below do)
            return encode_basestring(self.fmt.escape(value))[1:-1]
        if isinstance(value, RawJSON):
            return value
        if value is None:
            return ""
        if isinstance(value, (Trusted, Url)):
            text: str = value
        elif isinstance(value, Mentions):  # made from configured ids only, written by the format
            text = self.fmt.mentions(value)
        elif isinstance(value, text_module.Inline):
            text = self.fmt.inline(value)
        else:
            text = self.fmt.escape(str(value))
        # What json.dumps(text, ensure_ascii=False) returns for a string, without building an
        # encoder per call (a template has dozens of expressions; this was a third of a render).
        return encode_basestring(text)[1:-1]

    def _clip(self, value: Any, limit: int) -> Any:
        if isinstance(value, text_module.Inline):
            return text_module.clip_inline(value, int(limit))
        return clip("" if value is None else str(value), int(limit), self.fmt.ellipsis)

    def _markdown(
        self, value: Any, lines: int = text_module.MAX_LINES, chars: int = text_module.MAX_CHARS
    ) -> RawJSON:
        doc = text_module.clip(text_module.as_doc(value, markdown=True), int(lines), int(chars))
        return RawJSON(dumps(self.fmt.document(doc)).decode("utf-8"))

    def _lines(
        self,
        value: Any,
        lines: int = text_module.MAX_LINES,
        chars: int = text_module.MAX_CHARS,
        code: bool = False,
    ) -> RawJSON:
        doc = text_module.as_doc(value, markdown=False, code_block=bool(code))
        doc = text_module.clip(doc, int(lines), int(chars))
        return RawJSON(dumps(self.fmt.document(doc)).decode("utf-8"))

    def _text(
        self, value: Any, lines: int = text_module.MAX_LINES, chars: int = text_module.MAX_CHARS
    ) -> RawJSON:
        """A ``text.Doc`` (``n.details_doc``), or text read as lines, clipped and written for the format."""
        return self._lines(value, lines, chars)

    def _when(self, value: datetime | None) -> Trusted:
        return Trusted(self.fmt.time(value) if value else "")

    def _tojson(self, value: Any) -> RawJSON:
        return RawJSON(json.dumps(_escape_strings(value, self.fmt), ensure_ascii=False))

    def _link(self, url: str | None, label: Any) -> Trusted:
        return Trusted(self.fmt.link(safe_url(url), self.fmt.escape(str(label))))

    def compile(self, name: str) -> None:
        """Load and compile the template ``name``: TemplateFailure, with its file and line, if it does not."""
        try:
            self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise _syntax_failure(exc, name, None) from None

    def shown(self, source: str, event: str) -> str:
        """The file of the template used for ``source``/``event``, named as errors name it."""
        return shown_file(self._choose(source, event)[2])

    def _choose(self, source: str, event: str) -> tuple[Path, str, str]:
        """The folder and name of the template to use, and its file name as Jinja reports it."""
        if self._chosen is not None and (source, event) in self._chosen:
            return self._chosen[source, event]
        chain = template_chain(self.fmt.name, source, event)
        for folder in self.dirs:
            for name in chain:
                if (folder / name).is_file():
                    chosen = (folder, name, str(folder / name))
                    if self._chosen is not None:
                        self._chosen[source, event] = chosen
                    return chosen
        raise TemplateFailure(chain[-1], "no template found in " + ", ".join(map(str, self.dirs)))

    def render(self, n: Notification) -> tuple[str, dict[str, Any]]:
        """Return (template name, body as a dict). Raise TemplateFailure."""
        _, name, filename = self._choose(n.source, n.event)
        try:
            template = self.env.get_template(name)
            if template.filename != filename:
                # A user added the same name to a folder searched earlier since it was cached.
                self.env.cache.clear()  # type: ignore[union-attr]
                template = self.env.get_template(name)
            text = template.render(n=n)
        except jinja2.TemplateSyntaxError as exc:
            raise _syntax_failure(exc, name, filename) from None
        except Exception as exc:  # any error inside user-editable template code
            failing, line, path = _template_frame(exc, name, filename, self.dirs)
            raise TemplateFailure(failing, f"{type(exc).__name__}: {exc}", line, shown_file(path)) from None
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            snippet = text.splitlines()[exc.lineno - 1][max(exc.colno - 40, 0) : exc.colno + 20]
            raise TemplateFailure(
                name,
                f"rendered output is not JSON: {exc.msg} at output line {exc.lineno} near {snippet!r}",
                file=shown_file(filename),
            ) from None
        if not isinstance(body, dict):
            raise TemplateFailure(
                name, f"rendered a JSON {type(body).__name__}, not an object", file=shown_file(filename)
            )
        return name, body


def _syntax_failure(exc: jinja2.TemplateSyntaxError, name: str, filename: str | None) -> TemplateFailure:
    path = exc.filename or filename
    return TemplateFailure(exc.name or name, exc.message or str(exc), exc.lineno, path and shown_file(path))


def _template_frame(
    exc: BaseException, default: str, default_file: str, dirs: Iterable[Path]
) -> tuple[str, int | None, str]:
    """The template name, line and file where a render error happened (Jinja rewrites tracebacks)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            for root in dirs:
                if frame.filename.startswith(str(root) + os.sep):
                    return os.path.relpath(frame.filename, root), frame.lineno, frame.filename
            return frame.filename, frame.lineno, frame.filename
    return default, None, default_file


def _escape_strings(value: Any, fmt: ChatFormat) -> Any:
    if isinstance(value, (Trusted, Url)):
        return str(value)
    if isinstance(value, Mentions):
        return fmt.mentions(value)
    if isinstance(value, text_module.Inline):
        return fmt.inline(value)
    if isinstance(value, str):
        return fmt.escape(value)
    if isinstance(value, dict):
        return {k: _escape_strings(v, fmt) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_strings(v, fmt) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _raw_json(helper: Callable[..., str]) -> Callable[..., RawJSON]:
    """A format's helper, whose result is JSON text to be emitted as it is."""

    def call(*args: Any, **kwargs: Any) -> RawJSON:
        return RawJSON(helper(*args, **kwargs))

    return call


def _plain(value: Any) -> Trusted:
    """A plain-text field: JSON-escaped only (nothing there is read as markup)."""
    return Trusted("" if value is None else str(value))


@lru_cache(maxsize=64)
def renderer(fmt: ChatFormat, dirs: tuple[Path, ...]) -> Renderer:
    return Renderer(fmt, dirs)


def renderer_for(fmt: ChatFormat, channel_dir: str | None, templates_dir: str | None) -> Renderer:
    return renderer(fmt, search_path(channel_dir, templates_dir))


@dataclass(frozen=True)
class TemplateSet:
    """Template folders searched in order, as one group of channels gets them."""

    key: str
    label: str
    dirs: tuple[Path, ...]


def template_sets(settings: Settings) -> list[TemplateSet]:
    """Every set of folders the settings use: built-in; TEMPLATES_DIR; each channel's own folder."""
    found = [TemplateSet("builtin", "built-in templates", search_path())]
    if settings.templates_dir:
        found.append(
            TemplateSet(
                "shared",
                f"TEMPLATES_DIR ({settings.templates_dir})",
                search_path(None, settings.templates_dir),
            )
        )
    for channel in settings.channels.values():
        if channel.templates:
            found.append(
                TemplateSet(
                    f"channel:{channel.name}",
                    f"channel {channel.name} ({channel.templates})",
                    search_path(channel.templates, settings.templates_dir),
                )
            )
    return found


def lookup_names(sources: Iterable[str], events: Iterable[str], formats: Iterable[str]) -> list[str]:
    """Every template name the lookup chain can ask for (a file named otherwise is never used)."""
    events = list(events)
    out = []
    for fmt in formats:
        out.append(f"{fmt}/default{TEMPLATE_SUFFIX}")
        for source in sources:
            out.append(f"{fmt}/{source}/default{TEMPLATE_SUFFIX}")
            out += [f"{fmt}/{source}/{event}{TEMPLATE_SUFFIX}" for event in events]
    return out


def unused_files(folder: Path, valid: Sequence[str]) -> list[tuple[str, str | None]]:
    """Files in a template folder that no lookup asks for, each with the nearest name that would be."""
    import difflib

    wanted = set(valid)
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name in wanted or any(part.startswith(".") for part in name.split("/")):
            continue
        if path.name.lower().startswith(("readme", "license")):
            continue
        parts = name.split("/")
        suggestion: str | None = None
        if len(parts) == 2 and name.endswith(TEMPLATE_SUFFIX) and parts[1] != f"default{TEMPLATE_SUFFIX}":
            # "slack/build.failed.json.j2": the source folder is missing.
            event_file = parts[1]
            options = [v for v in valid if v.startswith(f"{parts[0]}/") and v.endswith(f"/{event_file}")]
            if options:
                suggestion = f"{parts[0]}/<source>/{event_file} (e.g. {options[0]})"
        if suggestion is None:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
        found.append((name, suggestion))
    return found


def names(dirs: Iterable[Path]) -> list[str]:
    """Every template file under the folders, relative names (for checks and listings)."""
    out: set[str] = set()
    for d in dirs:
        out.update(str(p.relative_to(d)) for p in d.rglob(f"*{TEMPLATE_SUFFIX}"))
    return sorted(out)
