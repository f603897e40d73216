"""Independent checks of rendered bodies: the official Adaptive Card schema and slack_sdk's models.

These are slower and heavier than the runtime validators, which is why they live in tests only.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parent / "schemas" / "adaptive-card-1.5.json"


@cache
def _card_validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def card_errors(card: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in _card_validator().iter_errors(card)
    ]


def slack_errors(body: dict[str, Any]) -> list[str]:
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    errors = []
    if not str(body.get("text", "")).strip():
        errors.append("text: missing (Slack answers no_text)")
    for i, raw in enumerate(body.get("blocks", [])):
        block = Block.parse(raw)
        if block is None:
            errors.append(f"blocks.{i}: slack_sdk cannot parse {raw.get('type')!r}")
            continue
        try:
            # validate_json() checks the block itself; to_dict() also checks its elements
            # (button text and URL lengths), and a changed round trip means a dropped unknown key.
            block.validate_json()
            if block.to_dict() != raw:
                errors.append(f"blocks.{i}: slack_sdk does not round-trip it (unknown or invalid keys)")
        except SlackObjectFormationError as exc:
            errors.append(f"blocks.{i}: {exc}")
    return errors


def check(format_name: str, body: dict[str, Any]) -> list[str]:
    """Problems an independent validator finds with a rendered body ([] when fine)."""
    if format_name == "slack":
        return slack_errors(body)
    if format_name == "teams":
        attachments = body.get("attachments") or [{}]
        return card_errors(attachments[0].get("content") or {})
    if format_name == "teams-messagecard":
        problems = []
        if body.get("@type") != "MessageCard" or "schema.org/extensions" not in str(body.get("@context")):
            problems.append("@type/@context missing")
        if not (body.get("summary") or body.get("text")):
            problems.append("Summary or Text is required.")
        return problems
    raise ValueError(format_name)
