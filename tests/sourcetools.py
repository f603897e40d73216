"""Calling one source directly (no HTTP, no channels), for the per-source tests."""

from __future__ import annotations

from typing import Any

import pytest

from translators import sources
from translators.errors import Ignored, PayloadInvalid
from translators.model import Notification

#: Every source the registry must hold (a module that lost its SOURCE would drop out silently).
SOURCES = (
    "bitrise",
    "appcenter",
    "applivery",
    "appflow",
    "appstoreconnect",
    "xcodecloud",
    "eas",
    "github",
    "appcircle",
)


def translate(
    source: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Notification | Ignored:
    src = sources.get(source)
    assert src is not None, source
    return src.translate(payload, {k.lower(): v for k, v in (headers or {}).items()})


def notification(source: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Notification:
    result = translate(source, payload, headers)
    assert isinstance(result, Notification), result
    return result


def errors_of(source: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> list[str]:
    """The field paths of the PayloadInvalid the payload must raise."""
    with pytest.raises(PayloadInvalid) as err:
        translate(source, payload, headers)
    return [e.path for e in err.value.errors]


def plain_facts(n: Notification) -> dict[str, str]:
    """``n.key_facts`` as label -> the text a reader sees (identifiers without their code style)."""
    return {label: str(value) for label, value in n.key_facts}
