"""Chat formats: one module per format, limits as class constants.

Each format knows how to escape payload text for its markup, how to clip a rendered body to its
limits, how to validate it, and how to build a minimal message when a template fails. How a
destination answers (success, refusal, hints) is the destination's (translators/destinations/).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from translators.errors import FieldError
from translators.model import Notification
from translators.people import Mentions
from translators.text import Doc, Inline

#: Colour (hex, no '#') and emoji per outcome; templates get them as ``colors`` and ``emoji``.
OUTCOME_COLORS: dict[str, str] = {
    "success": "2EB67D",
    "failure": "E01E5A",
    "canceled": "8D8D8D",
    "running": "36C5F0",
    "info": "1D9BD1",
    "warning": "ECB22E",
}
OUTCOME_EMOJI: dict[str, str] = {
    "success": "✅",
    "failure": "❌",
    "canceled": "🚫",
    "running": "⏳",
    "info": "📦",
    "warning": "⚠️",
}

#: Adaptive Card colour names per outcome (TextBlock ``color``, Container ``style``).
OUTCOME_CARD_COLORS: dict[str, str] = {
    "success": "good",
    "failure": "attention",
    "canceled": "default",
    "running": "accent",
    "info": "accent",
    "warning": "warning",
}


class OutputInvalid(Exception):
    """A rendered body the destination would reject."""

    def __init__(self, format_name: str, errors: list[FieldError]) -> None:
        self.format_name = format_name
        self.errors = errors
        listed = "; ".join(f"{e.path}: {e.message}" for e in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid {format_name} body: {listed}{more}")


class ChatFormat:
    """Base class; subclasses set the constants and override the hooks."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: Largest body the destination takes, in bytes of UTF-8 JSON.
    max_bytes: ClassVar[int]
    #: Ellipsis used when text is shortened.
    ellipsis: ClassVar[str] = "…"
    #: Keys whose string values are prose that may be shortened to make a body fit.
    text_keys: ClassVar[frozenset[str]] = frozenset({"text"})
    #: Shortest a prose value is cut to while shrinking an oversize body.
    min_text_length: ClassVar[int] = 100
    #: Lists of optional items (facts, fields) that lose their last items when prose is not enough.
    optional_list_keys: ClassVar[frozenset[str]] = frozenset({"facts", "fields"})

    def escape(self, text: str) -> str:
        """Make payload text inert in this format's markup (not JSON: the renderer does that)."""
        return text

    def link(self, url: str | None, label: str) -> str:
        """Markup for a link; ``label`` is already escaped, ``url`` already checked (or None)."""
        return f"[{label}]({url})" if url else label

    def inline(self, line: Inline) -> str:
        """Runs of text (a fact's value) as this format's markup; identifiers read literally."""
        return "".join(self.escape(span.text) for span in line)

    def document(self, doc: Doc) -> Any:
        """Free text (a ``text.Doc``) as the JSON value a template puts where the text goes."""
        return self.escape(doc.plain())

    def time(self, moment: datetime) -> str:
        """A moment as markup; formats whose clients can show the reader's own time zone override."""
        return utc_text(moment)

    def mentions(self, mentions: Mentions) -> str:
        """Markup that mentions these people; a format that cannot mention names them."""
        return ", ".join(self.escape(m.name) for m in mentions)

    def template_helpers(self) -> dict[str, Callable[..., str]]:
        """Template globals of this format; each returns JSON text that the template emits as is."""
        return {}

    def fit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Shorten texts that exceed this format's limits, then shrink the whole body to size."""
        self.fit_encoded(body)
        return body

    def fit_encoded(self, body: dict[str, Any]) -> bytes:
        """``fit`` (in place), returning the fitted body as ``dumps`` encodes it.

        Measuring the size encodes the body anyway; ``validate`` takes these bytes rather than
        encoding it once more.
        """
        self.clip_limits(body)
        return self._shrink(body)

    def clip_limits(self, body: dict[str, Any]) -> None:
        """Shorten texts and lists beyond this format's own limits, in place (formats override)."""

    def shrink(self, body: dict[str, Any]) -> dict[str, Any]:
        """Halve the longest prose value until the body is under ``max_bytes``.

        Prose is what grows without bound (release notes, stack traces, feedback text), so it
        gives way first; URLs, ids and structure are left alone.
        """
        self._shrink(body)
        return body

    def _shrink(self, body: dict[str, Any]) -> bytes:
        """``shrink``, returning the body's last encoding (its size decided when to stop)."""
        while True:
            encoded = dumps(body)
            if len(encoded) <= self.max_bytes:
                return encoded
            longest = _longest_text(body, self.text_keys)
            if longest is not None and len(longest[2]) > self.min_text_length:
                container, key, text = longest
                container[key] = self.clip_text(text, max(len(text) // 2, self.min_text_length))
                continue
            items = _longest_list(body, self.optional_list_keys)
            if items is None or len(items) <= 1:
                return encoded
            items.pop()

    def clip_text(self, text: str, limit: int) -> str:
        """Shorten text already in this format's markup; formats override to keep markup whole."""
        return clip(text, limit, self.ellipsis)

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        """Raise OutputInvalid if the destination would reject the body.

        ``encoded``: the body as ``dumps`` encodes it, when the caller has it already.
        """
        size = len(dumps(body) if encoded is None else encoded)
        if size > self.max_bytes:
            raise OutputInvalid(self.name, [FieldError("(body)", f"{size} bytes, over {self.max_bytes}")])

    def minimal(self, n: Notification) -> dict[str, Any]:
        """A small built-in message (no templates involved) for when a template fails."""
        raise NotImplementedError

    def headline(self, body: dict[str, Any]) -> str | None:
        """The line a chat client shows in its notification of ``body`` (the local inbox lists it)."""
        return None


def utc_text(moment: datetime) -> str:
    """'30 Nov 2026 10:00 UTC': a time every reader can place, where no local time can be shown."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y %H:%M} UTC"


def escape_entities(text: str) -> str:
    """``&``, ``<`` and ``>`` as HTML entities (Slack mrkdwn and MessageCard text both need these).

    Three ``str.replace`` calls (``&`` first), not ``str.translate``: with a mapping, translate takes
    a per-character slow path on any non-ASCII text (an emoji, a ``·``), some 50x slower here, and
    the renderer escapes every expression of a template.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: What ``json.dumps(body, ensure_ascii=False, separators=(",", ":"))`` builds on every call, built once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON, as sent to a destination (and as its size limits count)."""
    return _ENCODER.encode(body).encode("utf-8")


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """Shorten to at most ``limit`` characters, ending with the ellipsis when shortened."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ellipsis), 0)].rstrip() + ellipsis


def _entries(node: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Every (container, key, value) below a JSON value, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, value in pairs:
            yield item, key, value
            if isinstance(value, (dict, list)):
                stack.append(value)


def _longest_text(node: Any, keys: frozenset[str]) -> tuple[Any, Any, str] | None:
    texts = ((c, k, v) for c, k, v in _entries(node) if k in keys and isinstance(v, str))
    return max(texts, key=lambda entry: len(entry[2]), default=None)


def _longest_list(node: Any, keys: frozenset[str]) -> list[Any] | None:
    lists = (v for _, k, v in _entries(node) if k in keys and isinstance(v, list))
    return max(lists, key=len, default=None)


#: Format name -> its module in this package. A request imports only the formats its channels use:
#: the Slack module's Block Kit models cost a few milliseconds of a cold start that a Teams-only
#: app need not pay.
_MODULES: dict[str, str] = {"slack": "slack", "teams": "teams", "teams-messagecard": "messagecard"}
#: Every format's name, without importing the formats.
FORMAT_NAMES: tuple[str, ...] = tuple(_MODULES)


def registry() -> dict[str, ChatFormat]:
    return {name: fmt for name in _MODULES if (fmt := get(name)) is not None}


@cache
def get(name: str) -> ChatFormat | None:
    module = _MODULES.get(name)
    if module is None:
        return None
    fmt: ChatFormat = importlib.import_module(f"{__name__}.{module}").FORMAT
    return fmt
