"""Legacy MessageCards drawn as HTML, close to how Teams drew connector cards, for the preview page.

Card texts are Markdown with entities (as the connector read them): they are rendered by
markdown-it-py with raw HTML off, so that no payload text can add a tag; links only to http(s).
"""

from __future__ import annotations

import re
from typing import Any

from translators.preview.markup import attr, esc, markdown, safe_href


def _md(text: Any, *, block: bool = False) -> str:
    source = "" if text is None else str(text)
    rendered: str = markdown().render(source) if block else markdown().renderInline(source)
    return rendered


def draw(body: Any) -> str:
    if not isinstance(body, dict):
        return '<div class="mc-card">(not a MessageCard)</div>'
    color = str(body.get("themeColor") or "")
    bar = f"#{color}" if re.fullmatch(r"[0-9A-Fa-f]{6}", color) else "#DDDDDD"
    out = [f'<div class="mc-card" style="border-top-color:{bar}">']
    if body.get("title"):
        out.append(f'<div class="mc-title">{_md(body["title"])}</div>')
    if body.get("text"):
        out.append(f'<div class="mc-text">{_md(body["text"], block=True)}</div>')
    for section in body.get("sections") or []:
        if isinstance(section, dict):
            out.append(_section(section))
    actions = [a for a in body.get("potentialAction") or [] if isinstance(a, dict)]
    if actions:
        out.append('<div class="mc-actions">')
        for action in actions:
            targets = action.get("targets") or []
            uri = targets[0].get("uri") if targets and isinstance(targets[0], dict) else None
            href = safe_href(uri)
            label = esc(str(action.get("name", "")))
            if href:
                out.append(
                    f'<a class="mc-button" href="{attr(href)}" target="_blank" rel="noopener noreferrer">'
                    f"{label}</a>"
                )
            else:
                out.append(f'<span class="mc-button">{label}</span>')
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _section(section: dict[str, Any]) -> str:
    out = ['<div class="mc-section">']
    if section.get("title"):
        out.append(f'<div class="mc-section-title">{_md(section["title"])}</div>')
    if section.get("activityTitle"):
        out.append(f'<div class="mc-activity-title">{_md(section["activityTitle"])}</div>')
    if section.get("activitySubtitle"):
        out.append(f'<div class="mc-activity-subtitle">{_md(section["activitySubtitle"])}</div>')
    if section.get("activityText"):
        out.append(f'<div class="mc-text">{_md(section["activityText"], block=True)}</div>')
    facts = [f for f in section.get("facts") or [] if isinstance(f, dict)]
    if facts:
        rows = "".join(f"<tr><th>{_md(f.get('name'))}</th><td>{_md(f.get('value'))}</td></tr>" for f in facts)
        out.append(f'<table class="mc-facts">{rows}</table>')
    if section.get("text"):
        out.append(f'<div class="mc-text">{_md(section["text"], block=True)}</div>')
    out.append("</div>")
    return "".join(out)
