"""Reading delivered bodies back as a person would: the title line and the notification text.

Tests ask "what does the message say" in many places; the shapes of the three formats live here
once, so that a template's layout can change without every such test changing with it.
"""

from __future__ import annotations

import html
import re
from typing import Any

_SLACK_TITLE = re.compile(r"^\*(?:<[^|>]*\|)?(?P<title>.*?)>?\*(?:  ·  (?P<app>.*))?$", re.DOTALL)
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>&|~=])")


def unescape_markdown(text: str) -> str:
    """Teams and MessageCard text as shown: backslash escapes and HTML entities undone, and the
    zero-width spaces that let a long word wrap (``text.soft_breaks``) left out, as no one sees them."""
    return html.unescape(_MARKDOWN_ESCAPE.sub(r"\1", text)).replace("\u200b", "")


def title(fmt: str, body: dict[str, Any]) -> str:
    """The title line (emoji, transition and title) as the reader sees it."""
    if fmt == "slack":
        blocks = body["attachments"][0]["blocks"] if "attachments" in body else body["blocks"]
        first = blocks[0]
        if first["type"] == "rich_text":  # the built-in template: the bold (link) run is the title
            runs = first["elements"][0]["elements"]
            return "".join(r["text"] for r in runs if r.get("style", {}).get("bold"))
        found = _SLACK_TITLE.match(first["text"]["text"])  # a mrkdwn title: *<url|title>*
        assert found, first
        return html.unescape(found["title"])
    if fmt == "teams":
        first = body["attachments"][0]["content"]["body"][0]["items"][0]
        if first["type"] == "RichTextBlock":  # payload text in TextRuns: shown exactly as written
            return "".join(run["text"] for run in first["inlines"])
        return unescape_markdown(first["text"])
    return unescape_markdown(body["title"])


def notification_text(fmt: str, body: dict[str, Any]) -> str:
    """The text a notification (or a client that cannot draw the message) shows."""
    if fmt == "slack":
        return html.unescape(body.get("text") or body["attachments"][0]["fallback"])
    if fmt == "teams":
        return str(body["attachments"][0]["content"]["fallbackText"])
    return html.unescape(unescape_markdown(body["summary"]))


def slack_markup_texts(node: Any) -> list[str]:
    """Every Slack text that Slack reads as mrkdwn: the message text, attachment fallbacks, mrkdwn
    objects. (``rich_text`` elements and ``plain_text`` are shown literally: a ``<!channel>`` there
    is just characters.)"""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            found.append(node["text"])
        for key in ("fallback",):
            if isinstance(node.get(key), str):
                found.append(node[key])
        for key, value in node.items():
            if key not in ("text", "fallback") or not isinstance(value, str):
                found += slack_markup_texts(value)
    elif isinstance(node, list):
        for value in node:
            found += slack_markup_texts(value)
    return found


#: A Slack control sequence that pings or links someone: ``<!channel>``, ``<@U1>``, ``<#C1>``,
#: ``<!subteam^S1>``. ``<!date^...>`` is ours (a time in the reader's zone) and pings nobody.
SLACK_MENTION = re.compile(r"<(?:[@#]|!(?!date\^))")


def json_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path (keys and indexes) of every node of a JSON value, the root's ``()`` first."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += json_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += json_paths(item, (*path, index))
    return found
