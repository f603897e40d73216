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


def _field_errors(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        loc = [str(p) for p in err["loc"]]
        kind, msg = err["type"], err["msg"]
        if kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            msg = f"Unknown action @type {_short(ctx.get('tag'))}; expected one of {ctx.get('expected_tags')}"
        elif kind == "union_tag_not_found":
            msg = "Missing '@type'"
        elif kind == "summary_or_text":
            loc = ["summary"]
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = "Input should be an object"
        out.append(FieldError(".".join(loc) or "(body)", msg))
    return out


def _short(tag: object) -> str:
    """The offending type name, quoted and cut short: it may come from a template."""
    text = repr(str(tag))
    return text if len(text) <= 42 else text[:40] + "…'"
