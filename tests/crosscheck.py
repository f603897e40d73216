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
    """The schema's errors, and those of the ``msteams`` extension, which the schema does not list.

    Teams documents it for mentions (https://learn.microsoft.com/microsoftteams/platform/
    task-modules-and-cards/cards/cards-format#mention-support-within-adaptive-cards): entities of
    type ``mention`` whose ``text`` (``<at>Name</at>``) appears in a TextBlock of the card.
    """
    card = dict(card)
    msteams = card.pop("msteams", None)
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in _card_validator().iter_errors(card)
    ]
    if msteams is not None:
        errors += _msteams_errors(msteams, _texts(card.get("body") or []))
    return errors


def _texts(items: list[Any]) -> list[str]:
    found: list[str] = []
    for item in items:
        if isinstance(item, dict):
            if item.get("type") == "TextBlock" and isinstance(item.get("text"), str):
                found.append(item["text"])
            for key in ("items", "columns", "body"):
                found += _texts(item.get(key) or [])
    return found


def _msteams_errors(msteams: Any, texts: list[str]) -> list[str]:
    if not isinstance(msteams, dict) or set(msteams) - {"entities", "width"}:
        return [f"msteams: only entities and width are documented, got {msteams!r}"]
    errors = []
    for i, entity in enumerate(msteams.get("entities") or []):
        text = entity.get("text", "") if isinstance(entity, dict) else ""
        mentioned = entity.get("mentioned") if isinstance(entity, dict) else None
        if entity.get("type") != "mention" or not (text.startswith("<at>") and text.endswith("</at>")):
            errors.append(f"msteams.entities.{i}: not a mention with <at>...</at> text")
        elif not (isinstance(mentioned, dict) and mentioned.get("id") and mentioned.get("name")):
            errors.append(f"msteams.entities.{i}: mentioned needs id and name")
        elif not any(text in t for t in texts):
            errors.append(f"msteams.entities.{i}: {text} is in no TextBlock")
    return errors


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
