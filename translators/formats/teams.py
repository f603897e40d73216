"""Microsoft Teams through a Workflows (Power Automate) webhook: an Adaptive Card 1.4 in an envelope.

https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
and https://adaptivecards.io/explorer/. Teams documents cards up to 1.5, but cards posted through a
Workflows webhook ("Post card in a chat or channel") show "We're sorry, this card couldn't be
displayed" at 1.5 and display at 1.4 (MicrosoftDocs/msteams-docs#9801, microsoft/AdaptiveCards#7676),
while the flow still answers 202. So cards are 1.4 and use nothing newer. Messages up to 28 KB.

TextBlock and FactSet text is Markdown (a subset): payload text is escaped for it
(``formats/_markdown.py``) and a line break needs a blank line. Times use the card's own
``{{DATE()}}``/``{{TIME()}}`` functions, which Teams shows in the reader's time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from translators.formats import OUTCOME_CARD_COLORS, OUTCOME_EMOJI, ChatFormat, OutputInvalid, _markdown
from translators.model import Notification
from translators.text import Doc, Inline

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

#: ``<``, ``>`` and ``&`` get a backslash like every other Markdown character: a ``<at>`` tag in a
#: payload then never matches a mention, and an entity is shown as typed.
_escape_line = _markdown.escaper(lambda text: re.sub(r"([<>&])", r"\\\1", text))


def envelope(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


class Teams(ChatFormat):
    name: ClassVar[str] = "teams"
    label: ClassVar[str] = "Microsoft Teams (Workflows, Adaptive Card)"
    max_bytes: ClassVar[int] = 28 * 1024
    text_keys: ClassVar[frozenset[str]] = frozenset({"text", "value"})
    card_version: ClassVar[str] = CARD_VERSION

    def escape(self, text: str) -> str:
        """Markdown-escaped, lines kept: payload text cannot format, link, mention or call DATE()."""
        return _markdown.escape_text(text, _escape_line)

    def link(self, url: str | None, label: str) -> str:
        return _markdown.link(url, label)

    def inline(self, line: Inline) -> str:
        return _markdown.write_inline(line, _escape_line)

    def document(self, doc: Doc) -> str:
        return _markdown.write_doc(doc, _escape_line)

    def time(self, moment: datetime) -> str:
        """``{{DATE(..., SHORT)}} at {{TIME(...)}}``: the card's functions show the reader's local time."""
        aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        stamp = aware.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{{{{DATE({stamp}, SHORT)}}}} at {{{{TIME({stamp})}}}}"

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        from translators.formats import _adaptivecard

        errors = _adaptivecard.validate(body)
        if errors:
            raise OutputInvalid(self.name, errors)
        super().validate(body, encoded)

    def minimal(self, n: Notification) -> dict[str, Any]:
        e = self.escape
        title = f"{n.emoji or OUTCOME_EMOJI.get(n.outcome, '')} {n.title}".strip()
        footer = e(n.source_label) + (f" · {self.time(n.when)}" if n.when else "")
        card: dict[str, Any] = {
            "type": "AdaptiveCard",
            "$schema": CARD_SCHEMA,
            "version": CARD_VERSION,
            "fallbackText": self.clip_text(n.summary, 500),
            "body": [
                {
                    "type": "Container",
                    "style": OUTCOME_CARD_COLORS.get(n.outcome, "default"),
                    "bleed": True,
                    "items": [
                        {
                            "type": "TextBlock",
                            "text": e(title),
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                        },
                        *(
                            {"type": "TextBlock", "text": e(n.app), "spacing": "None", "wrap": True}
                            for _ in [0]
                            if n.app
                        ),
                    ],
                },
                {"type": "TextBlock", "text": self.clip_text(e(n.summary), 2000), "wrap": True},
                {"type": "TextBlock", "text": footer, "size": "Small", "isSubtle": True, "wrap": True},
            ],
        }
        if n.url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": n.url}]
        return self.shrink(envelope(card))

    def is_success(self, status: int, text: str) -> bool:
        # Workflows answers 202 Accepted: accepted by the flow, not proven posted.
        return 200 <= status < 300

    def hint(self, status: int | None, text: str) -> str | None:
        if status in (401, 403, 404):
            return (
                "the Workflows URL is wrong, or its flow was deleted or turned off (a flow stops when its "
                "owner leaves): in Teams, create a new 'Post to a channel when a webhook request is "
                "received' workflow and update CHANNEL_<NAME>_URL"
            )
        if status == 429:
            return "Workflows throttles more than about 4 requests a second: slow this channel down"
        return None


FORMAT = Teams()
