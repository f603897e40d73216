"""Runtime validator of a Teams Workflows webhook body: an Adaptive Card 1.4 in a message envelope.

Modelled on the official Adaptive Card 1.4 JSON schema (the tests validate the same samples with
``jsonschema`` against a vendored copy, which costs milliseconds per card and ~100 ms to import,
too slow for the runtime path), with these deliberate differences:

* Teams specifics: the envelope is required, ``version`` must be 1.0-1.4 (cards posted through a
  Workflows webhook show "this card couldn't be displayed" at 1.5) and ``Action.Submit`` is
  rejected (a webhook card has no bot to submit to).
* As in the schema, unknown properties are errors (``additionalProperties: false``): a 1.5
  property such as a TextBlock ``style`` or an action ``tooltip`` is refused, not sent. The one
  exception is the card's ``msteams`` host extension, which Teams reads.
* Enum values match case-insensitively, as the renderers parse them and as the schema intends
  (``anyOf`` of an ``enum`` and a ``[d|D][e|E]...`` pattern). The schema's patterns lack a group
  around their alternatives, so they also accept ``"bolderx"`` or ``"xxsmall"`` and any non-string;
  we accept exactly the listed values in any case.
* ``null`` is accepted for every optional property (renderers treat it as unset); the schema
  allows it only for some.
As in the schema, inputs require ``id`` and ``Input.Toggle`` requires ``title`` (not ``value``);
``type`` may be left out where the schema allows it (columns, images of an ImageSet, facts, the
card of an ``Action.ShowCard``).

The 28 KB size limit is checked by the caller.
"""

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from translators.errors import FieldError
from translators.formats._validation import field_errors

__all__ = [
    "ADAPTIVE_CARD_CONTENT_TYPE",
    "MAX_VERSION",
    "Action",
    "AdaptiveCard",
    "Element",
    "Envelope",
    "validate",
]

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: Highest Adaptive Card version a Teams Workflows webhook card displays.
MAX_VERSION = (1, 4)


def _one_of(*values: str) -> Callable[[str], str]:
    """An enum check that ignores case, as the Adaptive Card parsers do."""
    allowed = frozenset(v.lower() for v in values)
    expected = ", ".join(values)

    def check(value: str) -> str:
        if value.lower() not in allowed:
            raise PydanticCustomError("enum", "Should be one of: {expected}", {"expected": expected})
        return value

    return check


Spacing = Annotated[
    str, AfterValidator(_one_of("none", "small", "default", "medium", "large", "extraLarge", "padding"))
]
BlockHeight = Annotated[str, AfterValidator(_one_of("auto", "stretch"))]
HorizontalAlignment = Annotated[str, AfterValidator(_one_of("left", "center", "right"))]
VerticalAlignment = Annotated[str, AfterValidator(_one_of("top", "center", "bottom"))]
FontSize = Annotated[str, AfterValidator(_one_of("default", "small", "medium", "large", "extraLarge"))]
FontWeight = Annotated[str, AfterValidator(_one_of("default", "lighter", "bolder"))]
FontType = Annotated[str, AfterValidator(_one_of("default", "monospace"))]
Color = Annotated[
    str, AfterValidator(_one_of("default", "dark", "light", "accent", "good", "warning", "attention"))
]
ContainerStyle = Annotated[
    str, AfterValidator(_one_of("default", "emphasis", "good", "attention", "warning", "accent"))
]
ImageSize = Annotated[str, AfterValidator(_one_of("auto", "stretch", "small", "medium", "large"))]
ImageStyle = Annotated[str, AfterValidator(_one_of("default", "person"))]
ImageFillMode = Annotated[
    str, AfterValidator(_one_of("cover", "repeatHorizontally", "repeatVertically", "repeat"))
]
ActionStyle = Annotated[str, AfterValidator(_one_of("default", "positive", "destructive"))]
AssociatedInputs = Annotated[str, AfterValidator(_one_of("Auto", "None"))]
ChoiceInputStyle = Annotated[str, AfterValidator(_one_of("compact", "expanded"))]
TextInputStyle = Annotated[str, AfterValidator(_one_of("text", "tel", "url", "email", "password"))]
Drop = Annotated[str, AfterValidator(_one_of("drop"))]

_VERSION = re.compile(r"(\d+)\.(\d+)")


def _check_version(version: str) -> str:
    match = _VERSION.fullmatch(version)
    if match is None:
        raise PydanticCustomError("version", "Version should be a string like '1.4'")
    if (int(match[1]), int(match[2])) > MAX_VERSION:
        raise PydanticCustomError(
            "version_unsupported",
            "Teams Workflows webhooks display Adaptive Cards up to version 1.4"
            ' (a 1.5 card shows "this card couldn\'t be displayed")',
        )
    if int(match[1]) < 1:
        raise PydanticCustomError("version", "Version should be between 1.0 and 1.4")
    return version


Version = Annotated[str, AfterValidator(_check_version)]


class _Open(BaseModel):
    # forbid: as the schema's additionalProperties: false (a newer property is refused, not sent);
    # strict: JSON types only (no "true" for true).
    # defer_build: the models are built once, on the first validation (~25 ms), not at import;
    # built eagerly, the forward references below would make pydantic build most of them twice.
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


def _fallback_kind(value: Any) -> str:
    """``fallback`` is an element (action, column) of the same kind or the string "drop"."""
    return "drop" if isinstance(value, str) else "item"


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


class _Action(_Open):
    title: str | None = None
    iconUrl: str | None = None
    style: ActionStyle | None = None
    fallback: "ActionFallback | None" = None
    requires: dict[str, str] | None = None


class OpenUrlAction(_Action):
    type: Literal["Action.OpenUrl"]
    url: str


class ShowCardAction(_Action):
    type: Literal["Action.ShowCard"]
    card: "Card | None" = None


class TargetElement(_Open):
    type: Literal["TargetElement"] = "TargetElement"
    elementId: str
    isVisible: bool | None = None


class ToggleVisibilityAction(_Action):
    type: Literal["Action.ToggleVisibility"]
    targetElements: list[str | TargetElement]


class ExecuteAction(_Action):
    type: Literal["Action.Execute"]
    verb: str | None = None
    data: str | dict[str, Any] | None = None
    associatedInputs: AssociatedInputs | None = None


class SubmitAction(_Action):
    """Valid Adaptive Card, but a Workflows webhook card has nobody to submit to."""

    type: Literal["Action.Submit"]

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        raise PydanticCustomError(
            "action_unsupported",
            "Action.Submit is not supported: Teams cannot handle it from a webhook card (use Action.OpenUrl)",
        )


Action = Annotated[
    OpenUrlAction | ShowCardAction | ToggleVisibilityAction | ExecuteAction | SubmitAction,
    Field(discriminator="type"),
]
ActionFallback = Annotated[
    Annotated[Action, Tag("item")] | Annotated[Drop, Tag("drop")], Discriminator(_fallback_kind)
]
#: What ``selectAction`` takes: any action but Action.ShowCard.
SelectAction = Annotated[
    OpenUrlAction | ToggleVisibilityAction | ExecuteAction | SubmitAction,
    Field(discriminator="type"),
]


class BackgroundImage(_Open):
    type: Literal["BackgroundImage"] = "BackgroundImage"
    url: str
    fillMode: ImageFillMode | None = None
    horizontalAlignment: HorizontalAlignment | None = None
    verticalAlignment: VerticalAlignment | None = None


# ---------------------------------------------------------------------------------------------
# Elements
# ---------------------------------------------------------------------------------------------


class _Element(_Open):
    id: str | None = None
    spacing: Spacing | None = None
    separator: bool | None = None
    isVisible: bool | None = None
    height: BlockHeight | None = None
    fallback: "ElementFallback | None" = None
    requires: dict[str, str] | None = None


class _Aligned(_Element):
    """The elements the schema lets align themselves horizontally."""

    horizontalAlignment: HorizontalAlignment | None = None


class TextBlock(_Aligned):
    type: Literal["TextBlock"]
    text: str
    color: Color | None = None
    fontType: FontType | None = None
    isSubtle: bool | None = None
    maxLines: float | None = None
    size: FontSize | None = None
    weight: FontWeight | None = None
    wrap: bool | None = None


class TextRun(_Open):
    type: Literal["TextRun"]
    text: str
    color: Color | None = None
    fontType: FontType | None = None
    highlight: bool | None = None
    isSubtle: bool | None = None
    italic: bool | None = None
    selectAction: SelectAction | None = None
    size: FontSize | None = None
    strikethrough: bool | None = None
    underline: bool | None = None
    weight: FontWeight | None = None


class RichTextBlock(_Aligned):
    type: Literal["RichTextBlock"]
    inlines: list[str | TextRun]


class Image(_Aligned):
    # Inside an ImageSet the type may be left out; as a body element it is the discriminator.
    type: Literal["Image"] = "Image"
    url: str
    altText: str | None = None
    backgroundColor: str | None = None
    height: str | None = None  # "auto", "stretch" or pixels like "50px"
    selectAction: SelectAction | None = None
    size: ImageSize | None = None
    style: ImageStyle | None = None
    width: str | None = None


class ImageSet(_Element):
    type: Literal["ImageSet"]
    images: list[Image]
    imageSize: ImageSize | None = None


class MediaSource(_Open):
    type: Literal["MediaSource"] = "MediaSource"
    mimeType: str
    url: str


class Media(_Element):
    type: Literal["Media"]
    sources: list[MediaSource]
    poster: str | None = None
    altText: str | None = None


class Fact(_Open):
    type: Literal["Fact"] = "Fact"
    title: str
    value: str


class FactSet(_Element):
    type: Literal["FactSet"]
    facts: list[Fact]


class _Box(_Open):
    """What Container and Column share."""

    selectAction: SelectAction | None = None
    style: ContainerStyle | None = None
    verticalContentAlignment: VerticalAlignment | None = None
    bleed: bool | None = None
    backgroundImage: BackgroundImage | str | None = None
    minHeight: str | None = None


class Container(_Box, _Element):
    type: Literal["Container"]
    items: "list[Element]"


class Column(_Box):
    type: Literal["Column"] = "Column"
    items: "list[Element] | None" = None
    fallback: "ColumnFallback | None" = None
    width: str | float | None = None  # "auto", "stretch", a weight, or pixels like "50px"
    id: str | None = None
    isVisible: bool | None = None
    requires: dict[str, str] | None = None
    separator: bool | None = None
    spacing: Spacing | None = None


class ColumnSet(_Aligned):
    type: Literal["ColumnSet"]
    columns: list[Column] | None = None
    selectAction: SelectAction | None = None
    style: ContainerStyle | None = None
    bleed: bool | None = None
    minHeight: str | None = None


class ActionSet(_Element):
    type: Literal["ActionSet"]
    actions: list[Action]


class _Input(_Element):
    id: str  # required on inputs
    label: str | None = None
    isRequired: bool | None = None
    errorMessage: str | None = None


class InputText(_Input):
    type: Literal["Input.Text"]
    isMultiline: bool | None = None
    maxLength: float | None = None
    placeholder: str | None = None
    regex: str | None = None
    style: TextInputStyle | None = None
    inlineAction: SelectAction | None = None
    value: str | None = None


class InputNumber(_Input):
    type: Literal["Input.Number"]
    max: float | None = None
    min: float | None = None
    placeholder: str | None = None
    value: float | None = None


class InputDate(_Input):
    type: Literal["Input.Date"]
    max: str | None = None
    min: str | None = None
    placeholder: str | None = None
    value: str | None = None


class InputTime(_Input):
    type: Literal["Input.Time"]
    max: str | None = None
    min: str | None = None
    placeholder: str | None = None
    value: str | None = None


class InputToggle(_Input):
    type: Literal["Input.Toggle"]
    title: str
    value: str | None = None
    valueOff: str | None = None
    valueOn: str | None = None
    wrap: bool | None = None


class Choice(_Open):
    type: Literal["Input.Choice"] = "Input.Choice"
    title: str
    value: str


class InputChoiceSet(_Input):
    type: Literal["Input.ChoiceSet"]
    choices: list[Choice] | None = None
    isMultiSelect: bool | None = None
    style: ChoiceInputStyle | None = None
    value: str | None = None
    placeholder: str | None = None
    wrap: bool | None = None


Element = Annotated[
    TextBlock
    | RichTextBlock
    | Image
    | ImageSet
    | Media
    | FactSet
    | Container
    | ColumnSet
    | ActionSet
    | InputText
    | InputNumber
    | InputDate
    | InputTime
    | InputToggle
    | InputChoiceSet,
    Field(discriminator="type"),
]
ElementFallback = Annotated[
    Annotated[Element, Tag("item")] | Annotated[Drop, Tag("drop")], Discriminator(_fallback_kind)
]
ColumnFallback = Annotated[
    Annotated[Column, Tag("item")] | Annotated[Drop, Tag("drop")], Discriminator(_fallback_kind)
]


# ---------------------------------------------------------------------------------------------
# Card and envelope
# ---------------------------------------------------------------------------------------------


class Mentioned(_Open):
    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=100)


class MentionEntity(_Open):
    """A user mention (https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-format)."""

    type: Literal["mention"]
    text: str = Field(pattern=r"^<at>[^<>]{1,100}</at>$")
    mentioned: Mentioned


class MsTeams(_Open):
    """The ``msteams`` host extension: exactly what Teams documents for cards, mentions and width."""

    entities: list[MentionEntity] | None = None
    width: Literal["Full", "full"] | None = None


class Card(_Open):
    """An Adaptive Card as ``Action.ShowCard`` nests it: type and version may be left out."""

    type: Literal["AdaptiveCard"] = "AdaptiveCard"
    version: Version | None = None
    schema_: str | None = Field(default=None, alias="$schema")
    body: list[Element] | None = None
    actions: list[Action] | None = None
    selectAction: SelectAction | None = None
    msteams: MsTeams | None = None
    fallbackText: str | None = None
    speak: str | None = None
    lang: str | None = None
    minHeight: str | None = None
    verticalContentAlignment: VerticalAlignment | None = None
    backgroundImage: BackgroundImage | str | None = None
    refresh: dict[str, Any] | None = None
    authentication: dict[str, Any] | None = None


class AdaptiveCard(Card):
    """The top-level card: ``"type": "AdaptiveCard"`` and a version Teams renders are required."""

    type: Literal["AdaptiveCard"]
    version: Version


class Attachment(_Open):
    # The Bot Framework attachment around the card, not the card: other properties are the host's.
    model_config = ConfigDict(extra="allow")

    contentType: Literal["application/vnd.microsoft.card.adaptive"]
    contentUrl: str | None = None
    content: AdaptiveCard


class Envelope(_Open):
    """``{"type": "message", "attachments": [{"contentType": ..., "content": <card>}]}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["message"]
    attachments: list[Attachment] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _not_bare(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "AdaptiveCard":
            raise PydanticCustomError(
                "bare_card",
                "A bare Adaptive Card: a Teams Workflows webhook needs it wrapped in "
                '{"type": "message", "attachments": [{"contentType": '
                '"application/vnd.microsoft.card.adaptive", "content": <card>}]}',
            )
        return data


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def validate(body: Any) -> list[FieldError]:
    """Problems that would make Teams fail the flow or the card; [] when the body is fine."""
    try:
        Envelope.model_validate(body)
    except ValidationError as exc:
        return _field_errors(exc)
    return []


def _noun(loc: list[str], expected: object) -> str:
    return "action type" if "Action." in str(expected) else "element type"


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return field_errors(exc, noun=_noun)
