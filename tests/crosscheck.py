"""Independent checks of rendered bodies: the official Adaptive Card schema and slack_sdk's models.

These are slower and heavier than the runtime validators, which is why they live in tests only.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parent / "schemas" / "adaptive-card-1.4.json"


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
    errors = []
    attachments = body.get("attachments") or []
    if not str(body.get("text", "")).strip():
        if body.get("blocks") or not attachments:
            errors.append("text: missing (Slack answers no_text)")
        elif not any(str(a.get("fallback", "")).strip() for a in attachments):
            errors.append("attachments: no text and no fallback for the notification")
    errors += _blocks_errors("blocks", body.get("blocks", []))
    for i, attachment in enumerate(attachments):
        errors += _attachment_errors(f"attachments.{i}", attachment)
    return errors


def _attachment_errors(where: str, raw: dict[str, Any]) -> list[str]:
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.attachments import BlockAttachment
    from slack_sdk.models.blocks import Block

    errors = _blocks_errors(f"{where}.blocks", raw.get("blocks", []))
    blocks = [Block.parse(b) for b in raw.get("blocks", [])]
    try:
        attachment = BlockAttachment(
            blocks=[b for b in blocks if b is not None], color=raw.get("color"), fallback=raw.get("fallback")
        )
        attachment.validate_json()
        if attachment.to_dict() != raw:
            errors.append(f"{where}: slack_sdk does not round-trip it (unknown or invalid keys)")
    except SlackObjectFormationError as exc:
        errors.append(f"{where}: {exc}")
    return errors


def _blocks_errors(where: str, raw_blocks: list[dict[str, Any]]) -> list[str]:
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    errors = []
    for i, raw in enumerate(raw_blocks):
        block = Block.parse(raw)
        if block is None:
            errors.append(f"{where}.{i}: slack_sdk cannot parse {raw.get('type')!r}")
            continue
        try:
            # validate_json() checks the block itself; to_dict() also checks its elements
            # (button text and URL lengths), and a changed round trip means a dropped unknown key.
            block.validate_json()
            if block.to_dict() != raw:
                errors.append(f"{where}.{i}: slack_sdk does not round-trip it (unknown or invalid keys)")
        except SlackObjectFormationError as exc:
            errors.append(f"{where}.{i}: {exc}")
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
