"""Slack Block Kit drawn as HTML, close to how Slack shows it, for the preview page.

A stand-in, not Slack: enough to see layout, colour bar, formatting and links at a glance. Every
text is HTML-escaped before any markup of ours goes around it; links are drawn only for http(s)
URLs; mentions are drawn as the chips Slack shows, so that a test can see one appear.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from translators.preview.markup import attr, esc, safe_href

#: <url|label>, <@U1>, <#C1|name>, <!here>, <!subteam^S1|@team>, <!date^ts^format|fallback>
_CONTROL = re.compile(r"<([^<>]+)>")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_CODE = re.compile(r"`([^`\n]+)`")


#: Names of Slack users and groups, as Slack would show them (the stand-in cannot ask Slack).
_NAMES: ContextVar[Mapping[str, str] | None] = ContextVar("slack_names", default=None)


def draw(body: Any, names: Mapping[str, str] | None = None) -> str:
    """The whole message: its text (if any), its blocks, its attachments with their colour bars.

    ``names`` maps Slack ids to the names Slack would draw a mention with (from MENTIONS); an id
    with no name is drawn as the id.
    """
    token = _NAMES.set(names)
    try:
        return _draw(body)
    finally:
        _NAMES.reset(token)


def _draw(body: Any) -> str:
    if not isinstance(body, dict):
        return '<div class="slack-msg">(not a Slack message)</div>'
    parts: list[str] = []
    if isinstance(body.get("text"), str) and not body.get("blocks"):
        parts.append(f'<div class="slack-text">{mrkdwn(body["text"])}</div>')
    parts.append(_blocks(body.get("blocks")))
    for attachment in body.get("attachments") or []:
        if isinstance(attachment, dict):
            color = attachment.get("color") or "#DDDDDD"
            bar = color if re.fullmatch(r"#[0-9A-Fa-f]{6}", str(color)) else _NAMED.get(str(color), "#DDDDDD")
            inner = _blocks(attachment.get("blocks"))
            if not inner and isinstance(attachment.get("text"), str):
                inner = f'<div class="slack-text">{mrkdwn(attachment["text"])}</div>'
            parts.append(f'<div class="slack-attachment" style="border-left-color:{bar}">{inner}</div>')
    return '<div class="slack-msg">' + "".join(parts) + "</div>"


_NAMED = {"good": "#2EB67D", "warning": "#ECB22E", "danger": "#E01E5A"}


def _blocks(blocks: Any) -> str:
    if not isinstance(blocks, list):
        return ""
    return "".join(_block(b) for b in blocks if isinstance(b, dict))


def _block(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f'<div class="slack-header">{_text_object(block.get("text"))}</div>'
    if kind == "section":
        out = ['<div class="slack-section">']
        if block.get("text"):
            out.append(f'<div class="slack-section-text">{_text_object(block["text"])}</div>')
        fields = block.get("fields") or []
        if fields:
            out.append('<div class="slack-fields">')
            out += [f'<div class="slack-field">{_text_object(f)}</div>' for f in fields]
            out.append("</div>")
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            out.append(_button(accessory))
        out.append("</div>")
        return "".join(out)
    if kind == "context":
        elements = [_text_object(e) for e in block.get("elements") or [] if isinstance(e, dict)]
        return '<div class="slack-context">' + " ".join(elements) + "</div>"
    if kind == "actions":
        buttons = [_button(e) for e in block.get("elements") or [] if isinstance(e, dict)]
        return '<div class="slack-actions">' + "".join(buttons) + "</div>"
    if kind == "divider":
        return '<hr class="slack-divider">'
    if kind == "rich_text":
        return '<div class="slack-rich">' + "".join(_rich(e) for e in block.get("elements") or []) + "</div>"
    if kind == "image":
        # Drawn as its description: the preview loads nothing from the internet.
        return f'<div class="slack-image">[image: {esc(block.get("alt_text", ""))}]</div>'
    return f'<div class="slack-unknown">(block {esc(str(kind))})</div>'


def _button(element: dict[str, Any]) -> str:
    label = _text_object(element.get("text"))
    style = element.get("style")
    cls = f"slack-button slack-button-{style}" if style in ("primary", "danger") else "slack-button"
    href = safe_href(element.get("url"))
    if href is None:
        return f'<span class="{cls}">{label}</span>'
    return f'<a class="{cls}" href="{attr(href)}" target="_blank" rel="noopener noreferrer">{label}</a>'


def _text_object(obj: Any) -> str:
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text", ""))
    if obj.get("type") == "mrkdwn":
        return mrkdwn(text)
    return esc(text).replace("\n", "<br>")


# ---------------------------------------------------------------------------------------------
# mrkdwn


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML: control sequences, then entities, then formatting around them all.

    Control sequences (links, mentions, dates) are drawn first and stand in the text as
    placeholders, so that ``*<url|title>*`` is a bold link as in Slack.
    """
    drawn: list[str] = []

    def keep(html_text: str) -> str:
        drawn.append(html_text)
        return f"\x01{len(drawn) - 1}\x01"

    text = _CONTROL.sub(lambda m: keep(_control(m[1])), text)
    # Slack decodes only these three entities; the text is then HTML-escaped again for the page.
    escaped = esc(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    escaped = _CODE.sub(lambda m: keep(f"<code>{m[1]}</code>"), escaped)  # nothing in code is formatted
    escaped = _BOLD.sub(r"<b>\1</b>", escaped)
    escaped = _ITALIC.sub(r"<i>\1</i>", escaped)
    escaped = _STRIKE.sub(r"<s>\1</s>", escaped)
    while "\x01" in escaped:  # a placeholder may stand inside another (code inside a link label)
        escaped = re.sub(r"\x01(\d+)\x01", lambda m: drawn[int(m[1])], escaped)
    return escaped.replace("\n", "<br>")


def _control(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f'<span class="slack-mention">@{esc(label or _name(target[1:]))}</span>'
    if target.startswith("#"):
        return f'<span class="slack-mention">#{esc(label or target[1:])}</span>'
    if target.startswith("!date^"):
        parts = target.split("^")
        fallback = label or ""
        try:
            moment = datetime.fromtimestamp(int(parts[1]), UTC)
        except (IndexError, ValueError, OverflowError, OSError):
            return esc(fallback)
        return _time(moment, fallback)
    if target.startswith("!subteam^"):
        group = target.split("^", 1)[1]
        return f'<span class="slack-mention">@{esc((label or _name(group)).removeprefix("@"))}</span>'
    if target.startswith("!"):
        return f'<span class="slack-mention slack-broadcast">@{esc(target[1:])}</span>'
    href = safe_href(html.unescape(target))
    shown = mrkdwn(label) if label else esc(html.unescape(target))
    if href is None:
        return shown
    return f'<a href="{attr(href)}" target="_blank" rel="noopener noreferrer">{shown}</a>'


def _time(moment: datetime, fallback: str) -> str:
    """A time the page's script shows in the reader's zone (as Slack does), UTC until then."""
    iso = moment.isoformat().replace("+00:00", "Z")
    return f'<time class="local-time" datetime="{attr(iso)}">{esc(fallback)}</time>'


# ---------------------------------------------------------------------------------------------
# rich_text


def _rich(element: Any) -> str:
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    inner = "".join(_rich_inline(e) for e in element.get("elements") or [])
    if kind == "rich_text_section":
        return f'<div class="slack-rich-section">{inner}</div>'
    if kind == "rich_text_preformatted":
        return f'<pre class="slack-pre">{inner}</pre>'
    if kind == "rich_text_quote":
        return f'<blockquote class="slack-quote">{inner}</blockquote>'
    if kind == "rich_text_list":
        tag = "ol" if element.get("style") == "ordered" else "ul"
        indent = int(element.get("indent") or 0)
        start = f' start="{int(element.get("offset") or 0) + 1}"' if tag == "ol" else ""
        items = "".join(
            f"<li>{''.join(_rich_inline(x) for x in section.get('elements') or [])}</li>"
            for section in element.get("elements") or []
            if isinstance(section, dict)
        )
        return f'<{tag} class="slack-list" style="margin-left:{1.2 + indent * 1.4}em"{start}>{items}</{tag}>'
    return ""


def _rich_inline(element: Any) -> str:
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind == "text":
        out = esc(str(element.get("text", ""))).replace("\n", "<br>")
    elif kind == "link":
        label = esc(str(element.get("text") or element.get("url", "")))
        href = safe_href(element.get("url"))
        out = (
            f'<a href="{attr(href)}" target="_blank" rel="noopener noreferrer">{label}</a>' if href else label
        )
    elif kind == "date":
        try:
            out = _time(
                datetime.fromtimestamp(int(element["timestamp"]), UTC), str(element.get("fallback", ""))
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            out = esc(str(element.get("fallback", "")))
    elif kind == "user":
        out = f'<span class="slack-mention">@{esc(_name(element.get("user_id")))}</span>'
    elif kind == "usergroup":
        out = f'<span class="slack-mention">@{esc(_name(element.get("usergroup_id")))}</span>'
    elif kind == "broadcast":
        out = f'<span class="slack-mention slack-broadcast">@{esc(str(element.get("range", "")))}</span>'
    elif kind == "emoji":
        unicode = element.get("unicode")
        out = esc(_emoji(str(unicode)) if unicode else f":{element.get('name', '')}:")
    else:
        return ""
    style = element.get("style")
    if not isinstance(style, dict):
        style = {}
    for key, tag in (("code", "code"), ("strike", "s"), ("italic", "i"), ("bold", "b")):
        if style.get(key):
            out = f"<{tag}>{out}</{tag}>"
    return out


def _name(slack_id: Any) -> str:
    return (_NAMES.get() or {}).get(str(slack_id), str(slack_id or ""))


def _emoji(code: str) -> str:
    try:
        return "".join(chr(int(part, 16)) for part in code.split("-"))
    except ValueError:
        return ""
