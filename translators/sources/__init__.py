"""Source registry: every module in this package that defines ``SOURCE`` is a source.

Adding a platform means adding one module here (pydantic models, event classification,
normalisation), its templates and its test fixtures; nothing central changes.

``auto`` is not a module but a path segment: ``detect`` picks the one source whose
``recognises`` accepts the payload, for users who do not want to name the platform in the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from translators.errors import FieldError, Ignored, PayloadInvalid, Unauthorized, pydantic_errors
from translators.model import Notification

if TYPE_CHECKING:
    from translators.settings import AppSettings


class Source(Protocol):
    name: ClassVar[str]
    """Path segment, e.g. ``bitrise``."""
    label: ClassVar[str]
    """The platform's own name, e.g. ``Bitrise``."""
    docs: ClassVar[str]
    """Where the platform documents its webhook payloads."""
    signature: ClassVar[str]
    """What ``recognises`` looks for, in words (the ``auto`` 422 lists it)."""

    def recognises(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        """True when the payload (or a header) is unmistakably this platform's."""
        ...

    def translate(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Notification | Ignored:
        """Validate and normalise; raise PayloadInvalid for a payload this platform would not send."""
        ...


@dataclass(frozen=True)
class Enrichment:
    """What a source's ``enrich`` hook made of a notification, and how it went."""

    notification: Notification
    #: "complete", or "unavailable: <why>" (the answer carries it as ``enrichment``).
    note: str


class Enriches(Protocol):
    """A source that can complete its notifications from elsewhere (Bitrise: its API).

    Optional: the pipeline calls ``enrich`` after the rules decided to send, on sources that have
    it. It must answer within a couple of seconds and never raise: on any problem it returns the
    notification as it was, with a note saying why.
    """

    def enrich(self, n: Notification, app: AppSettings) -> Enrichment | None:
        """None when the settings ask for no enrichment (no token, say)."""
        ...

    def replay(self, n: Notification, answers: Mapping[str, Any]) -> Notification:
        """``n`` completed from recorded answers (``samples/<source>/api/``), as ``enrich`` would:
        for golden files and the preview, without a network."""
        ...


@dataclass(frozen=True)
class Signing:
    """How a platform signs each delivery: a hex HMAC of the raw body, in one header.

    A source declares it as its ``signing`` class constant. ``setting`` names the app setting that
    holds the secret the user chose on the platform: while it is unset the source is unsigned and
    its requests are admitted like any other (``WEBHOOK_TOKEN``, if that is set); once it is set,
    a request of that source without a valid signature is refused (401) before anything is read
    from its body, and the signature stands in for ``WEBHOOK_TOKEN``.
    """

    #: The header as the platform's docs write it (headers are matched case-insensitively).
    header: str
    setting: str
    #: A hashlib name: ``sha256``, ``sha1``.
    digest: str = "sha256"
    #: What comes before the hex digest in the header (``hmacsha256=``, ``sha256=``), if anything.
    prefix: str = ""

    def sign(self, secret: str, body: bytes) -> str:
        """The header's value for ``body``, as the platform would send it (the CLI and tests sign)."""
        return self.prefix + self._hex(secret, body)

    def _hex(self, secret: str, body: bytes) -> str:
        return hmac.new(secret.encode("utf-8"), body, getattr(hashlib, self.digest)).hexdigest()

    def value(self, headers: Mapping[str, str]) -> str:
        """The header's value as received (names in lower case), or "" when it is not there.

        A header named with "_" (Appcircle's ac_signature) reaches some servers as "-": both count.
        """
        name = self.header.lower()
        return (headers.get(name) or headers.get(name.replace("_", "-")) or "").strip()

    def verify(self, secret: str, body: bytes, headers: Mapping[str, str], label: str) -> None:
        """Unauthorized naming the header unless it holds the HMAC of ``body`` (bytes as received).

        ``headers``: names in lower case. The prefix may be left out and hex may be in either case;
        the digests are compared in constant time.
        """
        given = self.value(headers)
        if not given:
            dropped = " (some servers and proxies drop a header whose name holds '_': nginx by default)"
            raise Unauthorized(
                f"missing {self.header} header: {label} requests must be signed while {self.setting} is set"
                + (dropped if "_" in self.header else ""),
                header=self.header,
            )
        if self.prefix and given[: len(self.prefix)].lower() == self.prefix.lower():
            given = given[len(self.prefix) :]
        expected = self._hex(secret, body)
        if not hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8", "replace")):
            raise Unauthorized(
                f"{self.header} does not match the body: the secret set on the {label} webhook is not"
                f" {self.setting}, or the body changed on the way",
                header=self.header,
            )


def signing(source: Source) -> Signing | None:
    found = getattr(source, "signing", None)
    return found if isinstance(found, Signing) else None


def signing_secret(source: Source, app: AppSettings) -> str | None:
    """The secret ``source``'s deliveries are signed with, when its setting is set."""
    how = signing(source)
    if how is None:
        return None
    value = app.value_of(how.setting)
    return value.get_secret_value() if value is not None else None


def verify(source: Source, app: AppSettings, body: bytes, headers: Mapping[str, str]) -> None:
    """Unauthorized unless the request carries ``source``'s signature, when its secret is set."""
    secret = signing_secret(source, app)
    how = signing(source)
    if secret is not None and how is not None:
        how.verify(secret, body, headers, source.label)


def signed(app: AppSettings) -> frozenset[str]:
    """The sources whose secret is set: their signature admits a request without WEBHOOK_TOKEN."""
    return frozenset(name for name, s in registry().items() if signing_secret(s, app) is not None)


def signatures(app: AppSettings) -> dict[str, str]:
    """For health: each source that can be signed, ``checked`` or ``unsigned`` (its setting unset)."""
    found = {}
    for name, source in registry().items():
        how = signing(source)
        if how is not None:
            found[name] = (
                f"checked ({how.header})"
                if signing_secret(source, app) is not None
                else f"unsigned: set {how.setting} to check {how.header}"
            )
    return found


def enricher(source: Source) -> Enriches | None:
    return source if callable(getattr(source, "enrich", None)) else None  # type: ignore[return-value]


@cache
def _module_names() -> frozenset[str]:
    return frozenset(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


@cache
def registry() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for name in sorted(_module_names()):
        module = importlib.import_module(f"{__name__}.{name}")
        source = getattr(module, "SOURCE", None)
        if source is not None:
            found[source.name] = source
    return dict(sorted(found.items()))


def get(name: str) -> Source | None:
    key = name.lower()
    # A cold instance's first request names one source: import just its module (the others' models
    # cost about 20 ms) when the module bears the source's name; otherwise ask the full registry.
    if key in _module_names():
        source: Source | None = getattr(importlib.import_module(f"{__name__}.{key}"), "SOURCE", None)
        if source is not None and source.name == key:
            return source
    return registry().get(key)


#: The path segment that asks for the source to be recognised from the request itself.
AUTO = "auto"
AUTO_LABEL = "recognised from the payload"


#: How a caller of the function names the source instead of ``auto``: its URL's path segment.
NAME_IT = "name the source in the URL"


def detect(payload: Mapping[str, Any], headers: Mapping[str, str], *, name_it: str = NAME_IT) -> Source:
    """The one source that recognises the request; PayloadInvalid when none or several do.

    ``name_it``: what the refusal tells the user to do instead, where the source is named in
    another way than the URL (the command line's SOURCE argument).

    Each source's ``recognises`` looks for keys only that platform sends, so on every bundled
    sample exactly one answers yes (tests/test_auto.py checks it); a body that fits two is
    refused rather than guessed, because a wrong guess would send a wrong message.
    """
    found = [s for s in registry().values() if s.recognises(payload, headers)]
    if len(found) == 1:
        return found[0]
    expected = [FieldError("(body)", f"{s.label} ({s.name}): {s.signature}") for s in registry().values()]
    if found:
        names = " and ".join(s.label for s in found)
        raise PayloadInvalid(
            f"the payload fits {names}; {name_it} instead of '{AUTO}'",
            [FieldError("(body)", f"{s.label} ({s.name}): {s.signature}") for s in found],
            candidates=[s.name for s in found],
        )
    raise PayloadInvalid(
        f"'{AUTO}' did not recognise the sender; expected one of these, or {name_it}",
        expected,
        valid=sorted(registry()),
    )


#: Platform words as the platforms' own dashboards write them (Apple's APIs say ``MAC_OS``).
_PLATFORMS = {
    "android": "Android",
    "ios": "iOS",
    "web": "Web",
    "macos": "macOS",
    "windows": "Windows",
    "tvos": "tvOS",
    "visionos": "visionOS",
    "watchos": "watchOS",
}


def platform_name(value: str | None) -> str | None:
    """``android`` -> ``Android``, ``ios`` -> ``iOS``, ``MAC_OS`` -> ``macOS``; anything else as sent."""
    if value is None or not value.strip():
        return None
    return _PLATFORMS.get(value.strip().lower().replace("_", ""), value.strip())


class Loose(BaseModel):
    """A payload object: unknown keys ignored, numbers taken where text is expected, and ``null``
    read as absent (platforms leave out keys they do not know yet; some write ``null`` instead:
    either way the default applies)."""

    # The schema is built at the first validation, not at import: the registry imports every
    # source on a cold start (``auto``, health), and most requests name one.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def validate_model[M](model: type[M], payload: Mapping[str, Any], what: str) -> M:
    """``model.model_validate`` with errors turned into a 422 that names each field."""
    try:
        return model.model_validate(payload)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        raise PayloadInvalid(f"not a valid {what} payload", pydantic_errors(exc)) from None
