"""Microsoft Teams through a Workflows (Power Automate) webhook: an Adaptive Card 1.4 in an envelope.

https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
and https://adaptivecards.io/explorer/. Teams documents cards up to 1.5, but cards posted through a
Workflows webhook ("Post card in a chat or channel") show "We're sorry, this card couldn't be
displayed" at 1.5 and display at 1.4 (MicrosoftDocs/msteams-docs#9801, microsoft/AdaptiveCards#7676),
while the flow still answers 202. So cards are 1.4 and use nothing newer. Messages up to 28 KB.

Payload text goes into ``RichTextBlock``s of ``TextRun``s (card 1.2+), which no client parses as
Markdown: it needs no escaping, so a version ``3.2.0`` is ``3.2.0`` in the card's JSON and on screen.
Only our own words (labels, the footer, mentions from settings) are TextBlocks, whose text is
Markdown (a subset; ``| text`` still writes payload text escaped for it, for templates that want
TextBlocks). Times use the card's ``{{DATE()}}``/``{{TIME()}}`` functions in a TextBlock, which
Teams shows in the reader's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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
from translators.model import Notification, safe_url
from translators.people import Mentions
from translators.text import Code, Doc, Inline, ListBlock, Paragraph, Quote, Span, clip_inline, soft_breaks

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

#: ``<``, ``>`` and ``&`` get a backslash like every other Markdown character: a ``<at>`` tag in a
#: payload then never matches a mention, and an entity is shown as typed.
_escape_line = _markdown.escaper(lambda text: re.sub(r"([<>&])", r"\\\1", text))


#: A TextRun is never Markdown, but the renderers still evaluate ``{{DATE(...)}}``/``{{TIME(...)}}``
#: in it, and Teams matches mention entities against ``<at>`` tags in the card's text: a word joiner
#: (invisible, U+2060) inside such a call or tag keeps it text.
_CARD_FUNCTION = re.compile(r"\{(?=\{(?:DATE|TIME)\()|<(?=/?at>)", re.IGNORECASE)
#: Separates a fact's label from its value: HTML renderers collapse plain spaces.
LABEL_GAP = "\u2002"


def literal(text: str) -> str:
    """Payload text for a TextRun: exactly as it came, save that a DATE()/TIME() call cannot run,
    an ``<at>`` tag cannot become a mention, and a word too long for a phone may wrap
    (``text.soft_breaks``)."""
    text = soft_breaks(text)
    if "{{" not in text and "<" not in text:
        return text
    return _CARD_FUNCTION.sub(lambda m: m[0] + "\u2060", text)


def text_runs(line: Inline, **style: Any) -> list[dict[str, Any]]:
    """TextRuns of one line of spans; ``style`` (e.g. ``weight``, ``size``) applies to every run."""
    out: list[dict[str, Any]] = []
    for span in line:
        if not span.text:
            continue
        run: dict[str, Any] = {"type": "TextRun", "text": literal(span.text), **style}
        if span.bold:
            run["weight"] = "Bolder"
        if span.italic:
            run["italic"] = True
        if span.strike:
            run["strikethrough"] = True
        if span.code:
            run["fontType"] = "Monospace"
        if span.url:
            run["selectAction"] = {"type": "Action.OpenUrl", "url": span.url}
        out.append(run)
    return out


def rich_block(inlines: list[dict[str, Any]], **props: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": inlines or [{"type": "TextRun", "text": " "}], **props}


def rich(
    value: object,
    url: str | None = None,
    *,
    bold: bool = False,
    italic: bool = False,
    code: bool = False,
    size: str | None = None,
    subtle: bool = False,
) -> str:
    """TextRuns for a ``RichTextBlock``'s ``inlines``, comma-separated: payload text shown exactly
    as it is (a fact's identifiers in a fixed-width font). ``url`` links it when ``safe_url``
    accepts it. The twin of Slack's ``rich()``."""
    line = value if isinstance(value, Inline) else Inline.of("" if value is None else str(value))
    target = safe_url(url)
    if target is not None or code or italic:
        line = Inline(
            Span(s.text, s.bold, s.italic or italic, s.strike, s.code or code, target or s.url) for s in line
        )
    style: dict[str, Any] = {}
    if bold:
        style["weight"] = "Bolder"
    if size:
        style["size"] = size
    if subtle:
        style["isSubtle"] = True
    runs = text_runs(line, **style) or [{"type": "TextRun", "text": " "}]
    return _items(runs)


def rich_facts(facts: Sequence[tuple[str, Inline]], limit: int = 160) -> str:
    """Facts as RichTextBlocks, one line each: the label in bold, then the value. A label is a
    run at the start of its line, so it never wraps in a column of its own on a phone."""
    blocks = []
    for i, (label, value) in enumerate(facts):
        clipped = clip_inline(value, int(limit)) if isinstance(value, Inline) else Inline.of(str(value))
        inlines = [{"type": "TextRun", "text": label + LABEL_GAP, "weight": "Bolder"}, *text_runs(clipped)]
        blocks.append(rich_block(inlines, spacing="Small" if i == 0 else "None"))
    return _items(blocks) if blocks else ""


def rich_blocks(doc: Doc | None, first: dict[str, Any] | None = None) -> str:
    """Free text as RichTextBlocks, comma-separated, structure kept: a block per line of a
    paragraph, list items with their marker, quotes behind a bar, code in a fixed-width font.
    ``first``: properties of the first block (e.g. ``{"separator": true}``)."""
    if doc is None:
        return ""
    blocks = _doc_blocks(doc.blocks, "")
    if blocks and first:
        blocks[0].update(first)
    return _items(blocks) if blocks else ""


def _doc_blocks(blocks: tuple[object, ...], indent: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in blocks:
        start = len(out)
        if isinstance(block, Paragraph):
            style = {"weight": "Bolder"} if block.heading else {}
            for line in block.lines:
                out.append(rich_block(_indented(indent, text_runs(line, **style)), spacing="None"))
        elif isinstance(block, Code):
            for text in block.lines:
                kept = "\u00a0" * (len(text) - len(text.lstrip(" "))) + text.lstrip(" ")
                run = {
                    "type": "TextRun",
                    "text": literal(kept or " "),
                    "fontType": "Monospace",
                    "size": "Small",
                }
                out.append(rich_block(_indented(indent, [run]), spacing="None"))
        elif isinstance(block, Quote):
            for quoted in _doc_blocks(block.blocks, ""):
                bar = {"type": "TextRun", "text": indent + "\u2502 ", "isSubtle": True}
                out.append(rich_block([bar, *quoted["inlines"]], spacing="None"))
        elif isinstance(block, ListBlock):
            for number, item in enumerate(block.items, start=block.start):
                marker = f"{number}. " if block.ordered else "\u2022 "
                inner = _doc_blocks(item, indent + "\u2003")
                if inner and isinstance(item[0], Paragraph):
                    # The item's first line follows its marker; further lines stay indented under it.
                    head = inner[0]["inlines"][1:] if len(inner[0]["inlines"]) > 1 else inner[0]["inlines"]
                    inner[0] = rich_block(
                        [{"type": "TextRun", "text": indent + marker}, *head], spacing="None"
                    )
                else:
                    inner.insert(
                        0, rich_block([{"type": "TextRun", "text": indent + marker}], spacing="None")
                    )
                out.extend(inner)
        if len(out) > start and start > 0:
            out[start]["spacing"] = "Small"  # a new paragraph or list: a little air, not a blank line
    return out


def _indented(indent: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "TextRun", "text": indent}, *runs] if indent else runs


def _items(items: list[dict[str, Any]]) -> str:
    """JSON array items, comma-separated, for a template to put inside ``[...]``."""
    return dumps(items).decode("utf-8")[1:-1]


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
        """``@<at>Name</at>, @group``: each person with a Teams account mentioned (the card's
        ``msteams`` entities, ``mention_entities``, make the tags mentions); Slack's groups and
        @here have no Teams twin and are named."""
        return ", ".join(f"@{_at(m.name)}" if m.teams else "@" + self.escape(m.name) for m in mentions)

    def template_helpers(self) -> dict[str, Callable[..., str]]:
        return {
            "mention_entities": mention_entities,
            "rich": rich,
            "rich_facts": rich_facts,
            "rich_blocks": rich_blocks,
        }

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        from translators.formats import _adaptivecard

        errors = _adaptivecard.validate(body)
        if not errors:
            errors = _unmatched_mentions(body, encoded)
        if errors:
            raise OutputInvalid(self.name, errors)
        super().validate(body, encoded)

    def headline(self, body: dict[str, Any]) -> str | None:
        try:  # the card's fallback text, else its first text
            card = body["attachments"][0]["content"]
            texts = [
                card.get("fallbackText"),
                *(e.get("text") for e in card.get("body", []) if isinstance(e, dict)),
            ]
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return next((t for t in texts if t and isinstance(t, str)), None)

    def minimal(self, n: Notification) -> dict[str, Any]:
        """The heading, the summary and the footer; payload text in TextRuns, as in the templates."""
        icon = n.emoji or OUTCOME_EMOJI.get(n.outcome, "")
        heading = Inline.of(f"{icon} {self.clip_text(n.heading, 300)}".strip())
        footer = self.escape(n.source_label) + (f" · {self.time(n.when)}" if n.when else "")
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
                    "items": [rich_block(text_runs(heading, weight="Bolder", size="Medium"))],
                },
                rich_block(text_runs(Inline.of(self.clip_text(n.summary, 2000)))),
                {"type": "TextBlock", "text": footer, "size": "Small", "isSubtle": True, "wrap": True},
            ],
        }
        if n.url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": n.url}]
        return self.shrink(envelope(card))


FORMAT = Teams()
