"""HTML helpers shared by the preview's drawings: every text escaped, links only to http(s)."""

from __future__ import annotations

import html
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from translators.model import safe_url

if TYPE_CHECKING:
    from markdown_it import MarkdownIt


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def attr(text: str) -> str:
    return html.escape(text, quote=True)


def safe_href(url: Any) -> str | None:
    """A URL a drawn link may point at: absolute http(s) with a host, as buttons require."""
    return safe_url(url) if isinstance(url, str) else None


def script_json(value: Any) -> str:
    """JSON to put inside a ``<script type="application/json">``: no ``</script>`` can end it early."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    """CommonMark with raw HTML off: what a card's Markdown text can do, and nothing more."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False})
    md.validateLink = lambda url: safe_url(url) is not None  # type: ignore[method-assign]
    return md
