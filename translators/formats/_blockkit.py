"""Runtime validator of a Slack incoming-webhook body (Block Kit), as pydantic v2 models.

Only what our templates may produce is modelled: the blocks ``header``, ``section``, ``context``,
``actions``, ``divider``, ``image`` and ``rich_text`` (with its sections, lists, quotes,
preformatted text and their elements), button and image elements, text objects, and attachments
that carry a colour bar and blocks.
Limits are class constants named the way ``slack_sdk.models.blocks`` names them
(``SectionBlock.text_max_length``...), so code that shortens text can import them. Unknown keys
on blocks, elements and text objects are errors because Slack answers ``invalid_blocks`` for them;
unknown top-level keys (``channel``, ``thread_ts``...) are ignored, as Slack ignores them.

The tests cross-check valid samples against ``slack_sdk``'s own models; importing ``slack_sdk``
costs ~110 ms, too much for a cold start, hence these models. The limits live in ``_blockcheck``,
whose plain-Python check passes every body our templates render, so that these models are
imported and built only for a body it does not accept (their errors name each problem).
"""

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from translators.errors import FieldError
from translators.formats import _blockcheck as limits
from translators.formats._validation import field_errors

__all__ = [
    "ActionsBlock",
    "Attachment",
    "ButtonElement",
    "ContextBlock",
    "DividerBlock",
    "HeaderBlock",
    "ImageBlock",
    "ImageElement",
    "Message",
    "PlainTextObject",
    "RichTextBlock",
    "SectionBlock",
    "TextObject",
    "validate",
]

_TEXT_TOO_LONG = "text_too_long"


def _max_text(limit: int) -> Callable[["TextObject"], "TextObject"]:
    """A check of ``obj.text`` against ``limit``; its error path is completed with ``.text``."""

    def check(obj: TextObject) -> TextObject:
        if len(obj.text) > limit:
            raise PydanticCustomError(
                _TEXT_TOO_LONG, "Text should have at most {limit} characters", {"limit": limit}
            )
        return obj

    return check


class _Strict(BaseModel):
    # strict: JSON types only (no "true" for true, no "5" for 5); forbid: Slack rejects unknown keys.
    # defer_build: built once, on the first validation, not at import.
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


# ---------------------------------------------------------------------------------------------
# Composition objects
# ---------------------------------------------------------------------------------------------


class TextObject(_Strict):
    """``plain_text`` or ``mrkdwn``; ``emoji`` is only valid on the first, ``verbatim`` on the second."""

    type: Literal["plain_text", "mrkdwn"]
    text: str = Field(min_length=1)
    emoji: bool | None = None
    verbatim: bool | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> Self:
        if self.type == "plain_text" and "verbatim" in self.model_fields_set:
            raise PydanticCustomError("verbatim_on_plain_text", "'verbatim' is only valid on mrkdwn text")
        if self.type == "mrkdwn" and "emoji" in self.model_fields_set:
            raise PydanticCustomError("emoji_on_mrkdwn", "'emoji' is only valid on plain_text text")
        return self


class PlainTextObject(TextObject):
    """Where Slack takes plain text only (header, button, image title)."""

    type: Literal["plain_text"]


# ---------------------------------------------------------------------------------------------
# Block elements
# ---------------------------------------------------------------------------------------------


class ButtonElement(_Strict):
    text_max_length: ClassVar[int] = limits.BUTTON_TEXT
    url_max_length: ClassVar[int] = limits.BUTTON_URL
    value_max_length: ClassVar[int] = limits.BUTTON_VALUE
    action_id_max_length: ClassVar[int] = limits.BUTTON_ACTION_ID
    accessibility_label_max_length: ClassVar[int] = limits.BUTTON_ACCESSIBILITY_LABEL

    type: Literal["button"]
    text: Annotated[PlainTextObject, AfterValidator(_max_text(text_max_length))]
    action_id: str | None = Field(default=None, max_length=action_id_max_length)
    url: str | None = Field(default=None, max_length=url_max_length)
    value: str | None = Field(default=None, max_length=value_max_length)
    style: Literal["primary", "danger"] | None = None
    confirm: dict[str, Any] | None = None
    accessibility_label: str | None = Field(default=None, max_length=accessibility_label_max_length)


class ImageElement(_Strict):
    image_url_max_length: ClassVar[int] = limits.IMAGE_URL
    alt_text_max_length: ClassVar[int] = limits.IMAGE_ALT_TEXT

    type: Literal["image"]
    image_url: str = Field(max_length=image_url_max_length)
    alt_text: str = Field(max_length=alt_text_max_length)


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------


class _Block(_Strict):
    block_id_max_length: ClassVar[int] = limits.BLOCK_ID

    block_id: str | None = Field(default=None, max_length=block_id_max_length)


class HeaderBlock(_Block):
    text_max_length: ClassVar[int] = limits.HEADER_TEXT

    type: Literal["header"]
    text: Annotated[PlainTextObject, AfterValidator(_max_text(text_max_length))]


class SectionBlock(_Block):
    text_max_length: ClassVar[int] = limits.SECTION_TEXT
    fields_max_length: ClassVar[int] = limits.SECTION_FIELDS
    field_text_max_length: ClassVar[int] = limits.SECTION_FIELD_TEXT

    type: Literal["section"]
    text: Annotated[TextObject, AfterValidator(_max_text(text_max_length))] | None = None
    fields: list[Annotated[TextObject, AfterValidator(_max_text(field_text_max_length))]] | None = Field(
        default=None, max_length=fields_max_length
    )
    accessory: Annotated[ButtonElement | ImageElement, Field(discriminator="type")] | None = None
    expand: bool | None = None

    @model_validator(mode="after")
    def _text_or_fields(self) -> Self:
        if self.text is None and not self.fields:
            raise PydanticCustomError("text_or_fields", "A section needs 'text' or 'fields'")
        return self


class ContextBlock(_Block):
    elements_min_length: ClassVar[int] = limits.CONTEXT_ELEMENTS[0]
    elements_max_length: ClassVar[int] = limits.CONTEXT_ELEMENTS[1]

    type: Literal["context"]
    elements: list[Annotated[TextObject | ImageElement, Field(discriminator="type")]] = Field(
        min_length=elements_min_length, max_length=elements_max_length
    )


class ActionsBlock(_Block):
    elements_min_length: ClassVar[int] = limits.ACTIONS_ELEMENTS[0]
    elements_max_length: ClassVar[int] = limits.ACTIONS_ELEMENTS[1]

    type: Literal["actions"]
    elements: list[ButtonElement] = Field(min_length=elements_min_length, max_length=elements_max_length)


class DividerBlock(_Block):
    type: Literal["divider"]


class ImageBlock(_Block):
    image_url_max_length: ClassVar[int] = limits.IMAGE_URL
    alt_text_max_length: ClassVar[int] = limits.IMAGE_ALT_TEXT
    title_max_length: ClassVar[int] = limits.IMAGE_TITLE

    type: Literal["image"]
    image_url: str = Field(max_length=image_url_max_length)
    alt_text: str = Field(max_length=alt_text_max_length)
    title: Annotated[PlainTextObject, AfterValidator(_max_text(title_max_length))] | None = None


class RichTextStyle(_Strict):
    bold: bool | None = None
    italic: bool | None = None
    strike: bool | None = None
    code: bool | None = None


class _RichElement(_Strict):
    style: RichTextStyle | None = None


class RichText(_RichElement):
    type: Literal["text"]
    text: str = Field(min_length=1)


class RichLink(_RichElement):
    url_max_length: ClassVar[int] = limits.RICH_LINK_URL

    type: Literal["link"]
    url: str = Field(min_length=1, max_length=url_max_length)
    text: str | None = Field(default=None, min_length=1)
    unsafe: bool | None = None


class RichDate(_RichElement):
    type: Literal["date"]
    timestamp: int
    format: str = Field(min_length=1)
    url: str | None = None
    fallback: str | None = None


class RichEmoji(_Strict):
    type: Literal["emoji"]
    name: str = Field(min_length=1)
    unicode: str | None = None


class RichUser(_RichElement):
    type: Literal["user"]
    user_id: str = Field(min_length=1)


class RichUsergroup(_RichElement):
    type: Literal["usergroup"]
    usergroup_id: str = Field(min_length=1)


class RichChannel(_RichElement):
    type: Literal["channel"]
    channel_id: str = Field(min_length=1)


class RichBroadcast(_Strict):
    type: Literal["broadcast"]
    range: Literal["here", "channel", "everyone"]


RichElement = Annotated[
    RichText | RichLink | RichDate | RichEmoji | RichUser | RichUsergroup | RichChannel | RichBroadcast,
    Field(discriminator="type"),
]


class RichTextSection(_Strict):
    type: Literal["rich_text_section"]
    elements: list[RichElement]


class RichTextList(_Strict):
    indent_max: ClassVar[int] = limits.RICH_LIST_INDENT

    type: Literal["rich_text_list"]
    style: Literal["bullet", "ordered"]
    elements: list[RichTextSection] = Field(min_length=1)
    indent: int | None = Field(default=None, ge=0, le=indent_max)
    offset: int | None = Field(default=None, ge=0)
    border: int | None = Field(default=None, ge=0, le=1)


class RichTextPreformatted(_Strict):
    type: Literal["rich_text_preformatted"]
    elements: list[RichElement] = Field(min_length=1)
    border: int | None = Field(default=None, ge=0, le=1)


class RichTextQuote(_Strict):
    type: Literal["rich_text_quote"]
    elements: list[RichElement] = Field(min_length=1)
    border: int | None = Field(default=None, ge=0, le=1)


class RichTextBlock(_Block):
    """User-provided text: its elements are shown as they are, no text in them is markup."""

    type: Literal["rich_text"]
    elements: list[
        Annotated[
            RichTextSection | RichTextList | RichTextPreformatted | RichTextQuote,
            Field(discriminator="type"),
        ]
    ] = Field(min_length=1)


Block = Annotated[
    HeaderBlock | SectionBlock | ContextBlock | ActionsBlock | DividerBlock | ImageBlock | RichTextBlock,
    Field(discriminator="type"),
]


_COLOR = rf"^({limits.COLOR})$"


class Attachment(BaseModel):
    """A (legacy) attachment: what draws the colour bar beside its blocks.

    Only ``color``, ``fallback`` and ``blocks`` are checked; Slack ignores the older fields it no
    longer draws beside blocks, so they are left alone here too.
    """

    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    color: str | None = Field(default=None, pattern=_COLOR)
    fallback: str | None = None
    blocks: list[Block] | None = Field(default=None, max_length=limits.ATTACHMENT_BLOCKS)


class Message(BaseModel):
    """The body POSTed to an incoming webhook."""

    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    text_max_length: ClassVar[int] = limits.MESSAGE_TEXT
    blocks_max_length: ClassVar[int] = limits.MESSAGE_BLOCKS
    attachments_max_length: ClassVar[int] = limits.MESSAGE_ATTACHMENTS

    text: str | None = Field(default=None, max_length=text_max_length)
    blocks: list[Block] | None = Field(default=None, max_length=blocks_max_length)
    attachments: list[Attachment] | None = Field(default=None, max_length=attachments_max_length)
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    mrkdwn: bool | None = None

    @model_validator(mode="after")
    def _notification_text(self) -> Self:
        if self.text is not None and self.text.strip():
            return self
        if self.blocks or not self.attachments:
            # Slack answers 400 no_text: with blocks, the notification text is still required.
            raise PydanticCustomError("no_text", "Text must not be empty: Slack answers no_text")
        if not any((a.fallback or "").strip() for a in self.attachments):
            raise PydanticCustomError(
                "no_fallback",
                "Without 'text', an attachment needs a 'fallback': it is the notification's text",
            )
        return self


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def validate(body: Any) -> list[FieldError]:
    """Problems Slack would answer ``invalid_blocks``/``no_text``/... for; [] when the body is fine."""
    try:
        Message.model_validate(body)
    except ValidationError as exc:
        return _field_errors(exc)
    return []


def _rewrite(kind: str, loc: list[str], msg: str) -> tuple[list[str], str] | None:
    if kind == "no_text":
        return ["text"], msg
    if kind == "no_fallback":
        return ["attachments"], msg
    if kind == _TEXT_TOO_LONG:
        return [*loc, "text"], msg
    if kind == "extra_forbidden":
        return loc, "Unknown key: Slack rejects blocks with keys it does not know (invalid_blocks)"
    return None


def _noun(loc: list[str], expected: object) -> str:
    return "block type" if len(loc) >= 2 and loc[-2] == "blocks" else "type"


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return field_errors(exc, noun=_noun, rewrite=_rewrite)
