"""Readable field errors from the output models' pydantic ValidationErrors (shared by all formats)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from translators.errors import FieldError

#: Rewrites one error for a format: (kind, loc, message) -> (loc, message), or None to keep it.
Rewrite = Callable[[str, list[str], str], tuple[list[str], str] | None]

_OBJECT_KINDS = frozenset({"model_type", "model_attributes_type", "dict_type"})


def short(tag: object) -> str:
    """The offending type name, quoted and cut short: it may come from a template."""
    text = repr(str(tag))
    return text if len(text) <= 42 else text[:40] + "…'"


def field_errors(
    exc: ValidationError,
    *,
    tag_key: str = "type",
    noun: Callable[[list[str], Any], str] = lambda loc, expected: "type",
    rewrite: Rewrite | None = None,
) -> list[FieldError]:
    """One FieldError per problem, with a dotted path and a message that echoes no input value."""
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        loc = [str(p) for p in err["loc"]]
        kind, msg = err["type"], err["msg"]
        custom = rewrite(kind, loc, msg) if rewrite else None
        if custom is not None:
            loc, msg = custom
        elif kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            expected = ctx.get("expected_tags")
            msg = f"Unknown {noun(loc, expected)} {short(ctx.get('tag'))}; expected one of {expected}"
        elif kind == "union_tag_not_found":
            msg = f"Missing '{tag_key}'"
        elif kind in _OBJECT_KINDS:
            msg = "Input should be an object"
        out.append(FieldError(".".join(loc) or "(body)", msg))
    return out
