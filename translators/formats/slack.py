"""Slack incoming webhooks: Block Kit.

https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/ and
https://docs.slack.dev/reference/block-kit/blocks. Limits mirror ``slack_sdk.models.blocks``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from translators.formats import OUTCOME_EMOJI, ChatFormat, OutputInvalid, _blockkit, escape_entities
from translators.formats._blockkit import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    Message,
    SectionBlock,
)
from translators.model import Notification

# A cut must not leave half an entity (``&am``) or half a ``<url|label>`` behind.
_OPEN_ENTITY = re.compile(r"&[a-z]{0,4}$")


class Slack(ChatFormat):
    name: ClassVar[str] = "slack"
    label: ClassVar[str] = "Slack"
    # Slack documents no byte limit for webhook bodies; 50 blocks of 3000 characters bound it.
    max_bytes: ClassVar[int] = 200_000

    # The limits live with the Block Kit models that enforce them.
    text_max_length: ClassVar[int] = Message.text_max_length
    blocks_max_length: ClassVar[int] = Message.blocks_max_length
    header_text_max_length: ClassVar[int] = HeaderBlock.text_max_length
    section_text_max_length: ClassVar[int] = SectionBlock.text_max_length
    section_fields_max_length: ClassVar[int] = SectionBlock.fields_max_length
    section_field_text_max_length: ClassVar[int] = SectionBlock.field_text_max_length
    context_elements_max_length: ClassVar[int] = ContextBlock.elements_max_length
    context_text_max_length: ClassVar[int] = 3000
    button_text_max_length: ClassVar[int] = ButtonElement.text_max_length
    actions_elements_max_length: ClassVar[int] = ActionsBlock.elements_max_length

    def escape(self, text: str) -> str:
        """Only ``&``, ``<`` and ``>``: what Slack parses as control sequences (mentions, links)."""
        return escape_entities(text)

    def link(self, url: str | None, label: str) -> str:
        return f"<{url}|{label}>" if url else label

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
        blocks = body.get("blocks")
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
        errors = _blockkit.validate(body)
        if errors:
            raise OutputInvalid(self.name, errors)
        super().validate(body, encoded)

    def minimal(self, n: Notification) -> dict[str, Any]:
        e = self.escape
        title = f"{OUTCOME_EMOJI.get(n.outcome, '')} {n.title}".strip()
        lines = [f"*{e(title)}*", e(n.summary)]
        if n.url:
            lines.append(self.link(n.url, "Open"))
        return {
            "text": e(n.summary),
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
                    "elements": [
                        {"type": "mrkdwn", "text": e(f"{n.source_label} · {n.event}"), "verbatim": True}
                    ],
                },
            ],
        }

    def is_success(self, status: int, text: str) -> bool:
        return status == 200 and text.strip() == "ok"


FORMAT = Slack()
