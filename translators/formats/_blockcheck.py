"""Block Kit limits, and a check of a Slack body in plain Python for the request path.

``accepts(body)`` is True only for a body that the pydantic models of ``_blockkit`` accept too. It
is sound, not complete: what it does not accept goes to those models, which name each problem.
Every body our templates render passes here, so a cold start does not import and build the
models (31 classes and their schema: about 12 ms of a first request). A wrong True would send a
body Slack refuses, so tests/test_output_validators.py checks this against the models, on every
sample and on random mutations of them.

The limits are named as ``slack_sdk.models.blocks`` names them; the models and the Slack format
read them from here.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

MESSAGE_TEXT = 40_000
MESSAGE_BLOCKS = 50
MESSAGE_ATTACHMENTS = 20
ATTACHMENT_BLOCKS = 50
BLOCK_ID = 255
HEADER_TEXT = 150
SECTION_TEXT = 3000
SECTION_FIELDS = 10
SECTION_FIELD_TEXT = 2000
CONTEXT_ELEMENTS = (1, 10)
ACTIONS_ELEMENTS = (1, 25)
BUTTON_TEXT = 75
BUTTON_URL = 3000
BUTTON_VALUE = 2000
BUTTON_ACTION_ID = 255
BUTTON_ACCESSIBILITY_LABEL = 75
IMAGE_URL = 3000
IMAGE_ALT_TEXT = 2000
IMAGE_TITLE = 2000
RICH_LINK_URL = 3000
RICH_LIST_INDENT = 6
#: An attachment's colour bar: a hex colour or one of Slack's three names.
COLOR = "#[0-9A-Fa-f]{6}|good|warning|danger"

_COLOR = re.compile(COLOR)
_NO_LIMIT = 1 << 62


def accepts(body: Any) -> bool:
    """True when the body is certainly valid; False when ``_blockkit.validate`` must say why (or
    whether) it is not."""
    try:
        return _message(body)
    except (TypeError, KeyError, AttributeError, RecursionError):  # sound either way: the models decide
        return False


def _text(value: Any, least: int = 0, most: int = _NO_LIMIT) -> bool:
    return type(value) is str and least <= len(value) <= most


def _maybe_text(value: Any, least: int = 0, most: int = _NO_LIMIT) -> bool:
    return value is None or _text(value, least, most)


def _maybe_bool(value: Any) -> bool:
    return value is None or type(value) is bool


def _maybe_int(value: Any, least: int = -(1 << 62), most: int = 1 << 62) -> bool:
    return value is None or (type(value) is int and least <= value <= most)


def _list(value: Any, least: int = 0, most: int = _NO_LIMIT) -> TypeGuard[list[Any]]:
    return type(value) is list and least <= len(value) <= most


def _object(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str for k in value)


def _only(obj: Any, keys: frozenset[str]) -> bool:
    """A JSON object with no key outside ``keys`` (the models forbid unknown keys)."""
    return type(obj) is dict and obj.keys() <= keys


_TEXT_KEYS = frozenset({"type", "text", "emoji", "verbatim"})


def _text_object(obj: Any, most: int = _NO_LIMIT, *, plain: bool = False) -> bool:
    if not _only(obj, _TEXT_KEYS):
        return False
    kind = obj.get("type")
    if kind == "plain_text":
        if "verbatim" in obj:
            return False
    elif kind != "mrkdwn" or plain or "emoji" in obj:
        return False
    return (
        _text(obj.get("text"), 1, most) and _maybe_bool(obj.get("emoji")) and _maybe_bool(obj.get("verbatim"))
    )


_BUTTON_KEYS = frozenset(
    {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}
)


def _button(obj: Any) -> bool:
    return (
        _only(obj, _BUTTON_KEYS)
        and obj.get("type") == "button"
        and _text_object(obj.get("text"), BUTTON_TEXT, plain=True)
        and _maybe_text(obj.get("action_id"), 0, BUTTON_ACTION_ID)
        and _maybe_text(obj.get("url"), 0, BUTTON_URL)
        and _maybe_text(obj.get("value"), 0, BUTTON_VALUE)
        and obj.get("style") in (None, "primary", "danger")
        and (obj.get("confirm") is None or _object(obj["confirm"]))
        and _maybe_text(obj.get("accessibility_label"), 0, BUTTON_ACCESSIBILITY_LABEL)
    )


_IMAGE_KEYS = frozenset({"type", "image_url", "alt_text"})


def _image(obj: Any) -> bool:
    return (
        _only(obj, _IMAGE_KEYS)
        and obj.get("type") == "image"
        and _text(obj.get("image_url"), 0, IMAGE_URL)
        and _text(obj.get("alt_text"), 0, IMAGE_ALT_TEXT)
    )


_STYLE_KEYS = frozenset({"bold", "italic", "strike", "code"})


def _style(obj: Any) -> bool:
    return obj is None or (
        _only(obj, _STYLE_KEYS) and all(type(v) is bool or v is None for v in obj.values())
    )


_RICH_ELEMENTS: dict[str, tuple[frozenset[str], Any]] = {
    "text": (frozenset({"type", "text", "style"}), lambda o: _text(o.get("text"), 1)),
    "link": (
        frozenset({"type", "url", "text", "unsafe", "style"}),
        lambda o: (
            _text(o.get("url"), 1, RICH_LINK_URL)
            and _maybe_text(o.get("text"), 1)
            and _maybe_bool(o.get("unsafe"))
        ),
    ),
    "date": (
        frozenset({"type", "timestamp", "format", "url", "fallback", "style"}),
        lambda o: (
            o.get("timestamp") is not None
            and _maybe_int(o["timestamp"])
            and _text(o.get("format"), 1)
            and _maybe_text(o.get("url"))
            and _maybe_text(o.get("fallback"))
        ),
    ),
    "emoji": (
        frozenset({"type", "name", "unicode"}),
        lambda o: _text(o.get("name"), 1) and _maybe_text(o.get("unicode")),
    ),
    "user": (frozenset({"type", "user_id", "style"}), lambda o: _text(o.get("user_id"), 1)),
    "usergroup": (frozenset({"type", "usergroup_id", "style"}), lambda o: _text(o.get("usergroup_id"), 1)),
    "channel": (frozenset({"type", "channel_id", "style"}), lambda o: _text(o.get("channel_id"), 1)),
    "broadcast": (frozenset({"type", "range"}), lambda o: o.get("range") in ("here", "channel", "everyone")),
}


def _rich_element(obj: Any) -> bool:
    if type(obj) is not dict:
        return False
    kind = obj.get("type")
    spec = _RICH_ELEMENTS.get(kind) if type(kind) is str else None
    return spec is not None and _only(obj, spec[0]) and _style(obj.get("style")) and bool(spec[1](obj))


def _rich_elements(value: Any, least: int) -> bool:
    return _list(value, least) and all(_rich_element(e) for e in value)


_SECTION_KEYS = frozenset({"type", "elements"})
_LIST_KEYS = frozenset({"type", "style", "elements", "indent", "offset", "border"})
_QUOTE_KEYS = frozenset({"type", "elements", "border"})


def _rich_section(obj: Any) -> bool:
    return (
        _only(obj, _SECTION_KEYS)
        and obj.get("type") == "rich_text_section"
        and _rich_elements(obj.get("elements"), 0)
    )


def _rich_part(obj: Any) -> bool:
    if type(obj) is not dict:
        return False
    kind = obj.get("type")
    if kind == "rich_text_section":
        return _rich_section(obj)
    if kind == "rich_text_list":
        elements = obj.get("elements")
        return (
            _only(obj, _LIST_KEYS)
            and obj.get("style") in ("bullet", "ordered")
            and _list(elements, 1)
            and all(_rich_section(e) for e in elements)
            and _maybe_int(obj.get("indent"), 0, RICH_LIST_INDENT)
            and _maybe_int(obj.get("offset"), 0)
            and _maybe_int(obj.get("border"), 0, 1)
        )
    if kind in ("rich_text_preformatted", "rich_text_quote"):
        return (
            _only(obj, _QUOTE_KEYS)
            and _rich_elements(obj.get("elements"), 1)
            and _maybe_int(obj.get("border"), 0, 1)
        )
    return False


_BLOCK_KEYS: dict[str, frozenset[str]] = {
    "header": frozenset({"type", "block_id", "text"}),
    "section": frozenset({"type", "block_id", "text", "fields", "accessory", "expand"}),
    "context": frozenset({"type", "block_id", "elements"}),
    "actions": frozenset({"type", "block_id", "elements"}),
    "divider": frozenset({"type", "block_id"}),
    "image": frozenset({"type", "block_id", "image_url", "alt_text", "title"}),
    "rich_text": frozenset({"type", "block_id", "elements"}),
}


def _block(obj: Any) -> bool:
    if type(obj) is not dict:
        return False
    kind = obj.get("type")
    keys = _BLOCK_KEYS.get(kind) if type(kind) is str else None
    if keys is None or not obj.keys() <= keys or not _maybe_text(obj.get("block_id"), 0, BLOCK_ID):
        return False
    if kind == "header":
        return _text_object(obj.get("text"), HEADER_TEXT, plain=True)
    if kind == "section":
        text, fields, accessory = obj.get("text"), obj.get("fields"), obj.get("accessory")
        return (
            (text is None or _text_object(text, SECTION_TEXT))
            and (
                fields is None
                or (
                    _list(fields, 0, SECTION_FIELDS)
                    and all(_text_object(f, SECTION_FIELD_TEXT) for f in fields)
                )
            )
            and (accessory is None or _button(accessory) or _image(accessory))
            and _maybe_bool(obj.get("expand"))
            and (text is not None or bool(fields))
        )
    if kind == "context":
        elements = obj.get("elements")
        return _list(elements, *CONTEXT_ELEMENTS) and all(_image(e) or _text_object(e) for e in elements)
    if kind == "actions":
        elements = obj.get("elements")
        return _list(elements, *ACTIONS_ELEMENTS) and all(_button(e) for e in elements)
    if kind == "divider":
        return True
    if kind == "image":
        title = obj.get("title")
        return (
            _text(obj.get("image_url"), 0, IMAGE_URL)
            and _text(obj.get("alt_text"), 0, IMAGE_ALT_TEXT)
            and (title is None or _text_object(title, IMAGE_TITLE, plain=True))
        )
    elements = obj.get("elements")  # rich_text
    return _list(elements, 1) and all(_rich_part(e) for e in elements)


def _blocks(value: Any, most: int) -> bool:
    return value is None or (_list(value, 0, most) and all(_block(b) for b in value))


def _attachment(obj: Any) -> bool:
    if type(obj) is not dict:  # unknown keys are ignored here, as Slack ignores them
        return False
    color = obj.get("color")
    return (
        (color is None or (type(color) is str and _COLOR.fullmatch(color) is not None))
        and _maybe_text(obj.get("fallback"))
        and _blocks(obj.get("blocks"), ATTACHMENT_BLOCKS)
    )


def _message(body: Any) -> bool:
    if type(body) is not dict:
        return False
    text, blocks, attachments = body.get("text"), body.get("blocks"), body.get("attachments")
    if not (
        _maybe_text(text, 0, MESSAGE_TEXT)
        and _blocks(blocks, MESSAGE_BLOCKS)
        and (
            attachments is None
            or (_list(attachments, 0, MESSAGE_ATTACHMENTS) and all(_attachment(a) for a in attachments))
        )
        and all(_maybe_text(body.get(k)) for k in ("username", "icon_emoji", "icon_url"))
        and all(_maybe_bool(body.get(k)) for k in ("unfurl_links", "unfurl_media", "mrkdwn"))
    ):
        return False
    # Slack's notification text (no_text): the text, or else with attachments only their fallback.
    if text is not None and text.strip():
        return True
    if blocks or not attachments:
        return False
    return any((a.get("fallback") or "").strip() for a in attachments)
