"""Legacy Office 365 connector MessageCard (``*.webhook.office.com``), still asked for.

https://learn.microsoft.com/en-us/outlook/actionable-messages/message-card-reference. Connectors
were retired in 2026; some Workflows flows still accept MessageCards (buttons may not render).
"""

from __future__ import annotations

from typing import Any, ClassVar

from translators.formats import OUTCOME_COLORS, OUTCOME_EMOJI, ChatFormat, OutputInvalid, escape_entities
from translators.model import Notification

CONTEXT = "http://schema.org/extensions"


class MessageCard(ChatFormat):
    name: ClassVar[str] = "teams-messagecard"
    label: ClassVar[str] = "Microsoft Teams (legacy MessageCard)"
    max_bytes: ClassVar[int] = 28 * 1024
    potential_action_max_length: ClassVar[int] = 4
    text_keys: ClassVar[frozenset[str]] = frozenset({"text", "activityText", "value", "summary"})

    def escape(self, text: str) -> str:
        """MessageCard text takes a little HTML; payload text must not become tags."""
        return escape_entities(text)

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

    def minimal(self, n: Notification) -> dict[str, Any]:
        e = self.escape
        body: dict[str, Any] = {
            "@type": "MessageCard",
            "@context": CONTEXT,
            "summary": e(n.summary),
            "themeColor": OUTCOME_COLORS.get(n.outcome, "8D8D8D"),
            "title": e(f"{OUTCOME_EMOJI.get(n.outcome, '')} {n.title}".strip()),
            "text": e(n.summary),
            "sections": [
                {
                    "facts": [
                        {"name": "Event", "value": n.event},
                        {"name": "Source", "value": n.source_label},
                        *({"name": "App", "value": e(n.app)} for _ in [0] if n.app),
                    ]
                }
            ],
        }
        if n.url:
            body["potentialAction"] = [
                {"@type": "OpenUri", "name": "Open", "targets": [{"os": "default", "uri": n.url}]}
            ]
        return self.shrink(body)

    def is_success(self, status: int, text: str) -> bool:
        # The connector answers 200 "1"; a 200 with any other body (throttling was seen so) failed.
        return status == 200 and text.strip() == "1"


FORMAT = MessageCard()
