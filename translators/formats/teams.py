"""Microsoft Teams through a Workflows (Power Automate) webhook: an Adaptive Card 1.5 in an envelope.

https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
and https://adaptivecards.io/explorer/. Teams renders cards up to 1.5 and takes messages up to 28 KB.
"""

from __future__ import annotations

from typing import Any, ClassVar

from translators.formats import OUTCOME_CARD_COLORS, OUTCOME_EMOJI, ChatFormat, OutputInvalid
from translators.model import Notification

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


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

    def validate(self, body: dict[str, Any], encoded: bytes | None = None) -> None:
        from translators.formats import _adaptivecard

        errors = _adaptivecard.validate(body)
        if errors:
            raise OutputInvalid(self.name, errors)
        super().validate(body, encoded)

    def minimal(self, n: Notification) -> dict[str, Any]:
        card: dict[str, Any] = {
            "type": "AdaptiveCard",
            "$schema": CARD_SCHEMA,
            "version": CARD_VERSION,
            "body": [
                {
                    "type": "TextBlock",
                    "text": f"{OUTCOME_EMOJI.get(n.outcome, '')} {n.title}".strip(),
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                    "color": OUTCOME_CARD_COLORS.get(n.outcome, "default"),
                },
                {"type": "TextBlock", "text": self.clip_text(n.summary, 2000), "wrap": True},
                {
                    "type": "FactSet",
                    "facts": [
                        {"title": "Event", "value": n.event},
                        {"title": "Source", "value": n.source_label},
                        *({"title": "App", "value": n.app} for _ in [0] if n.app),
                    ],
                },
            ],
        }
        if n.url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": n.url}]
        return self.shrink(envelope(card))

    def is_success(self, status: int, text: str) -> bool:
        # Workflows answers 202 Accepted: accepted by the flow, not proven posted.
        return 200 <= status < 300


FORMAT = Teams()
