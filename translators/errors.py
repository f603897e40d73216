"""Errors that become specific HTTP answers. None of their texts may hold a destination URL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class TranslatorError(Exception):
    """Base for errors answered with a status code and a JSON body."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class BadBody(TranslatorError):
    status, code = 400, "invalid_body"


class Unauthorized(TranslatorError):
    status, code = 401, "unauthorized"


class TooLarge(TranslatorError):
    status, code = 413, "body_too_large"


class NotFound(TranslatorError):
    status, code = 404, "not_found"


class PayloadInvalid(TranslatorError):
    """The body is JSON but not a payload this source sends."""

    status, code = 422, "invalid_payload"

    def __init__(self, message: str, errors: Iterable[FieldError] = (), **extra: Any) -> None:
        super().__init__(message, **extra)
        self.errors = tuple(errors)

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": [e.as_dict() for e in self.errors]}


class ConfigurationError(TranslatorError):
    """The app settings are wrong. Not the sender's fault; 503 so that retrying sources try again."""

    status, code = 503, "configuration_error"


@dataclass(frozen=True)
class Ignored:
    """A payload clearly from the source, for an event we deliberately do not handle."""

    reason: str
    event: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def pydantic_errors(exc: Any) -> list[FieldError]:
    """Field paths and messages of a pydantic ValidationError, without echoing the input values."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in err["loc"]) or "(body)"
        out.append(FieldError(path, err["msg"]))
    return out
