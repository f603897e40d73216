"""Legacy Office 365 connector MessageCard (``*.webhook.office.com``), still asked for.

https://learn.microsoft.com/en-us/outlook/actionable-messages/message-card-reference. Connectors
were retired in 2026; some Workflows flows still accept MessageCards (buttons may not render).

Card text is Markdown (a subset) with a little HTML: payload text is escaped for both
(``formats/_markdown.py``; ``<``, ``>`` and ``&`` as HTML entities), and a line break needs a blank
line. MessageCards have no date functions, so times are shown in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from translators.formats import (
    OUTCOME_COLORS,
    OUTCOME_EMOJI,
    ChatFormat,
    OutputInvalid,
    _markdown,
    dumps,
    escape_entities,
)
from translators.model import Notification
from translators.people import Mentions
from translators.text import Doc, Inline, soft_breaks

CONTEXT = "http://schema.org/extensions"

_escape_line = _markdown.escaper(lambda text: escape_entities(soft_breaks(text)))


def code_span(text: str) -> str:
    """An identifier or a stack frame in a fixed-width font: a Markdown code span, where no
    Markdown is read (so no backslash escapes), with ``<>&`` as entities for the card's HTML and a
    look-alike for a backtick, which no code span can hold."""
    return f"`{escape_entities(text.replace('`', 'ˋ'))}`" if text.strip() else text


class MessageCard(ChatFormat):
    name: ClassVar[str] = "teams-messagecard"
    label: ClassVar[str] = "Microsoft Teams (legacy MessageCard)"
    max_bytes: ClassVar[int] = 28 * 1024
    potential_action_max_length: ClassVar[int] = 4
    text_keys: ClassVar[frozenset[str]] = frozenset({"text", "activityText", "value", "summary"})

    def escape(self, text: str) -> str:
        """Markdown-escaped with HTML entities, lines kept: payload text cannot become tags or links."""
        return _markdown.escape_text(text, _escape_line)

    def link(self, url: str | None, label: str) -> str:
        return _markdown.link(url, label)

    def inline(self, line: Inline) -> str:
        return _markdown.write_inline(line, _escape_line, code_span)

    def mentions(self, mentions: Mentions) -> str:
        """A connector cannot mention: everyone this channel would mention, named (``@Dana, @mobile``)."""
        return ", ".join("@" + self.escape(m.name) for m in mentions)

    def template_helpers(self) -> dict[str, Callable[..., str]]:
        return {"code": lambda text: dumps(code_span(str(text))).decode("utf-8")[1:-1]}

    def document(self, doc: Doc) -> str:
        return _markdown.write_doc(doc, _escape_line)

    def clip_limits(self, body: dict[str, Any]) -> None:
        actions = body.get("potentialAction")
        if isinstance(actions, list):
            del actions[self.potential_action_max_length :]

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        from translators.formats import _messagecard

        errors = _messagecard.validate(body)
        if errors:
            raise OutputInvalid(self.name, errors)
        super().validate(body, encoded)

    def headline(self, body: dict[str, Any]) -> str | None:
        text = body.get("summary") or body.get("title") or body.get("text")
        return text if isinstance(text, str) else None

    def minimal(self, n: Notification) -> dict[str, Any]:
        e = self.escape
        title = f"{n.emoji or OUTCOME_EMOJI.get(n.outcome, '')} {n.title}".strip()
        section: dict[str, Any] = {
            "activityTitle": e(n.app_display or n.source_label),
            "activitySubtitle": e(n.source_label) + (f" · {self.time(n.when)}" if n.when else ""),
            "text": e(n.summary),
            "markdown": True,
        }
        body: dict[str, Any] = {
            "@type": "MessageCard",
            "@context": CONTEXT,
            "summary": e(n.summary),
            "themeColor": OUTCOME_COLORS.get(n.outcome, "8D8D8D"),
            "title": e(title),
            "sections": [section],
        }
        if n.url:
            body["potentialAction"] = [
                {"@type": "OpenUri", "name": "Open", "targets": [{"os": "default", "uri": n.url}]}
            ]
        return self.shrink(body)


FORMAT = MessageCard()
