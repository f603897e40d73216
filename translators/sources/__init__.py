"""Source registry: every module in this package that defines ``SOURCE`` is a source.

Adding a platform means adding one module here (pydantic models, event classification,
normalisation), its templates and its test fixtures; nothing central changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from translators.errors import Ignored, PayloadInvalid, pydantic_errors
from translators.model import Notification


class Source(Protocol):
    name: ClassVar[str]
    """Path segment, e.g. ``bitrise``."""
    label: ClassVar[str]
    """The platform's own name, e.g. ``Bitrise``."""
    docs: ClassVar[str]
    """Where the platform documents its webhook payloads."""

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        """True when the payload (or a header) is unmistakably this platform's."""
        ...

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        """Validate and normalise; raise PayloadInvalid for a payload this platform would not send."""
        ...


@cache
def registry() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        source = getattr(module, "SOURCE", None)
        if source is not None:
            found[source.name] = source
    return dict(sorted(found.items()))


def get(name: str) -> Source | None:
    return registry().get(name.lower())


def validate_model[M](model: type[M], payload: Mapping[str, Any], what: str) -> M:
    """``model.model_validate`` with errors turned into a 422 that names each field."""
    try:
        return model.model_validate(payload)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        raise PayloadInvalid(f"not a valid {what} payload", pydantic_errors(exc)) from None
