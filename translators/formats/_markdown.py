"""Writing text as the Markdown that Teams TextBlocks and MessageCard sections read.

Both read a subset of Markdown (bold, italic, lists, links; no headings, no code) and need a blank
line (``\\n\\n``) for a line break: a single ``\\n`` joins lines into one paragraph. Payload text is
escaped so that none of it is read as Markdown: a backslash before every character that could
start or end formatting, a link, a list or a heading, and before ``{`` so that ``{{DATE(...)}}``
in a payload is not evaluated by Teams. ``<``, ``>`` and ``&`` are escaped by the caller's rule
(a backslash for Teams, HTML entities for MessageCard, which reads a little HTML): either way no
``<at>`` mention or tag can come from a payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from translators.text import Code, Doc, Inline, ListBlock, Paragraph, Quote, Span

#: Characters that mean something anywhere in a line.
_ANYWHERE = re.compile(r"([\\`*_{}\[\]~|])")
#: Characters that mean something at the start of a line: headings, list markers, quotes, rules.
_LINE_START = re.compile(r"^(\s*)([#+\-=>])")
#: "1." or "1)" at the start of a line is an ordered list item.
_ORDERED = re.compile(r"^(\s*\d+)([.)])")
#: Line breaks in one text value, in any convention.
_NEWLINES = re.compile(r"\r\n|\r|\n")
#: Parentheses would end a link's destination early.
_URL_PARENS = str.maketrans({"(": "%28", ")": "%29", " ": "%20"})

BREAK = "\n\n"


class LineEscape(Protocol):
    def __call__(self, text: str, at_start: bool = True) -> str: ...


def escaper(entities: Callable[[str], str]) -> LineEscape:
    """An escape for one line of payload text: Markdown characters, then ``<>&`` by ``entities``.

    ``at_start``: the text begins a line, where ``#``, ``-``, ``1.`` and the like start a block.
    """

    def escape_line(text: str, at_start: bool = True) -> str:
        text = entities(_ANYWHERE.sub(r"\\\1", text))
        if at_start:
            text = _LINE_START.sub(r"\1\\\2", text)
            text = _ORDERED.sub(r"\1\\\2", text)
        return text

    return escape_line


def escape_text(text: str, escape_line: LineEscape) -> str:
    """Payload text, every line escaped, the lines kept as lines (blank-line breaks)."""
    if "\n" not in text and "\r" not in text:
        return escape_line(text)
    lines = [escape_line(line) for line in _NEWLINES.split(text)]
    return BREAK.join(line for line in lines if line.strip()) or escape_line(text.strip())


def write_inline(line: Inline, escape_line: LineEscape, code: Callable[[str], str] | None = None) -> str:
    """Runs as Markdown; ``code``, where the format has code spans, writes an identifier's run."""
    return "".join(
        code(span.text)
        if code is not None and span.code and not span.url
        else _span(span, escape_line, at_start=i == 0)
        for i, span in enumerate(line)
    )


def _span(span: Span, escape_line: LineEscape, *, at_start: bool) -> str:
    text = escape_line(span.text, at_start)
    if not text.strip():
        return text
    # Emphasis markers must touch the text: move surrounding spaces outside them.
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    core = text.strip()
    if span.italic:
        core = f"_{core}_"
    if span.bold:
        core = f"**{core}**"
    if span.url:
        core = link(span.url, core)
    return lead + core + trail


def link(url: str | None, label: str) -> str:
    """``[label](url)``; ``label`` is already escaped, ``url`` already checked by ``safe_url``."""
    return f"[{label}]({url.translate(_URL_PARENS)})" if url else label


def write_doc(doc: Doc, escape_line: LineEscape) -> str:
    return BREAK.join(part for part in _blocks(doc.blocks, escape_line) if part)


def _blocks(blocks: tuple[object, ...], escape_line: LineEscape, indent: str = "") -> list[str]:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            lines = [write_inline(line, escape_line) for line in block.lines]
            if block.heading:
                lines = [f"**{line.strip()}**" for line in lines if line.strip()]
            parts.append(BREAK.join(indent + line for line in lines))
        elif isinstance(block, Code):
            # Leading spaces are dropped from Markdown paragraphs; no-break spaces keep the indent.
            parts.append(
                BREAK.join(indent + _keep_indent(escape_line(line)) for line in block.lines if line.strip())
            )
        elif isinstance(block, Quote):
            inner = _blocks(block.blocks, escape_line)
            parts.append(BREAK.join(f"{indent}> {line}" for part in inner for line in part.split(BREAK)))
        elif isinstance(block, ListBlock):
            parts.append(_list(block, escape_line, indent))
    return parts


def _list(block: ListBlock, escape_line: LineEscape, indent: str) -> str:
    """One line per item; an item's further lines follow as indented paragraphs of that item."""
    rows: list[str] = []
    loose = False
    for number, item in enumerate(block.items, start=block.start):
        marker = f"{number}." if block.ordered else "-"
        inner = indent + " " * (len(marker) + 1)
        lines: list[str] = []
        nested: list[str] = []
        for child in item:
            if isinstance(child, ListBlock):
                nested.append(_list(child, escape_line, inner))
            else:
                for part in _blocks((child,), escape_line):
                    lines.extend(line.strip() for line in part.split(BREAK) if line.strip())
        first, *more = lines or [""]
        row = f"{indent}{marker} {first}"
        if more:
            loose = True
            row += BREAK + BREAK.join(inner + line for line in more)
        rows.append(row)
        rows.extend(nested)
    return (BREAK if loose else "\n").join(rows)


def _keep_indent(line: str) -> str:
    stripped = line.lstrip(" ")
    return "\u00a0" * (len(line) - len(stripped)) + stripped
