"""The runtime output validators (pydantic), cross-checked against the references they replace.

* Slack: ``slack_sdk.models.blocks`` (the limits it encodes, and its parsing of every block).
* Teams: the official Adaptive Card 1.4 JSON schema, vendored in ``tests/schemas/`` (Workflows
  webhook cards do not display at 1.5).
* MessageCard: the connector's documented rules (there is no machine-readable schema).

Where our validators deliberately differ from the reference, a test below pins the difference.
"""

from __future__ import annotations

import copy
import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models import blocks as sdk_blocks

from tests.bodies import json_paths
from translators.errors import FieldError
from translators.formats import _adaptivecard, _blockcheck, _blockkit, _messagecard

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "adaptive-card-1.4.json"
SHARED_SCHEMA_PATH = ROOT.parent / "shared" / "schemas" / "adaptive-card-1.4.json"

# slack_sdk style long strings
STRING_51_CHARS = "a" * 51
STRING_76_CHARS = "a" * 76
STRING_151_CHARS = "a" * 151
STRING_256_CHARS = "a" * 256
STRING_3001_CHARS = "a" * 3001
URL_3001_CHARS = "https://ci.example.com/" + "a" * (3001 - len("https://ci.example.com/"))

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def paths(errors: list[FieldError]) -> list[str]:
    return [e.path for e in errors]


def messages(errors: list[FieldError]) -> str:
    return " | ".join(f"{e.path}: {e.message}" for e in errors)


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------


@cache
def card_schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(card: Any) -> list[str]:
    """What the official Adaptive Card 1.4 schema says about a card (not an envelope)."""
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(card)'}: {e.message[:120]}"
        for e in card_schema_validator().iter_errors(card)
    ]


def sdk_block_problem(raw: dict[str, Any]) -> str | None:
    """slack_sdk's verdict on one block: None if it parses, validates and round-trips unchanged.

    ``to_dict()`` validates nested objects too (``validate_json()`` alone does not look into a
    button inside an actions block) and keeps only the keys slack_sdk knows, so a round trip that
    changes the block means a key Slack would not accept.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            block = sdk_blocks.Block.parse(copy.deepcopy(raw))
            if block is None:
                return "unknown block type"
            block.validate_json()
            dumped = block.to_dict()
        except (SlackObjectFormationError, TypeError, ValueError) as exc:
            return f"{type(exc).__name__}: {str(exc)[:120]}"
    if dumped != raw:
        return f"round trip changed the block: {dumped!r:.200}"
    return None


# ---------------------------------------------------------------------------------------------
# Slack samples
# ---------------------------------------------------------------------------------------------


def slack_build_failed() -> dict[str, Any]:
    return {
        "text": "Build #1432 of Acme iOS failed on main",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "🔴 Build #1432 failed", "emoji": True},
            },
            {
                "type": "section",
                "block_id": "summary",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Acme iOS* · workflow `release` · <https://app.bitrise.io/build/9f3c|build log>",
                    "verbatim": True,
                },
                "fields": [
                    {"type": "mrkdwn", "text": "*Branch*\nmain", "verbatim": True},
                    {
                        "type": "mrkdwn",
                        "text": "*Commit*\n`4e1d2a9` Fix the &lt;login&gt; crash",
                        "verbatim": True,
                    },
                    {"type": "mrkdwn", "text": "*Triggered by*\nwebhook", "verbatim": True},
                    {"type": "plain_text", "text": "Duration: 7 min 12 s", "emoji": False},
                ],
                "accessory": {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open build"},
                    "url": "https://app.bitrise.io/build/9f3c",
                    "action_id": "open-build",
                },
            },
            {
                "type": "context",
                "elements": [
                    {"type": "image", "image_url": "https://example.com/bitrise.png", "alt_text": "Bitrise"},
                    {"type": "mrkdwn", "text": "Bitrise · build.failed", "verbatim": True},
                ],
            },
            {"type": "divider"},
            {
                "type": "actions",
                "block_id": "links",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open build", "emoji": True},
                        "url": "https://app.bitrise.io/build/9f3c",
                        "style": "danger",
                        "action_id": "build",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Pull request #87"},
                        "url": "https://github.com/acme/ios/pull/87",
                        "action_id": "pr",
                        "value": "87",
                    },
                ],
            },
        ],
    }


def slack_release_published() -> dict[str, Any]:
    return {
        "text": "Acme Android 3.2.0 (412) is available",
        "username": "CI",
        "icon_emoji": ":rocket:",
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Acme Android 3.2.0 (412)"}},
            {"type": "section", "text": {"type": "plain_text", "text": "Release notes: faster login."}},
            {
                "type": "image",
                "image_url": "https://example.com/qr.png",
                "alt_text": "QR code of the install link",
                "title": {"type": "plain_text", "text": "Install"},
            },
            {
                "type": "rich_text",
                "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "hello"}]}],
            },
        ],
    }


def slack_colour_bar() -> dict[str, Any]:
    """What the built-in template sends: everything in one attachment, for its colour bar."""
    return {
        "attachments": [
            {
                "color": "#E01E5A",
                "fallback": "❌ Build #41 failed · Acme iOS",
                "blocks": [
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": "*Build failed*", "verbatim": True},
                    },
                    {
                        "type": "rich_text",
                        "elements": [
                            {
                                "type": "rich_text_section",
                                "elements": [
                                    {"type": "text", "text": "Release ", "style": {"bold": True}},
                                    {"type": "text", "text": "<!channel> *x*"},
                                    {"type": "link", "url": "https://x.example/?a=1&b=2", "text": "ticket"},
                                    {
                                        "type": "date",
                                        "timestamp": 1764496800,
                                        "format": "{date_short_pretty} at {time}",
                                        "fallback": "30 Nov 2026 10:00 UTC",
                                    },
                                ],
                            },
                            {
                                "type": "rich_text_list",
                                "style": "ordered",
                                "indent": 1,
                                "offset": 2,
                                "elements": [
                                    {"type": "rich_text_section", "elements": [{"type": "text", "text": "a"}]}
                                ],
                            },
                            {"type": "rich_text_quote", "elements": [{"type": "text", "text": "q"}]},
                            {
                                "type": "rich_text_preformatted",
                                "elements": [{"type": "text", "text": "at Foo.bar()\nat Baz.qux()"}],
                            },
                        ],
                    },
                ],
            }
        ]
    }


SLACK_VALID = {
    "build_failed": slack_build_failed,
    "release_published": slack_release_published,
    "colour_bar": slack_colour_bar,
}


@pytest.mark.parametrize("make", SLACK_VALID.values(), ids=SLACK_VALID.keys())
def test_slack_valid_samples_pass(make: Any) -> None:
    assert _blockkit.validate(make()) == []


@pytest.mark.parametrize("make", SLACK_VALID.values(), ids=SLACK_VALID.keys())
def test_slack_valid_samples_pass_slack_sdk(make: Any) -> None:
    body = make()
    for i, block in enumerate(body.get("blocks", [])):
        assert sdk_block_problem(block) is None, f"blocks.{i}"
    for a, attachment in enumerate(body.get("attachments", [])):
        for i, block in enumerate(attachment["blocks"]):
            assert sdk_block_problem(block) is None, f"attachments.{a}.blocks.{i}"


def test_slack_limits_match_slack_sdk() -> None:
    pairs = [
        (_blockkit.HeaderBlock.text_max_length, sdk_blocks.HeaderBlock.text_max_length),
        (_blockkit.SectionBlock.text_max_length, sdk_blocks.SectionBlock.text_max_length),
        (_blockkit.SectionBlock.fields_max_length, sdk_blocks.SectionBlock.fields_max_length),
        (_blockkit.ContextBlock.elements_max_length, sdk_blocks.ContextBlock.elements_max_length),
        (_blockkit.ActionsBlock.elements_max_length, sdk_blocks.ActionsBlock.elements_max_length),
        (_blockkit.ImageBlock.image_url_max_length, sdk_blocks.ImageBlock.image_url_max_length),
        (_blockkit.ImageBlock.alt_text_max_length, sdk_blocks.ImageBlock.alt_text_max_length),
        (_blockkit.ImageBlock.title_max_length, sdk_blocks.ImageBlock.title_max_length),
        (_blockkit.ButtonElement.text_max_length, sdk_blocks.ButtonElement.text_max_length),
        (_blockkit.ButtonElement.url_max_length, sdk_blocks.ButtonElement.url_max_length),
        (_blockkit.ButtonElement.value_max_length, sdk_blocks.ButtonElement.value_max_length),
        (_blockkit.ButtonElement.action_id_max_length, sdk_blocks.ButtonElement.action_id_max_length),
        (_blockkit.ImageElement.image_url_max_length, sdk_blocks.ImageElement.image_url_max_length),
        (_blockkit.ImageElement.alt_text_max_length, sdk_blocks.ImageElement.alt_text_max_length),
        (_blockkit.HeaderBlock.block_id_max_length, sdk_blocks.Block.block_id_max_length),
    ]
    assert [ours for ours, _ in pairs] == [theirs for _, theirs in pairs]


def _slack(mutate: Any) -> dict[str, Any]:
    body = slack_build_failed()
    mutate(body)
    return body


def _set(path: str, value: Any) -> Any:
    """A mutation setting ``path`` (dotted, list indexes as numbers) to ``value``."""

    def mutate(body: Any) -> None:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Any:
    def mutate(body: Any) -> None:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


# name: (mutation, expected error path, block index slack_sdk must also reject, or None when
# slack_sdk has no opinion: message-level rules, or a rule slack_sdk does not encode).
SLACK_INVALID: dict[str, tuple[Any, str, int | None]] = {
    "header_mrkdwn": (
        _set("blocks.0.text", {"type": "mrkdwn", "text": "*Build failed*"}),
        "blocks.0.header.text.type",
        None,  # slack_sdk accepts it; the Slack API answers invalid_blocks (header is plain_text only)
    ),
    "header_151_chars": (
        _set("blocks.0.text", {"type": "plain_text", "text": STRING_151_CHARS}),
        "blocks.0.header.text.text",
        0,
    ),
    "section_text_3001_chars": (
        _set("blocks.1.text", {"type": "mrkdwn", "text": STRING_3001_CHARS}),
        "blocks.1.section.text.text",
        1,
    ),
    "section_11_fields": (
        _set("blocks.1.fields", [{"type": "mrkdwn", "text": f"field {i}"} for i in range(11)]),
        "blocks.1.section.fields",
        1,
    ),
    "51_blocks": (_set("blocks", [{"type": "divider"}] * 51), "blocks", None),
    "button_text_76_chars": (
        _set("blocks.4.elements.0.text", {"type": "plain_text", "text": STRING_76_CHARS}),
        "blocks.4.actions.elements.0.text.text",
        4,
    ),
    "button_url_3001_chars": (
        _set("blocks.4.elements.0.url", URL_3001_CHARS),
        "blocks.4.actions.elements.0.url",
        4,
    ),
    "block_id_256_chars": (_set("blocks.3.block_id", STRING_256_CHARS), "blocks.3.divider.block_id", 3),
    "missing_text": (_delete("text"), "text", None),
    "blank_text": (_set("text", "  \n"), "text", None),
    "unknown_block_type": (_set("blocks.3", {"type": "carousel_of_doom"}), "blocks.3", 3),
    "unknown_key_on_block": (_set("blocks.3.colour", "red"), "blocks.3.divider.colour", 3),
    "verbatim_on_plain_text": (
        _set("blocks.1.text", {"type": "plain_text", "text": "x", "verbatim": True}),
        "blocks.1.section.text",
        1,
    ),
    "emoji_on_mrkdwn": (
        _set("blocks.1.text", {"type": "mrkdwn", "text": "x", "emoji": True}),
        "blocks.1.section.text",
        1,
    ),
    "empty_text_object": (
        _set("blocks.1.text", {"type": "mrkdwn", "text": ""}),
        "blocks.1.section.text.text",
        None,
    ),
    "11_context_elements": (
        _set("blocks.2.elements", [{"type": "mrkdwn", "text": "x"}] * 11),
        "blocks.2.context.elements",
        2,
    ),
    "button_style_green": (
        _set("blocks.4.elements.0.style", "green"),
        "blocks.4.actions.elements.0.style",
        None,
    ),
    "string_for_bool": (_set("unfurl_links", "false"), "unfurl_links", None),
}


# name: (mutation of the colour-bar message, expected error path).
SLACK_ATTACHMENT_INVALID: dict[str, tuple[Any, str]] = {
    "colour_name": (_set("attachments.0.color", "red"), "attachments.0.color"),
    "no_fallback_no_text": (_delete("attachments.0.fallback"), "attachments"),
    "rich_text_empty": (
        _set("attachments.0.blocks.1.elements", []),
        "attachments.0.blocks.1.rich_text.elements",
    ),
    "rich_text_empty_text": (
        _set("attachments.0.blocks.1.elements.0.elements.1.text", ""),
        "attachments.0.blocks.1.rich_text.elements.0.rich_text_section.elements.1.text.text",
    ),
    "rich_text_unknown_element": (
        _set("attachments.0.blocks.1.elements.0.elements.1", {"type": "sparkle", "text": "x"}),
        "attachments.0.blocks.1.rich_text.elements.0.rich_text_section.elements.1",
    ),
    "rich_text_bad_style": (
        _set("attachments.0.blocks.1.elements.0.elements.0.style", {"underline": True}),
        "attachments.0.blocks.1.rich_text.elements.0.rich_text_section.elements.0.text.style.underline",
    ),
    "list_style": (
        _set("attachments.0.blocks.1.elements.1.style", "dashed"),
        "attachments.0.blocks.1.rich_text.elements.1.rich_text_list.style",
    ),
    "list_indent_7": (
        _set("attachments.0.blocks.1.elements.1.indent", 7),
        "attachments.0.blocks.1.rich_text.elements.1.rich_text_list.indent",
    ),
    "unknown_block_in_attachment": (
        _set("attachments.0.blocks.0", {"type": "carousel"}),
        "attachments.0.blocks.0",
    ),
}


@pytest.mark.parametrize(
    ("mutate", "path"), SLACK_ATTACHMENT_INVALID.values(), ids=SLACK_ATTACHMENT_INVALID.keys()
)
def test_slack_attachment_and_rich_text_problems_are_named(mutate: Any, path: str) -> None:
    body = slack_colour_bar()
    mutate(body)
    errors = _blockkit.validate(body)
    assert path in paths(errors), messages(errors)


@pytest.mark.parametrize(("mutate", "path", "sdk_block"), SLACK_INVALID.values(), ids=SLACK_INVALID.keys())
def test_slack_invalid_samples_are_rejected(mutate: Any, path: str, sdk_block: int | None) -> None:
    body = _slack(mutate)
    errors = _blockkit.validate(body)
    assert path in paths(errors), messages(errors)
    if sdk_block is not None:
        assert sdk_block_problem(body["blocks"][sdk_block]) is not None, "slack_sdk accepts it"


def test_slack_sdk_is_looser_on_header_mrkdwn() -> None:
    """Pinned: slack_sdk builds a header from mrkdwn; the API rejects it, and so do we."""
    block = {"type": "header", "text": {"type": "mrkdwn", "text": "*x*"}}
    assert sdk_block_problem(block) is None
    assert _blockkit.validate({"text": "x", "blocks": [block]})


def test_slack_unknown_block_type_is_named() -> None:
    errors = _blockkit.validate(_slack(_set("blocks.3", {"type": "carousel_of_doom"})))
    assert [(e.path, "'carousel_of_doom'" in e.message) for e in errors] == [("blocks.3", True)]


def test_slack_messages_are_readable() -> None:
    errors = _blockkit.validate(
        _slack(_set("blocks.1.text", {"type": "plain_text", "text": "x", "verbatim": True}))
    )
    assert any("only valid on mrkdwn" in e.message for e in errors), messages(errors)
    errors = _blockkit.validate(
        _slack(_set("blocks.0.text", {"type": "plain_text", "text": STRING_151_CHARS}))
    )
    assert [e.message for e in errors] == ["Text should have at most 150 characters"]


@pytest.mark.parametrize("body", [None, [], "text", 42], ids=["null", "list", "string", "number"])
def test_slack_not_an_object(body: Any) -> None:
    assert paths(_blockkit.validate(body)) == ["(body)"]


# ---------------------------------------------------------------------------------------------
# The plain-Python check the request path runs first (_blockcheck): sound against the models
# ---------------------------------------------------------------------------------------------

GOLDEN_SLACK = sorted((ROOT / "tests" / "golden" / "slack").rglob("*.json"))


@pytest.mark.parametrize("make", SLACK_VALID.values(), ids=SLACK_VALID.keys())
def test_slack_check_accepts_the_valid_samples(make: Any) -> None:
    assert _blockcheck.accepts(make())


def test_slack_check_accepts_every_rendered_golden_body() -> None:
    """What the templates render never needs the models: that is what spares a cold start them."""
    assert GOLDEN_SLACK
    refused = [p.name for p in GOLDEN_SLACK if not _blockcheck.accepts(json.loads(p.read_text()))]
    assert refused == []


@pytest.mark.parametrize(
    "mutate",
    [m for m, *_ in SLACK_INVALID.values()],
    ids=list(SLACK_INVALID),
)
def test_slack_check_leaves_every_invalid_sample_to_the_models(mutate: Any) -> None:
    assert not _blockcheck.accepts(_slack(mutate))


@pytest.mark.parametrize(
    "mutate", [m for m, _ in SLACK_ATTACHMENT_INVALID.values()], ids=list(SLACK_ATTACHMENT_INVALID)
)
def test_slack_check_leaves_every_invalid_attachment_to_the_models(mutate: Any) -> None:
    body = slack_colour_bar()
    mutate(body)
    assert not _blockcheck.accepts(body)


def test_slack_check_leaves_junk_to_the_models() -> None:
    for junk in (None, 0, "", [], {}, {"blocks": "x", "attachments": {}, "@type": 5}, [{"type": "x"}]):
        assert not _blockcheck.accepts(junk)


#: Values a mutation puts in place of one value: each limit's edges, every JSON type, near-misses.
_EDGES = [0, 1, 6, 7, 10, 11, 25, 26, 50, 51, 75, 76, 150, 151, 255, 256, 2000, 2001, 3000, 3001, 40_001]
_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    7,
    1.5,
    "",
    " ",
    "x",
    "good",
    "#E01E5A",
    "#E01E5A\n",
    "primary",
    "plain_text",
    "mrkdwn",
    [],
    {},
    {"type": "x"},
    *("a" * n for n in _EDGES),
]


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        body = body[part]
    return body


SLACK_BODIES = [make() for make in SLACK_VALID.values()] + [
    json.loads(p.read_text()) for p in GOLDEN_SLACK[::7]
]


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_slack_check_never_accepts_what_the_models_refuse(data: st.DataObject) -> None:
    """Random edits of valid bodies: a value replaced (by an edge of a limit, another type, or
    another part of the body), a key removed or added, a list grown past its limit."""
    body = copy.deepcopy(data.draw(st.sampled_from(SLACK_BODIES)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = json_paths(body)
        path = data.draw(st.sampled_from(paths[1:] or paths))
        if not path:
            break
        parent, last = _at(body, path[:-1]), path[-1]
        edit = data.draw(st.sampled_from(["replace", "graft", "remove", "add", "grow"]))
        if edit == "replace":
            parent[last] = copy.deepcopy(data.draw(st.sampled_from(_VALUES)))
        elif edit == "graft":
            parent[last] = copy.deepcopy(_at(body, data.draw(st.sampled_from(paths))))
        elif edit == "remove":
            del parent[last]
        elif edit == "add" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["style", "emoji", "verbatim", "unknown", "text", "type"]))] = (
                copy.deepcopy(data.draw(st.sampled_from(_VALUES)))
            )
        elif edit == "grow" and isinstance(parent[last], list) and parent[last]:
            parent[last] *= data.draw(st.sampled_from([2, 11, 26, 51]))
    if _blockcheck.accepts(body):
        assert _blockkit.validate(body) == [], json.dumps(body)[:2000]


# ---------------------------------------------------------------------------------------------
# Teams (Workflows, Adaptive Card) samples
# ---------------------------------------------------------------------------------------------


def teams_card() -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "fallbackText": "Build #1432 of Acme iOS failed on main",
        "body": [
            {
                "type": "TextBlock",
                "text": "🔴 Build #1432 failed",
                "size": "Large",  # any case: the schema and the renderers accept it
                "weight": "Bolder",
                "color": "attention",
                "wrap": True,
            },
            {"type": "TextBlock", "text": "Acme iOS · workflow release", "isSubtle": True, "spacing": "None"},
            {
                "type": "FactSet",
                "separator": True,
                "facts": [
                    {"title": "Branch", "value": "main"},
                    {"title": "Commit", "value": "4e1d2a9 Fix the login crash"},
                    {"title": "Triggered by", "value": "webhook"},
                ],
            },
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "auto",
                        "items": [
                            {
                                "type": "Image",
                                "url": "https://example.com/bitrise.png",
                                "size": "small",
                                "style": "person",
                                "altText": "Bitrise",
                            }
                        ],
                    },
                    {
                        "type": "Column",
                        "width": "stretch",
                        "verticalContentAlignment": "center",
                        "items": [{"type": "TextBlock", "text": "Bitrise · build.failed", "wrap": True}],
                    },
                    {"width": 1, "items": []},  # "type": "Column" may be left out
                ],
            },
            {
                "type": "Container",
                "style": "attention",
                "id": "details",
                "isVisible": False,
                "items": [
                    {
                        "type": "RichTextBlock",
                        "inlines": [
                            "Exit code 65 in ",
                            {"type": "TextRun", "text": "xcodebuild", "fontType": "monospace"},
                        ],
                    }
                ],
            },
            {
                "type": "ActionSet",
                "actions": [
                    {
                        "type": "Action.OpenUrl",
                        "title": "Pull request #87",
                        "url": "https://github.com/acme/ios/pull/87",
                    },
                    {"type": "Action.ToggleVisibility", "title": "Details", "targetElements": ["details"]},
                ],
            },
        ],
        "actions": [
            {
                "type": "Action.OpenUrl",
                "title": "Open build",
                "url": "https://app.bitrise.io/build/9f3c",
                "style": "destructive",
            },
            {
                "type": "Action.ShowCard",
                "title": "Commit message",
                "card": {
                    "type": "AdaptiveCard",
                    "body": [
                        {"type": "TextBlock", "text": "Fix the login crash\n\nCloses #86", "wrap": True}
                    ],
                },
            },
        ],
    }


def envelope(card: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def teams_release_card() -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": "Acme Android 3.2.0 (412)", "size": "medium", "weight": "bolder"},
            {"type": "Image", "url": "https://example.com/qr.png", "altText": "QR code", "height": "120px"},
            {"type": "FactSet", "facts": [{"title": "Version", "value": "3.2.0"}]},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Install", "url": "https://example.com/install"}],
    }


TEAMS_VALID = {"build_failed": teams_card, "release": teams_release_card}


@pytest.mark.parametrize("make", TEAMS_VALID.values(), ids=TEAMS_VALID.keys())
def test_teams_valid_samples_pass(make: Any) -> None:
    assert _adaptivecard.validate(envelope(make())) == []


@pytest.mark.parametrize("make", TEAMS_VALID.values(), ids=TEAMS_VALID.keys())
def test_teams_valid_samples_pass_official_schema(make: Any) -> None:
    assert schema_errors(make()) == []


def _card(mutate: Any) -> dict[str, Any]:
    card = teams_card()
    mutate(card)
    return card


def _in_envelope(mutate: Any) -> Any:
    def wrapped(body: dict[str, Any]) -> None:
        mutate(body["attachments"][0]["content"])

    return wrapped


# name: (mutation of the enveloped card, expected error path, schema verdict on the card:
# "rejects" / "accepts" (a deliberate Teams-specific difference) / None (the envelope, which the
# card schema does not describe)).
TEAMS_INVALID: dict[str, tuple[Any, str, str | None]] = {
    "bare_card": (lambda body: body.update(body.pop("attachments")[0]["content"]), "(body)", None),
    "wrong_content_type": (
        _set("attachments.0.contentType", "application/vnd.microsoft.teams.card.o365connector"),
        "attachments.0.contentType",
        None,
    ),
    "no_attachments": (_set("attachments", []), "attachments", None),
    "textblock_without_text": (
        _in_envelope(_set("body.0", {"type": "TextBlock", "wrap": True})),
        "attachments.0.content.body.0.TextBlock.text",
        "rejects",
    ),
    "fact_without_value": (
        _in_envelope(_set("body.2.facts.1", {"title": "Commit"})),
        "attachments.0.content.body.2.FactSet.facts.1.value",
        "rejects",
    ),
    "action_submit": (
        _in_envelope(_set("actions.0", {"type": "Action.Submit", "title": "Retry", "data": {"retry": 1}})),
        "attachments.0.content.actions.0.Action.Submit",
        "accepts",  # valid Adaptive Card; Teams cannot handle it from a webhook card
    ),
    "version_1_5": (_in_envelope(_set("version", "1.5")), "attachments.0.content.version", "accepts"),
    "version_1_6": (_in_envelope(_set("version", "1.6")), "attachments.0.content.version", "accepts"),
    # What 1.5 added: refused by us (Workflows would not display the card) and by the 1.4 schema.
    "textblock_style_heading_1_5": (
        _in_envelope(_set("body.0.style", "heading")),
        "attachments.0.content.body.0.TextBlock.style",
        "rejects",
    ),
    "table_1_5": (
        _in_envelope(_set("body.1", {"type": "Table", "columns": [], "rows": []})),
        "attachments.0.content.body.1",
        "rejects",
    ),
    "action_tooltip_1_5": (
        _in_envelope(_set("actions.0.tooltip", "Open the build")),
        "attachments.0.content.actions.0.Action.OpenUrl.tooltip",
        "rejects",
    ),
    "card_rtl_1_5": (_in_envelope(_set("rtl", False)), "attachments.0.content.rtl", "rejects"),
    "unknown_property_on_element": (
        _in_envelope(_set("body.0.targetWidth", "Wide")),
        "attachments.0.content.body.0.TextBlock.targetWidth",
        "rejects",
    ),
    "version_missing": (_in_envelope(_delete("version")), "attachments.0.content.version", "accepts"),
    "unknown_element_type": (
        _in_envelope(_set("body.1", {"type": "Carousel", "pages": []})),
        "attachments.0.content.body.1",
        "rejects",
    ),
    "textblock_weight_heavy": (
        _in_envelope(_set("body.0.weight", "heavy")),
        "attachments.0.content.body.0.TextBlock.weight",
        "rejects",
    ),
    "container_style_danger": (
        _in_envelope(_set("body.4.style", "danger")),
        "attachments.0.content.body.4.Container.style",
        "rejects",
    ),
    "action_style_primary": (
        _in_envelope(_set("actions.0.style", "primary")),
        "attachments.0.content.actions.0.Action.OpenUrl.style",
        "rejects",
    ),
    "openurl_without_url": (
        _in_envelope(_delete("actions.0.url")),
        "attachments.0.content.actions.0.Action.OpenUrl.url",
        "rejects",
    ),
    "nested_showcard_unknown_element": (
        _in_envelope(_set("actions.1.card.body.0", {"type": "Markdown", "text": "x"})),
        "attachments.0.content.actions.1.Action.ShowCard.card.body.0",
        "rejects",
    ),
    "column_item_without_url": (
        _in_envelope(_delete("body.3.columns.0.items.0.url")),
        "attachments.0.content.body.3.ColumnSet.columns.0.items.0.Image.url",
        "rejects",
    ),
    "spacing_huge": (
        _in_envelope(_set("body.1.spacing", "huge")),
        "attachments.0.content.body.1.TextBlock.spacing",
        "rejects",
    ),
    "wrap_as_string": (
        _in_envelope(_set("body.0.wrap", "true")),
        "attachments.0.content.body.0.TextBlock.wrap",
        "rejects",
    ),
}


@pytest.mark.parametrize(("mutate", "path", "schema"), TEAMS_INVALID.values(), ids=TEAMS_INVALID.keys())
def test_teams_invalid_samples_are_rejected(mutate: Any, path: str, schema: str | None) -> None:
    body = envelope(teams_card())
    mutate(body)
    errors = _adaptivecard.validate(body)
    assert path in paths(errors), messages(errors)


@pytest.mark.parametrize(
    ("mutate", "schema"),
    [(m, s) for m, _, s in TEAMS_INVALID.values() if s is not None],
    ids=[k for k, (_, _, s) in TEAMS_INVALID.items() if s is not None],
)
def test_teams_invalid_samples_against_official_schema(mutate: Any, schema: str) -> None:
    """Where the card schema agrees with us, and (pinned) where we are stricter on purpose."""
    body = envelope(teams_card())
    mutate(body)
    problems = schema_errors(body["attachments"][0]["content"])
    if schema == "rejects":
        assert problems, "the official schema accepts it: our validator is stricter than intended"
    else:
        assert problems == [], "the official schema rejects it too: update the table"


def test_teams_action_submit_message() -> None:
    body = envelope(_card(_set("actions.0", {"type": "Action.Submit", "title": "Retry"})))
    (error,) = _adaptivecard.validate(body)
    assert "Teams cannot handle it from a webhook card" in error.message


def test_teams_unknown_types_are_named() -> None:
    card = _card(_set("body.1", {"type": "Carousel"}))
    card["actions"][0] = {"type": "Action.Http", "url": "https://x"}
    errors = _adaptivecard.validate(envelope(card))
    assert [(e.path, e.message.split(";")[0]) for e in errors] == [
        ("attachments.0.content.body.1", "Unknown element type 'Carousel'"),
        ("attachments.0.content.actions.0", "Unknown action type 'Action.Http'"),
    ]


# Deliberate differences from the official schema: (mutation of the card, we accept, schema accepts).
TEAMS_DIFFERENCES: dict[str, tuple[Any, bool, bool]] = {
    # Teams' own extension (full-width cards, mentions); the schema has additionalProperties: false.
    "msteams_width_full": (_set("msteams", {"width": "Full"}), True, False),
    # Enum patterns lack a group around their alternatives: "^(a)|(b)$" accepts "bolderx"/"xbolder".
    "enum_prefix_match": (_set("body.0.weight", "defaultish"), False, True),
    "enum_suffix_match": (_set("body.0.weight", "extrabolder"), False, True),
    # A pattern ignores non-strings, so the schema's anyOf(enum, pattern) accepts any number.
    "enum_number": (_set("body.0.weight", 7), False, True),
    # Workflows cards display up to 1.4; the schema takes any string.
    "version_2_0": (_set("version", "2.0"), False, True),
    # Case-insensitive enums: both accept.
    "enum_any_case": (_set("body.0.color", "ATTENTION"), True, True),
    # null for an optional property the schema does not mark nullable: renderers treat it as unset.
    "null_separator": (_set("body.1.separator", None), True, False),
    # (null for an enum property passes the schema too: its pattern branch ignores non-strings.)
    "null_spacing": (_set("body.1.spacing", None), True, True),
}


@pytest.mark.parametrize(
    ("mutate", "ours", "schema"), TEAMS_DIFFERENCES.values(), ids=TEAMS_DIFFERENCES.keys()
)
def test_teams_known_differences_from_official_schema(mutate: Any, ours: bool, schema: bool) -> None:
    card = _card(mutate)
    assert (_adaptivecard.validate(envelope(card)) == []) is ours
    assert (schema_errors(card) == []) is schema


def test_teams_minimal_shapes() -> None:
    card = {"type": "AdaptiveCard", "version": "1.0", "body": []}
    assert _adaptivecard.validate(envelope(card)) == []
    assert schema_errors(card) == []
    assert paths(
        _adaptivecard.validate({"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE}]})
    ) == ["attachments.0.content"]
    assert paths(_adaptivecard.validate({"text": "hello"})) == ["type", "attachments"]


def test_vendored_schema_matches_shared_copy() -> None:
    """tests/schemas/ is the reference; ../shared is a workspace's extra copy, never required.

    A plain clone (a fork's CI, CI=true included) has no ../shared: the check has nothing to
    compare and skips, since nothing in the product or its tests may need a folder outside it.
    """
    if not SHARED_SCHEMA_PATH.exists():
        pytest.skip(f"{SHARED_SCHEMA_PATH} not found (a plain clone): tests/schemas/ is the reference")
    assert SCHEMA_PATH.read_bytes() == SHARED_SCHEMA_PATH.read_bytes(), (
        f"tests/schemas/adaptive-card-1.4.json differs from {SHARED_SCHEMA_PATH}: copy it again"
    )


# ---------------------------------------------------------------------------------------------
# MessageCard samples
# ---------------------------------------------------------------------------------------------


def message_card() -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "summary": "Build #1432 of Acme iOS failed",
        "themeColor": "D70000",
        "title": "🔴 Build #1432 failed",
        "text": "Acme iOS · workflow release",
        "sections": [
            {
                "activityTitle": "Acme iOS",
                "activitySubtitle": "Bitrise · build.failed",
                "activityImage": "https://example.com/bitrise.png",
                "facts": [
                    {"name": "Branch", "value": "main"},
                    {"name": "Commit", "value": "4e1d2a9 Fix the login crash"},
                ],
                "markdown": True,
            },
            {"startGroup": True, "text": "Exit code 65 in xcodebuild"},
        ],
        "potentialAction": [
            {
                "@type": "OpenUri",
                "name": "Open build",
                "targets": [{"os": "default", "uri": "https://app.bitrise.io/build/9f3c"}],
            },
            {
                "@type": "OpenUri",
                "name": "Pull request #87",
                "targets": [
                    {"os": "default", "uri": "https://github.com/acme/ios/pull/87"},
                    {"os": "iOS", "uri": "github://acme/ios/pull/87"},
                ],
            },
        ],
    }


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: None,
        _set("@context", "https://schema.org/extensions"),
        _set("themeColor", "#0076D7"),
        _set("themeColor", "#f80"),
        _delete("summary"),
        _delete("text"),
    ],
    ids=["sample", "https_context", "hash_colour", "short_colour", "text_only", "summary_only"],
)
def test_messagecard_valid(mutate: Any) -> None:
    card = message_card()
    mutate(card)
    assert _messagecard.validate(card) == []


def _no_summary_no_text(card: dict[str, Any]) -> None:
    del card["summary"], card["text"]


MESSAGECARD_INVALID: dict[str, tuple[Any, str]] = {
    "missing_type": (_delete("@type"), "@type"),
    "wrong_type": (_set("@type", "AdaptiveCard"), "@type"),
    "missing_context": (_delete("@context"), "@context"),
    "no_summary_no_text": (_no_summary_no_text, "summary"),
    "blank_summary_no_text": (lambda c: (c.update(summary=" "), c.pop("text")), "summary"),
    "5_potential_actions": (
        lambda c: c.update(potentialAction=c["potentialAction"] * 2 + c["potentialAction"][:1]),
        "potentialAction",
    ),
    "openuri_without_targets": (_delete("potentialAction.0.targets"), "potentialAction.0.OpenUri.targets"),
    "openuri_empty_targets": (_set("potentialAction.0.targets", []), "potentialAction.0.OpenUri.targets"),
    "openuri_without_name": (_delete("potentialAction.0.name"), "potentialAction.0.OpenUri.name"),
    "target_os_macos": (
        _set("potentialAction.0.targets.0.os", "macOS"),
        "potentialAction.0.OpenUri.targets.0.os",
    ),
    "theme_color_blue": (_set("themeColor", "blue"), "themeColor"),
    "theme_color_4_digits": (_set("themeColor", "#abcd"), "themeColor"),
    "fact_without_value": (_delete("sections.0.facts.1.value"), "sections.0.facts.1.value"),
    "markdown_as_string": (_set("sections.0.markdown", "true"), "sections.0.markdown"),
    "unknown_action_type": (_set("potentialAction.1", {"@type": "Submit", "name": "x"}), "potentialAction.1"),
}


@pytest.mark.parametrize(("mutate", "path"), MESSAGECARD_INVALID.values(), ids=MESSAGECARD_INVALID.keys())
def test_messagecard_invalid_samples_are_rejected(mutate: Any, path: str) -> None:
    card = message_card()
    mutate(card)
    errors = _messagecard.validate(card)
    assert path in paths(errors), messages(errors)


def test_messagecard_summary_or_text_message_mirrors_the_connector() -> None:
    card = message_card()
    del card["summary"], card["text"]
    card["themeColor"] = "blue"  # reported together with other problems
    errors = _messagecard.validate(card)
    assert FieldError("summary", "Summary or Text is required.") in errors
    assert "themeColor" in paths(errors)


# ---------------------------------------------------------------------------------------------
# All three
# ---------------------------------------------------------------------------------------------

SECRET = "hooks-SECRET-4f9a"


def test_messages_do_not_echo_values() -> None:
    slack = slack_build_failed()
    slack["blocks"][4]["elements"][0]["url"] = SECRET * 300
    slack["blocks"][4]["elements"][0]["style"] = SECRET
    slack["blocks"][1]["fields"][0]["verbatim"] = SECRET
    card = teams_card()
    card["body"][0]["weight"] = SECRET
    card["body"][1]["wrap"] = SECRET
    card["version"] = SECRET
    legacy = message_card()
    legacy["themeColor"] = SECRET
    legacy["potentialAction"][0]["targets"][0]["os"] = SECRET
    found = _blockkit.validate(slack) + _adaptivecard.validate(envelope(card)) + _messagecard.validate(legacy)
    assert len(found) >= 8
    assert not [e for e in found if SECRET in e.message or SECRET in e.path]


@pytest.mark.parametrize("module", [_blockkit, _adaptivecard, _messagecard], ids=lambda m: m.__name__)
def test_validate_never_raises_on_junk(module: Any) -> None:
    for junk in (None, 0, "", [], {}, {"blocks": "x", "attachments": {}, "@type": 5}, [{"type": "x"}]):
        errors = module.validate(junk)
        assert errors
        assert all(isinstance(e, FieldError) and e.path and e.message for e in errors)
