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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from translators.errors import FieldError
from translators.formats import (
    OUTCOME_CARD_COLORS,
    OUTCOME_EMOJI,
    ChatFormat,
    OutputInvalid,
    _markdown,
    dumps,
)
from translators.model import Notification
from translators.people import Mentions
from translators.text import Doc, Inline

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

#: ``<``, ``>`` and ``&`` get a backslash like every other Markdown character: a ``<at>`` tag in a
#: payload then never matches a mention, and an entity is shown as typed.
_escape_line = _markdown.escaper(lambda text: re.sub(r"([<>&])", r"\\\1", text))


def _at(name: str) -> str:
    return f"<at>{name}</at>"


def mention_entities(mentions: Mentions) -> str:
    """The card's ``msteams.entities`` for ``n.mentions``: JSON text, for ``"entities": {{ ... }}``.

    Teams turns ``<at>Name</at>`` in a TextBlock into a mention only when an entity with exactly
    that text names the user; the text and the entity are made here from configuration alone.
    """
    entities = [
        {"type": "mention", "text": _at(m.name), "mentioned": {"id": m.teams, "name": m.name}}
        for m in dict.fromkeys(mentions)
        if m.teams
    ]
    return dumps(entities).decode("utf-8")


def _unmatched_mentions(body: dict[str, Any], encoded: bytes | None) -> list[FieldError]:
    """A mention entity whose ``<at>`` text is nowhere in the card: Teams would refuse or ignore it."""
    attachments = body.get("attachments") or [{}]
    card = attachments[0].get("content") if isinstance(attachments[0], dict) else None
    msteams = card.get("msteams") if isinstance(card, dict) else None
    entities = msteams.get("entities") if isinstance(msteams, dict) else None
    if not entities:
        return []
    text = (encoded or dumps(body)).decode("utf-8")
    return [
        FieldError(
            f"attachments.0.content.msteams.entities.{i}.text", "no text of the card holds this mention"
        )
        for i, entity in enumerate(entities)
        if isinstance(entity, dict) and text.count(json_text(str(entity.get("text", "")))) < 2
    ]


def json_text(value: str) -> str:
    """``value`` as it appears inside a JSON string."""
    return dumps(value).decode("utf-8")[1:-1]


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

    def mentions(self, mentions: Mentions) -> str:
        """``<at>Name</at>`` for each person with a Teams account; the card's ``msteams`` entities
        (``mention_entities``) make them mentions. Slack's groups and @here have no Teams twin: they
        are shown by name."""
        return " ".join(_at(m.name) if m.teams else self.escape(m.name) for m in mentions)

    def template_helpers(self) -> dict[str, Callable[..., str]]:
        return {"mention_entities": mention_entities}

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        from translators.formats import _adaptivecard

        errors = _adaptivecard.validate(body)
        if not errors:
            errors = _unmatched_mentions(body, encoded)
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
                            {
                                "type": "TextBlock",
                                "text": e(n.app_display or ""),
                                "spacing": "None",
                                "wrap": True,
                            }
                            for _ in [0]
                            if n.app_display
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
