"""Who may post, and how much: checks that run before a body is parsed.

The function URL is public; anyone who learns it can post. Azure's function key is the first
gate, ``WEBHOOK_TOKEN`` a second one that also covers the local server (where keys are not
checked). Size and shape limits keep a hostile body from costing memory or CPU.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from translators import logs
from translators.errors import BadBody, TooLarge, Unauthorized

if TYPE_CHECKING:
    from pydantic import SecretStr

TOKEN_HEADER = "x-webhook-token"  # noqa: S105 - a header name, not a secret
TOKEN_PARAM = "token"  # noqa: S105 - a parameter name
#: Real payloads nest 4-5 levels and hold a few hundred values; these bounds are far above that.
MAX_JSON_DEPTH = 64
MAX_JSON_VALUES = 100_000


def token_ok(expected: SecretStr | None, headers: Mapping[str, str], query_token: str | None) -> bool:
    """Whether the request carries ``WEBHOOK_TOKEN`` (header or ``token`` parameter); True when unset."""
    if expected is None:
        return True
    secret = expected.get_secret_value()
    logs.register_secrets([secret])
    given = next((v for k, v in headers.items() if k.lower() == TOKEN_HEADER), None)
    if given is None:
        given = query_token or ""
    # compare_digest takes the same time wherever the strings differ: no guessing by timing.
    return bool(given) and hmac.compare_digest(
        given.encode("utf-8", "replace"), secret.encode("utf-8", "replace")
    )


def token_refused() -> Unauthorized:
    return Unauthorized(
        "missing or wrong webhook token: send it in the X-Webhook-Token header"
        f" or the ?{TOKEN_PARAM}= query parameter"
    )


def check_size(limit: int, body: bytes) -> None:
    if len(body) > limit:
        raise TooLarge(f"the request body is {len(body)} bytes; the limit is {limit} (MAX_BODY_BYTES)")


def may_break_shape(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` could break the limits of ``check_shape`` at all.

    Most bodies cannot, and walking one costs more than parsing it: every JSON value starts at a
    byte of its own, so a body of at most MAX_JSON_VALUES bytes holds at most that many values, and
    nesting deeper than MAX_JSON_DEPTH takes at least MAX_JSON_DEPTH ``{`` or ``[`` bytes (counted
    in strings too, which only errs towards walking).
    """
    return len(raw) > MAX_JSON_VALUES or raw.count(b"{") + raw.count(b"[") >= MAX_JSON_DEPTH


def check_shape(payload: Any) -> None:
    """Reject JSON that nests or counts beyond any real payload, before models walk it."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_JSON_DEPTH:
            raise BadBody(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
        if count > MAX_JSON_VALUES:
            raise TooLarge(f"the request body holds more than {MAX_JSON_VALUES} JSON values")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
