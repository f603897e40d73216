"""Slack incoming webhooks: Block Kit.

https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/ and
https://docs.slack.dev/reference/block-kit/blocks. Limits mirror ``slack_sdk.models.blocks``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from translators.formats import (
    OUTCOME_COLORS,
    OUTCOME_EMOJI,
    ChatFormat,
    OutputInvalid,
    _blockcheck,
    clip,
    escape_entities,
    utc_text,
)
from translators.model import Notification, safe_url
from translators.people import Mention, Mentions
from translators.text import Code, Doc, Inline, ListBlock, Paragraph, Quote, Span, clip_inline

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A cut must not leave half an entity (``&am``) or half a ``<url|label>`` behind.
_OPEN_ENTITY = re.compile(r"&[a-z]{0,4}$")
#: How Slack shows a time in the reader's own time zone ("Nov 30th, 2026 at 10:00 AM").
DATE_FORMAT = "{date_short_pretty} at {time}"


class Slack(ChatFormat):
    name: ClassVar[str] = "slack"
    label: ClassVar[str] = "Slack"
    # Slack documents no byte limit for webhook bodies; 50 blocks of 3000 characters bound it.
    max_bytes: ClassVar[int] = 200_000

    # The limits the Block Kit check and models enforce (_blockcheck), not a copy of them.
    text_max_length: ClassVar[int] = _blockcheck.MESSAGE_TEXT
    blocks_max_length: ClassVar[int] = _blockcheck.MESSAGE_BLOCKS
    header_text_max_length: ClassVar[int] = _blockcheck.HEADER_TEXT
    section_text_max_length: ClassVar[int] = _blockcheck.SECTION_TEXT
    section_fields_max_length: ClassVar[int] = _blockcheck.SECTION_FIELDS
    section_field_text_max_length: ClassVar[int] = _blockcheck.SECTION_FIELD_TEXT
    context_elements_max_length: ClassVar[int] = _blockcheck.CONTEXT_ELEMENTS[1]
    context_text_max_length: ClassVar[int] = 3000
    button_text_max_length: ClassVar[int] = _blockcheck.BUTTON_TEXT
    actions_elements_max_length: ClassVar[int] = _blockcheck.ACTIONS_ELEMENTS[1]

    def escape(self, text: str) -> str:
        """Only ``&``, ``<`` and ``>``: what Slack parses as control sequences (mentions, links)."""
        return escape_entities(text)

    def link(self, url: str | None, label: str) -> str:
        return f"<{url}|{label}>" if url else label

    def inline(self, line: Inline) -> str:
        """mrkdwn for a fact's value: identifiers as code, which Slack never formats."""
        return "".join(_mrkdwn_span(span) for span in line)

    def document(self, doc: Doc) -> list[dict[str, Any]]:
        """The elements of a ``rich_text`` block: Slack shows their text exactly as it is.

        Slack recommends rich text for user-provided text; no payload character is markup in it,
        so nothing needs escaping and no mention, link or formatting can come from a payload.
        """
        return _rich_blocks(doc.blocks, 0)

    def template_helpers(self) -> dict[str, Callable[..., str]]:
        return {"rich": rich, "rich_facts": rich_facts}

    def mentions(self, mentions: Mentions) -> str:
        """mrkdwn mentions, comma-separated: ``<@U…>``, ``<!subteam^S…>``, ``<!here>`` (Slack draws
        each as @name); ``@name`` where there is no id."""
        return ", ".join(_mrkdwn_mention(m) for m in mentions)

    def time(self, moment: datetime) -> str:
        """``<!date^...>``: each reader sees it in their own time zone; the fallback is UTC."""
        aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        return f"<!date^{int(aware.timestamp())}^{DATE_FORMAT}|{utc_text(aware)}>"

    def clip_text(self, text: str, limit: int) -> str:
        if len(text) <= limit:
            return text
        head = text[: max(limit - len(self.ellipsis), 0)]
        head = _OPEN_ENTITY.sub("", head)
        if head.rfind("<") > head.rfind(">"):
            head = head[: head.rfind("<")]
        return head.rstrip() + self.ellipsis

    def clip_limits(self, body: dict[str, Any]) -> None:
        if isinstance(body.get("text"), str):
            body["text"] = self.clip_text(body["text"], self.text_max_length)
        self._fit_blocks(body.get("blocks"))
        attachments = body.get("attachments")
        if isinstance(attachments, list):
            for attachment in attachments:
                if isinstance(attachment, dict):
                    if isinstance(attachment.get("fallback"), str):
                        attachment["fallback"] = self.clip_text(attachment["fallback"], self.text_max_length)
                    self._fit_blocks(attachment.get("blocks"))

    def _fit_blocks(self, blocks: Any) -> None:
        if isinstance(blocks, list):
            del blocks[self.blocks_max_length :]
            for block in blocks:
                if isinstance(block, dict):
                    self._fit_block(block)

    def _fit_block(self, block: dict[str, Any]) -> None:
        kind = block.get("type")
        if kind == "header":
            self._clip_object(block.get("text"), self.header_text_max_length)
        elif kind == "section":
            self._clip_object(block.get("text"), self.section_text_max_length)
            fields = block.get("fields")
            if isinstance(fields, list):
                del fields[self.section_fields_max_length :]
                for field in fields:
                    self._clip_object(field, self.section_field_text_max_length)
        elif kind == "context":
            elements = block.get("elements")
            if isinstance(elements, list):
                del elements[self.context_elements_max_length :]
                for element in elements:
                    self._clip_object(element, self.context_text_max_length)
        elif kind == "actions":
            elements = block.get("elements")
            if isinstance(elements, list):
                del elements[self.actions_elements_max_length :]
                for element in elements:
                    if isinstance(element, dict):
                        self._clip_object(element.get("text"), self.button_text_max_length)

    def _clip_object(self, obj: Any, limit: int) -> None:
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            obj["text"] = self.clip_text(obj["text"], limit)

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        if not _blockcheck.accepts(body):
            # Only now the pydantic models, which say what is wrong (a cold start spares them).
            from translators.formats import _blockkit

            errors = _blockkit.validate(body)
            if errors:
                raise OutputInvalid(self.name, errors)
        super().validate(body, encoded)

    def headline(self, body: dict[str, Any]) -> str | None:
        text = body.get("text")
        attachments = body.get("attachments")
        if not text and isinstance(attachments, list) and attachments and isinstance(attachments[0], dict):
            text = attachments[0].get("fallback")
        return text if isinstance(text, str) else None

    def minimal(self, n: Notification) -> dict[str, Any]:
        e = self.escape
        title = f"{n.emoji or OUTCOME_EMOJI.get(n.outcome, '')} {n.title}".strip()
        lines = [f"*{e(title)}*", e(n.summary)]
        if n.url:
            lines.append(self.link(n.url, "Open"))
        footer = e(n.source_label) + (f" · {self.time(n.when)}" if n.when else "")
        return {
            "text": e(f"{title} · {n.app_display}" if n.app_display else title),
            "attachments": [
                {
                    "color": "#" + OUTCOME_COLORS.get(n.outcome, "8D8D8D"),
                    "blocks": [
                        {
                            "type": "section",
                            "text": {
                                "type": "mrkdwn",
                                "text": self.clip_text("\n".join(lines), self.section_text_max_length),
                                "verbatim": True,
                            },
                        },
                        {
                            "type": "context",
                            "elements": [{"type": "mrkdwn", "text": footer, "verbatim": True}],
                        },
                    ],
                }
            ],
        }


def _mrkdwn_mention(m: Mention) -> str:
    kind = m.slack_kind
    if kind == "user":
        return f"<@{m.slack}>"
    if kind == "usergroup":
        return f"<!subteam^{m.slack}>"
    if kind == "broadcast":
        return f"<!{m.slack}>"
    return "@" + escape_entities(m.name)


def _rich_mentions(mentions: Mentions) -> list[dict[str, Any]]:
    """Rich text elements that mention: Slack draws each as the person's, group's or @here's name."""
    out: list[dict[str, Any]] = []
    for m in mentions:
        if out:
            out.append({"type": "text", "text": ", "})
        kind = m.slack_kind
        if kind == "user":
            out.append({"type": "user", "user_id": m.slack})
        elif kind == "usergroup":
            out.append({"type": "usergroup", "usergroup_id": m.slack})
        elif kind == "broadcast":
            out.append({"type": "broadcast", "range": m.slack})
        else:
            out.append({"type": "text", "text": "@" + m.name})
    return out


def _mrkdwn_span(span: Span) -> str:
    if span.code:
        # No escape exists for a backtick inside code; a look-alike keeps the text readable.
        return f"`{escape_entities(span.text.replace('`', 'ˋ'))}`"
    return escape_entities(span.text)


def rich(
    value: object, url: str | None = None, *, bold: bool = False, italic: bool = False, code: bool = False
) -> str:
    """Rich text elements for a template, comma-separated, to go inside a section's ``elements``.

    ``value`` is payload text (a string, or a fact's runs, whose identifiers come out in code
    style); rich text is shown exactly as it is, so nothing in it needs escaping. ``url`` makes a
    link when ``safe_url`` accepts it. ``n.mentions`` becomes user, group and @here elements: the
    only way a mention gets into a message, and it comes from configuration.
    """
    if isinstance(value, Mentions):
        return _elements(_rich_mentions(value))
    line = value if isinstance(value, Inline) else Inline.of("" if value is None else str(value))
    target = safe_url(url)
    if target is not None:
        line = Inline(Span(s.text, s.bold, s.italic, s.strike, s.code, target) for s in line)
    if code:
        line = Inline(Span(s.text, s.bold, s.italic, s.strike, True, s.url) for s in line)
    return _elements(_rich_spans(line, bold=bold, italic=italic))


def rich_facts(facts: Sequence[tuple[str, Inline]], limit: int = 300) -> str:
    """Facts as rich text elements, one line each (label in bold, two spaces, the value): what
    ``rich(label, bold=true), rich(value | clip(limit))`` per fact gives, in one call."""
    elements: list[dict[str, Any]] = []
    for i, (label, value) in enumerate(facts):
        if i:
            elements.append({"type": "text", "text": "\n"})
        elements += _rich_spans(Inline.of(f"{label}  "), bold=True) or [{"type": "text", "text": " "}]
        clipped = (
            clip_inline(value, int(limit))
            if isinstance(value, Inline)
            else Inline.of(clip(str(value), int(limit)))
        )
        elements += _rich_spans(clipped) or [{"type": "text", "text": " "}]
    return _elements(elements)


#: An element where there would be none: a rich text section may not be empty.
_EMPTY_ELEMENT = '{"type":"text","text":" "}'


def _elements(elements: list[dict[str, Any]]) -> str:
    """The elements as JSON, comma-separated: one encoding of the list, its brackets dropped."""
    return _ENCODER.encode(elements)[1:-1] if elements else _EMPTY_ELEMENT


def _rich_spans(line: Inline, *, bold: bool = False, italic: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for span in line:
        if not span.text:
            continue
        style = {
            key: True
            for key, on in (
                ("bold", span.bold or bold),
                ("italic", span.italic or italic),
                ("strike", span.strike),
                ("code", span.code),
            )
            if on
        }
        element: dict[str, Any] = (
            {"type": "link", "url": span.url, "text": span.text}
            if span.url
            else {"type": "text", "text": span.text}
        )
        if style:
            element["style"] = style
        out.append(element)
    return out


def _rich_lines(lines: tuple[Inline, ...], *, bold: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if i:
            out.append({"type": "text", "text": "\n"})
        out.extend(_rich_spans(line, bold=bold))
    return out


def _flat(blocks: tuple[object, ...]) -> list[dict[str, Any]]:
    """Blocks as inline elements separated by line breaks (inside a list item or a quote)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            elements = _rich_lines(block.lines, bold=block.heading)
        elif isinstance(block, Code):
            elements = [{"type": "text", "text": "\n".join(block.lines), "style": {"code": True}}]
        elif isinstance(block, Quote):
            elements = _flat(block.blocks)
        else:
            continue  # nested lists are written as lists of their own by _rich_blocks
        if out and elements:
            out.append({"type": "text", "text": "\n"})
        out.extend(elements)
    return out


def _rich_blocks(blocks: tuple[object, ...], indent: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            elements = _rich_lines(block.lines, bold=block.heading)
            if elements:
                out.append({"type": "rich_text_section", "elements": elements})
        elif isinstance(block, Code):
            if block.lines:
                text = "\n".join(block.lines)
                out.append({"type": "rich_text_preformatted", "elements": [{"type": "text", "text": text}]})
        elif isinstance(block, Quote):
            elements = _flat(block.blocks)
            if elements:
                out.append({"type": "rich_text_quote", "elements": elements})
        elif isinstance(block, ListBlock):
            out.extend(_rich_list(block, indent))
    return out


def _rich_list(block: ListBlock, indent: int) -> list[dict[str, Any]]:
    """Slack's lists are flat: a nested list is a list of its own with a deeper ``indent``."""
    out: list[dict[str, Any]] = []
    style = "ordered" if block.ordered else "bullet"
    current: list[dict[str, Any]] = []
    first_number = block.start

    def flush(next_number: int) -> None:
        nonlocal current, first_number
        if current:
            element: dict[str, Any] = {"type": "rich_text_list", "style": style, "elements": current}
            if indent:
                element["indent"] = indent
            if block.ordered and first_number != 1:
                element["offset"] = first_number - 1
            out.append(element)
        current, first_number = [], next_number

    for number, item in enumerate(block.items, start=block.start):
        elements = _flat(item)
        current.append({"type": "rich_text_section", "elements": elements or [{"type": "text", "text": " "}]})
        nested = [child for child in item if isinstance(child, ListBlock)]
        if nested:
            flush(number + 1)
            for child in nested:
                out.extend(_rich_list(child, min(indent + 1, 6)))
    flush(0)
    return out


FORMAT = Slack()
