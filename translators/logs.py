"""Logging that cannot leak a destination URL or token.

Every configured secret is registered here when settings load; a filter on each ``translators``
logger replaces them (and the parts of a URL that identify it) in every record, at every level.
``redact`` is also what delivery runs over error texts before they reach an answer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
#: Shorter URL parts (``services``, ``T0``) are too common to mask without hiding ordinary words.
MIN_URL_PART_CHARS = 8

_lock = threading.Lock()
_registered: frozenset[str] = frozenset()


def _url_parts(secret: str) -> Iterator[str]:
    """The pieces of a URL that an error text or a log line may quote on their own."""
    parts = urlsplit(secret)
    if not (parts.scheme and parts.netloc):
        return
    yield parts.netloc + parts.path
    yield parts.path
    yield parts.query
    if parts.query:
        yield f"{parts.path}?{parts.query}"
    yield from parts.path.split("/")
    for _, value in parse_qsl(parts.query, keep_blank_values=True):
        yield value


def needles(secrets: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for secret in secrets:
        if secret:
            found.update(_needles(secret))
    return found


@lru_cache(maxsize=256)
def _needles(secret: str) -> frozenset[str]:
    """One secret and its URL parts; cached because every request registers the same URLs again."""
    found = {secret}
    for part in _url_parts(secret):
        found.update(p for p in (part, unquote(part)) if len(p) >= MIN_URL_PART_CHARS)
    return frozenset(found)


def register_secrets(secrets: Iterable[str]) -> None:
    """Remember secrets (channel URLs, tokens) so that every later log line is scrubbed of them."""
    global _registered
    found = needles(secrets)
    if not found <= _registered:
        with _lock:
            _registered = _registered | found


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace registered and given secrets (and their URL parts, also percent-decoded) with ``***``.

    Matching ignores case: hosts and percent-escapes change case freely.
    """
    found = _registered | needles(secrets)
    if not found or not text:
        return text
    return _pattern(found).sub(MASK, text)


@lru_cache(maxsize=64)
def _pattern(found: frozenset[str]) -> re.Pattern[str]:
    """One regex for a set of needles, built once per set (every log record is redacted)."""
    # Longest first, so that a whole URL becomes one mask rather than a mask per part.
    return re.compile("|".join(re.escape(n) for n in sorted(found, key=len, reverse=True)), re.IGNORECASE)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            cleaned = redact(record.getMessage())
            if record.exc_info:
                # Exception texts (requests puts URLs in them) are rendered now and redacted.
                cleaned += "\n" + redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # a filter must not raise into the caller; drop the text instead
            cleaned = "(log record withheld: could not be redacted)"
        record.msg, record.args = cleaned, ()
        record.exc_info, record.exc_text = None, None
        return True


def logger(name: str) -> logging.Logger:
    """A logger whose records are redacted (a filter sees only its own logger's records)."""
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())
    return log


#: ``json.dumps(fields, ensure_ascii=False, default=str, separators=(",", ":"))`` without building
#: an encoder for every line.
_FIELDS_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))


def event(log: logging.Logger, name: str, fields: Mapping[str, object], level: int = logging.INFO) -> None:
    """One structured line: ``name {"key": value, ...}`` (JSON, so log queries can parse it).

    Values are redacted like every other record (the logger's filter runs on the whole line).
    """
    if log.isEnabledFor(level):
        log.log(level, "%s %s", name, _FIELDS_ENCODER.encode(fields))
