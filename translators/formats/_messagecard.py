"""Runtime validator of a legacy Office 365 connector MessageCard, as pydantic v2 models.

https://learn.microsoft.com/en-us/outlook/actionable-messages/message-card-reference. The
connector itself checked little beyond ``@type``, ``@context`` and "Summary or Text is required.";
the rest mirrors the reference: types of the documented fields, at most four ``potentialAction``
entries, ``OpenUri`` with a ``name`` and at least one target. Unknown keys are allowed (the
connector ignored them).
"""

import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from translators.errors import FieldError
from translators.formats._validation import field_errors

__all__ = ["CONTEXTS", "MessageCard", "Section", "validate"]

#: Accepted values of ``@context``; the first is what the reference shows.
CONTEXTS = ("http://schema.org/extensions", "https://schema.org/extensions")

_SUMMARY_OR_TEXT = "Summary or Text is required."
_HEX_COLOR = re.compile(r"#?(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")


def _check_color(value: str) -> str:
    if _HEX_COLOR.fullmatch(value) is None:
        raise PydanticCustomError("color", "Should be a hex colour like '0076D7' or '#0076D7'")
    return value


HexColor = Annotated[str, AfterValidator(_check_color)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=False, defer_build=True)


class Target(_Open):
    os: Literal["default", "iOS", "android", "windows"]
    uri: str


class OpenUriAction(_Open):
    type_: Literal["OpenUri"] = Field(alias="@type")
    name: str
    targets: list[Target] = Field(min_length=1)


class HttpPostAction(_Open):
    type_: Literal["HttpPOST"] = Field(alias="@type")
    name: str
    target: str | None = None
    body: str | None = None
    bodyContentType: str | None = None
    headers: list[dict[str, Any]] | None = None


class ActionCardAction(_Open):
    type_: Literal["ActionCard"] = Field(alias="@type")
    name: str
    inputs: list[dict[str, Any]] | None = None
    actions: list[dict[str, Any]] | None = None


Action = Annotated[OpenUriAction | HttpPostAction | ActionCardAction, Field(discriminator="type_")]


class Fact(_Open):
    name: str
    value: str


class Image(_Open):
    image: str
    title: str | None = None


class Section(_Open):
    title: str | None = None
    startGroup: bool | None = None
    activityTitle: str | None = None
    activitySubtitle: str | None = None
    activityImage: str | None = None
    activityText: str | None = None
    heroImage: Image | None = None
    text: str | None = None
    facts: list[Fact] | None = None
    images: list[Image] | None = None
    markdown: bool | None = None
    potentialAction: list[Action] | None = None


class MessageCard(_Open):
    potential_action_max_length: ClassVar[int] = 4

    type_: Literal["MessageCard"] = Field(alias="@type")
    context: Literal["http://schema.org/extensions", "https://schema.org/extensions"] = Field(
        alias="@context"
    )
    summary: str | None = None
    text: str | None = None
    title: str | None = None
    themeColor: HexColor | None = None
    correlationId: str | None = None
    hideOriginalBody: bool | None = None
    sections: list[Section] | None = None
    potentialAction: list[Action] | None = Field(default=None, max_length=potential_action_max_length)

    @model_validator(mode="after")
    def _summary_or_text(self) -> Self:
        if not (self.summary and self.summary.strip()) and not (self.text and self.text.strip()):
            # The connector's own answer (HTTP 400), word for word.
            raise PydanticCustomError("summary_or_text", _SUMMARY_OR_TEXT)
        return self


def validate(body: Any) -> list[FieldError]:
    """Problems the connector would reject (or render badly); [] when the card is fine."""
    try:
        MessageCard.model_validate(body)
    except ValidationError as exc:
        errors = _field_errors(exc)
    else:
        return []
    if not isinstance(body, dict):
        return errors
    # The model checks summary/text only once every field is valid; report it with the rest.
    has_text = any(isinstance(body.get(k), str) and body[k].strip() for k in ("summary", "text"))
    if not has_text and not any(e.message == _SUMMARY_OR_TEXT for e in errors):
        errors.append(FieldError("summary", _SUMMARY_OR_TEXT))
    return errors


def _rewrite(kind: str, loc: list[str], msg: str) -> tuple[list[str], str] | None:
    return (["summary"], msg) if kind == "summary_or_text" else None


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return field_errors(exc, tag_key="@type", noun=lambda loc, expected: "action @type", rewrite=_rewrite)
