"""Text from payloads as a small document model, so that each chat format writes it in its own markup.

Payload text comes in two kinds. Some is Markdown by nature (App Center release notes, Applivery
feedback): ``from_markdown`` parses it with markdown-it-py (CommonMark, HTML off, every line break
kept) into paragraphs, lists, quotes and code. The rest is plain text whose lines matter (stack
frames, steps to reproduce): ``from_lines`` keeps each line and interprets nothing. Either way the
result is a ``Doc`` of ``Span`` runs with styles, never markup: each format writes it (Slack as
``rich_text`` elements, Teams and MessageCard as their Markdown with every payload character
escaped), so a ``*`` or ``<!channel>`` in the text can only ever be shown.

``clip`` keeps what a person reads in a chat (about 8 lines or 700 characters), ending with an
ellipsis; the message's button leads to the rest.

Inline runs (``Inline``) are also what a fact's value is made of: ``code`` runs mark identifiers
(branch, tag, workflow, version), which every format shows literally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

#: What a person reads of free text in a chat message before the button takes over.
MAX_LINES = 8
MAX_CHARS = 700
ELLIPSIS = "…"
#: The least of a line worth starting when the character budget runs out inside it.
_SHORTEST_PART = 40


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text with one style. ``url`` makes it a link (already checked by ``safe_url``)."""

    text: str
    bold: bool = False
    italic: bool = False
    strike: bool = False
    code: bool = False
    url: str | None = None


class Inline(tuple[Span, ...]):
    """Runs of one line of text (a fact's value, a line of a paragraph)."""

    __slots__ = ()

    def __str__(self) -> str:
        return "".join(span.text for span in self)

    @classmethod
    def of(cls, *parts: str | Span | None) -> Inline:
        """Plain strings become plain runs, spans stay; None and empty parts are left out."""
        return cls(p if isinstance(p, Span) else Span(p) for p in parts if p)


def code(text: str) -> Span:
    """An identifier (branch, tag, version...): shown literally, in code style where a format has one."""
    return Span(text, code=True)


@dataclass(frozen=True, slots=True)
class Paragraph:
    lines: tuple[Inline, ...]
    heading: bool = False


@dataclass(frozen=True, slots=True)
class ListBlock:
    items: tuple[tuple[Block, ...], ...]
    ordered: bool = False
    start: int = 1


@dataclass(frozen=True, slots=True)
class Quote:
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Code:
    lines: tuple[str, ...]


Block = Paragraph | ListBlock | Quote | Code


@dataclass(frozen=True, slots=True)
class Doc:
    blocks: tuple[Block, ...]
    #: True when ``clip`` left something out (the writer has already put the ellipsis in).
    clipped: bool = False

    def plain(self) -> str:
        """The visible text, a line per line (what the line and character limits count)."""
        return "\n".join(_plain_lines(self.blocks))


# ---------------------------------------------------------------------------------------------
# Reading


def from_lines(text: str, *, code_block: bool = False) -> Doc:
    """Plain text, every line kept as a line, nothing interpreted; blank lines separate paragraphs.

    ``code_block``: the text is code (a stack trace), one ``Code`` block of its lines.
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if code_block:
        return Doc((Code(tuple(lines)),) if lines else ())
    blocks: list[Block] = []
    current: list[Inline] = []
    for line in lines:
        if line.strip():
            current.append(Inline.of(line))
        elif current:
            blocks.append(Paragraph(tuple(current)))
            current = []
    if current:
        blocks.append(Paragraph(tuple(current)))
    return Doc(tuple(blocks))


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Imported on first use: only release notes and feedback need it, and a cold start should not.
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML off (``<b>`` stays text) and every newline a line break, as people
    # who type release notes and feedback expect; GFM strikethrough as a courtesy.
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("strikethrough")


#: A list item's marker at the start of a line (CommonMark: up to 3 spaces of indent).
_LIST_ITEM = re.compile(r" {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_FENCE = re.compile(r" {0,3}(?:```|~~~)")


def _end_lazy_lines(text: str) -> str:
    """The text with a blank line before a line that would continue a list item "lazily".

    In CommonMark an unindented line right after a list item belongs to that item ("3. Tap Pay\n
    Happens every time" is one item). People who type release notes and bug reports mean a new
    paragraph, and with every line break kept (``breaks``) that is how it reads.
    """
    if "\n" not in text:
        return text
    out: list[str] = []
    in_item = in_fence = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif in_fence:
            pass
        elif not line.strip():
            in_item = False
        elif _LIST_ITEM.match(line):
            in_item = True
        elif in_item and not line.startswith((" ", "\t")):
            out.append("")
            in_item = False
        out.append(line)
    return "\n".join(out)


def from_markdown(text: str) -> Doc:
    """Markdown parsed by markdown-it-py; links keep only URLs that ``safe_url`` accepts."""
    tokens = _parser().parse(_end_lazy_lines(text))
    blocks, _ = _blocks(tokens, 0, None)
    return Doc(tuple(blocks))


def _blocks(tokens: list[Token], i: int, until: str | None) -> tuple[list[Block], int]:
    """Blocks from ``tokens[i:]`` up to the closing token ``until``; returns them and the next index."""
    out: list[Block] = []
    while i < len(tokens):
        tok = tokens[i]
        if until is not None and tok.type == until:
            return out, i + 1
        kind = tok.type
        if kind in ("paragraph_open", "heading_open"):
            inline = tokens[i + 1]
            lines = _inline_lines(inline.children or [])
            if lines:
                out.append(Paragraph(lines, heading=kind == "heading_open"))
            i += 3  # open, inline, close
        elif kind in ("bullet_list_open", "ordered_list_open"):
            close = kind.replace("_open", "_close")
            items: list[tuple[Block, ...]] = []
            start = int(tok.attrs.get("start", 1) or 1) if kind == "ordered_list_open" else 1
            i += 1
            while i < len(tokens) and tokens[i].type != close:
                if tokens[i].type == "list_item_open":
                    item, i = _blocks(tokens, i + 1, "list_item_close")
                    items.append(tuple(item))
                else:
                    i += 1
            out.append(ListBlock(tuple(items), ordered=kind == "ordered_list_open", start=start))
            i += 1
        elif kind == "blockquote_open":
            inner, i = _blocks(tokens, i + 1, "blockquote_close")
            out.append(Quote(tuple(inner)))
        elif kind in ("fence", "code_block"):
            out.append(Code(tuple(tok.content.rstrip("\n").split("\n"))))
            i += 1
        elif kind == "hr":
            i += 1
        else:  # html_block (html is off, so none), or a token we do not draw
            i += 1
    return out, i


def _inline_lines(children: list[Token]) -> tuple[Inline, ...]:
    """Inline tokens as lines of runs: styles from the open/close tokens, links from link_open."""
    from translators.model import safe_url

    lines: list[list[Span]] = [[]]
    bold = italic = strike = label_start = 0
    url: str | None = None
    for tok in children:
        kind = tok.type
        if kind in ("text", "code_inline"):
            if tok.content:
                lines[-1].append(
                    Span(
                        tok.content,
                        bold=bold > 0,
                        italic=italic > 0,
                        strike=strike > 0,
                        code=kind == "code_inline",
                        url=url,
                    )
                )
        elif kind in ("softbreak", "hardbreak"):
            lines.append([])
        elif kind == "strong_open":
            bold += 1
        elif kind == "strong_close":
            bold -= 1
        elif kind == "em_open":
            italic += 1
        elif kind == "em_close":
            italic -= 1
        elif kind == "s_open":
            strike += 1
        elif kind == "s_close":
            strike -= 1
        elif kind == "link_open":
            url = safe_url(str(tok.attrs.get("href") or ""))
            label_start = len(lines[-1])
        elif kind == "link_close":
            if url is not None:
                # Whoever wrote the text chose the label; the reader sees where it really goes.
                label = "".join(s.text for s in lines[-1][label_start:])
                host = urlsplit(url).hostname or ""
                if host and host not in label.lower():
                    lines[-1].append(Span(f" ({host})"))
            url = None
        elif kind == "image":
            # An image in a chat message would be a link to it; its description is what is read.
            alt = "".join(c.content for c in tok.children or []) or "image"
            lines[-1].append(Span(alt, url=safe_url(str(tok.attrs.get("src") or ""))))
    return tuple(Inline(_merge(line)) for line in lines if any(s.text.strip() for s in line))


def _merge(spans: list[Span]) -> list[Span]:
    """Adjacent runs of one style as one run (markdown-it splits text at every special character)."""
    out: list[Span] = []
    for span in spans:
        if out and _same_style(out[-1], span):
            prev = out[-1]
            out[-1] = Span(prev.text + span.text, prev.bold, prev.italic, prev.strike, prev.code, prev.url)
        else:
            out.append(span)
    return out


def _same_style(a: Span, b: Span) -> bool:
    return (a.bold, a.italic, a.strike, a.code, a.url) == (b.bold, b.italic, b.strike, b.code, b.url)


# ---------------------------------------------------------------------------------------------
# Clipping


def _plain_lines(blocks: tuple[Block, ...]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            out.extend(str(line) for line in block.lines)
        elif isinstance(block, Code):
            out.extend(block.lines)
        elif isinstance(block, Quote):
            out.extend(_plain_lines(block.blocks))
        else:
            for item in block.items:
                out.extend(_plain_lines(item))
    return out


class _Budget:
    def __init__(self, lines: int, chars: int) -> None:
        self.lines = lines
        self.chars = chars
        self.start = chars
        self.cut = False

    @property
    def taken(self) -> bool:
        return self.chars < self.start

    def spent(self) -> bool:
        return self.cut

    def take_line(self, text: str) -> str | None:
        """The part of one line that fits (with an ellipsis if shortened), or None when none does."""
        if self.cut or self.lines <= 0 or self.chars <= 0:
            self.cut = True
            return None
        self.lines -= 1
        if len(text) <= self.chars:
            self.chars -= len(text)
            return text
        if self.chars < _SHORTEST_PART and self.taken:
            # A few words of a new line read as noise: end after the last whole line instead.
            self.cut = True
            return None
        keep = _cut_at_word(text, self.chars)
        self.chars = 0
        self.cut = True
        return keep


def _cut_at_word(text: str, limit: int) -> str:
    """The longest start of ``text`` that ends on a whole word and leaves room for the ellipsis
    (a single word longer than the limit is cut where it must be)."""
    head = text[: max(limit - len(ELLIPSIS), 0)]
    if len(text) > len(head) and not text[len(head)].isspace():
        space = head.rfind(" ")
        if space > 0:
            head = head[:space]
    return head.rstrip(" ,;:")


def clip(doc: Doc, lines: int = MAX_LINES, chars: int = MAX_CHARS) -> Doc:
    """At most ``lines`` lines and ``chars`` characters of visible text, ending with an ellipsis."""
    budget = _Budget(lines, chars)
    blocks = _clip_blocks(doc.blocks, budget)
    if not budget.cut:
        return doc
    return Doc(_with_ellipsis(blocks), clipped=True)


def _clip_blocks(blocks: tuple[Block, ...], budget: _Budget) -> tuple[Block, ...]:
    out: list[Block] = []
    for block in blocks:
        if budget.cut:
            break
        if isinstance(block, Paragraph):
            kept = _clip_lines(block.lines, budget)
            if kept:
                out.append(Paragraph(kept, block.heading))
        elif isinstance(block, Code):
            code_lines = []
            for line in block.lines:
                part = budget.take_line(line)
                if part is None:
                    break
                code_lines.append(part)
            if code_lines:
                out.append(Code(tuple(code_lines)))
        elif isinstance(block, Quote):
            inner = _clip_blocks(block.blocks, budget)
            if inner:
                out.append(Quote(inner))
        else:
            items = []
            for item in block.items:
                kept_item = _clip_blocks(item, budget)
                if kept_item:
                    items.append(kept_item)
                if budget.spent():
                    break
            if items:
                out.append(ListBlock(tuple(items), block.ordered, block.start))
    return tuple(out)


def _clip_lines(lines: tuple[Inline, ...], budget: _Budget) -> tuple[Inline, ...]:
    out: list[Inline] = []
    for line in lines:
        text = str(line)
        part = budget.take_line(text)
        if part is None:
            break
        out.append(line if part == text else _truncate(line, len(part)))
    return tuple(out)


def _truncate(line: Inline, length: int) -> Inline:
    spans: list[Span] = []
    left = length
    for span in line:
        if left <= 0:
            break
        text = span.text[:left]
        left -= len(text)
        spans.append(Span(text, span.bold, span.italic, span.strike, span.code, span.url))
    return Inline(spans)


def _with_ellipsis(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    """The blocks with an ellipsis run after the last text (a new line if the last block is code)."""
    if not blocks:
        return (Paragraph((Inline.of(ELLIPSIS),)),)
    *rest, last = blocks
    if isinstance(last, Paragraph) and last.lines:
        *lines, tail = last.lines
        return (*rest, Paragraph((*lines, Inline((*tail, Span(ELLIPSIS)))), last.heading))
    if isinstance(last, ListBlock) and last.items:
        *items, tail_item = last.items
        return (*rest, ListBlock((*items, _with_ellipsis(tail_item)), last.ordered, last.start))
    if isinstance(last, Quote):
        return (*rest, Quote(_with_ellipsis(last.blocks)))
    if isinstance(last, Code) and last.lines:
        return (*rest, Code((*last.lines[:-1], last.lines[-1] + ELLIPSIS)))
    return (*blocks, Paragraph((Inline.of(ELLIPSIS),)))


def clip_inline(line: Inline, limit: int) -> Inline:
    """At most ``limit`` characters of runs, ending with an ellipsis when shortened."""
    if len(str(line)) <= limit:
        return line
    kept = _truncate(line, max(limit - len(ELLIPSIS), 0))
    return Inline((*kept, Span(ELLIPSIS)))


#: A run of text with no space longer than a phone's line (about 330 px) can hold.
_LONG_WORD = re.compile(r"[^\s\u200b]{31,}")
#: Where a long word may wrap: after these characters, else every ``_WORD_PIECE`` characters.
_BREAK_AFTER = re.compile(r"(?<=[_./\-:?&=,)])(?=[^\s])")
_WORD_PIECE = 24
ZERO_WIDTH_SPACE = "\u200b"


def soft_breaks(text: str) -> str:
    """``text`` with invisible break opportunities (U+200B) in words too long for a phone's line.

    Microsoft's card renderer does not wrap a long word (an error code, a URL, a dotted name) in
    a RichTextBlock: it runs past the card's edge and is cut. A zero-width space after each
    ``_ . / -`` of such a word lets it wrap there, and changes nothing a reader sees; words that
    fit a line (versions, most branch names) are left exactly as written.
    """
    if len(text) <= 30 or _LONG_WORD.search(text) is None:
        return text
    return _LONG_WORD.sub(_break_word, text)


def _break_word(match: re.Match[str]) -> str:
    pieces = _BREAK_AFTER.sub(ZERO_WIDTH_SPACE, match[0]).split(ZERO_WIDTH_SPACE)
    out: list[str] = []
    for piece in pieces:
        out.extend(piece[i : i + _WORD_PIECE] for i in range(0, len(piece), _WORD_PIECE))
    return ZERO_WIDTH_SPACE.join(out)


def as_doc(value: Any, *, markdown: bool, code_block: bool = False) -> Doc:
    """A template value as a Doc: a Doc as is, anything else read as Markdown or as lines."""
    if isinstance(value, Doc):
        return value
    text = "" if value is None else str(value)
    return from_markdown(text) if markdown else from_lines(text, code_block=code_block)
