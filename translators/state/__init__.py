"""Memory between requests: the last build outcome per app and branch, and which deliveries were made.

One small interface, two backends: an SQLite file (``translators/state/sqlite.py``, the default
when no storage is configured) and Azure Table Storage (``translators/state/tables.py``, the
default on Azure, where every instance of a scaled-out Function App shares it). Both make their
conditional writes atomic in the store itself (``INSERT ... ON CONFLICT`` / ETags), never with a
read-then-write in Python, so several instances can race safely.

Settings (translators/settings.py): ``STATE_STORE`` picks the backend; translators/state/connection.py
finds the Table Storage account and credential (a connection string or a managed identity) in
``STATE_STORAGE_*`` or ``AzureWebJobsStorage*``; ``STATE_TABLE`` names the table.

A delivery's claim is in one of three states: *claimed* (a request is sending it), *delivered*
(the destination took it), or *unknown* (it was sent and no answer came in time). An unknown one is
not sent again for ``UNKNOWN_RESEND_AFTER``: the destination most likely has it, and a retry right
away would be a duplicate. A retry after that sends it once more, preferring one possible duplicate
over a certain loss.

Every failure of a store (unreachable, refused, unwritable, misconfigured) is a ``StoreUnavailable``
whose message names the failure's class, never a host, path or key: callers deliver anyway and
say that memory was unavailable.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from translators import logs
from translators.state import connection

if TYPE_CHECKING:
    from translators.settings import AppSettings

Outcome = Literal["success", "failure"]

#: A claim not confirmed within this long belongs to an instance that died mid-delivery and may be
#: taken over. It must be longer than any delivery can take (DELIVERY_DEADLINE_SECONDS is at most 60).
CLAIM_STALE_AFTER = timedelta(minutes=5)
#: A delivery whose outcome is unknown is not sent again before this (see the module's docs).
UNKNOWN_RESEND_AFTER = timedelta(minutes=10)
#: A message being posted whose post never finished (its instance died) may be posted again after this.
MESSAGE_POST_STALE_AFTER = timedelta(minutes=2)
#: Old rows are pruned, so that memory does not grow forever.
KEEP_CLAIMS = timedelta(days=30)
KEEP_OUTCOMES = timedelta(days=365)

DEFAULT_SQLITE_PATH = Path(__file__).resolve().parent.parent.parent / ".state" / "state.db"
DEFAULT_TABLE = "translatorstate"


class StoreUnavailable(Exception):
    """The store cannot be used right now. The message never holds a connection string or key."""


@dataclass(frozen=True)
class Claim:
    """The answer to "may I deliver this event to this channel?".

    ``token`` is set when the caller now holds the claim and must ``confirm``, ``release`` or
    ``mark_unknown`` it. Otherwise ``delivered`` says the delivery was already made, ``unknown``
    that it was sent recently with no answer, and neither that another request is making it now.
    """

    token: str | None
    delivered: bool = False
    unknown: bool = False

    @property
    def held(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class Message:
    """The chat message of one build in one channel (Slack app channels): its ``ts`` once posted.

    ``stage`` is the furthest event it shows (0 under way, 1 settled): a late "started" never
    turns a finished build's message back. ``ts`` is None while some instance is posting it.
    """

    ts: str | None
    stage: int
    claimed_at: datetime


class StateStore(Protocol):
    """What the notification rules need to remember. Every method raises only ``StoreUnavailable``."""

    kind: str

    def previous_outcome(self, key: str, event_id: str | None) -> Outcome | None:
        """The outcome of the last finished build under ``key`` before this event.

        When the last recorded build *is* ``event_id`` (a retry of an event already recorded), the
        outcome recorded before it, so that a retry is judged exactly like the first attempt.
        """
        ...

    def record_outcome(self, key: str, outcome: Outcome, event_id: str | None, at: datetime) -> None:
        """Remember ``outcome`` as the last build under ``key``.

        A no-op for an event already recorded, and for a build older (``at``) than the one on record,
        so that a late retry of an old build does not overwrite a newer result.
        """
        ...

    def claim(self, event_id: str, channel: str, now: datetime) -> Claim:
        """Atomically take the right to deliver ``event_id`` to ``channel`` (see ``Claim``).

        A claim older than ``CLAIM_STALE_AFTER`` and never confirmed is taken over.
        """
        ...

    def confirm(self, event_id: str, channel: str, token: str, now: datetime) -> None:
        """The delivery was made: later claims answer ``delivered``."""
        ...

    def release(self, event_id: str, channel: str, token: str) -> None:
        """The delivery failed: drop our claim (only ours) so that a retry can deliver."""
        ...

    def mark_unknown(self, event_id: str, channel: str, token: str, now: datetime) -> None:
        """Sent, no answer: later claims answer ``unknown`` until ``UNKNOWN_RESEND_AFTER`` has passed."""
        ...

    def forget(self, event_id: str, channel: str) -> None:
        """Drop what memory knows of this delivery, whoever holds it (``send --force``)."""
        ...

    def message(self, key: str, channel: str) -> Message | None:
        """The message of ``key`` (a build) in ``channel``, if one was posted or is being posted."""
        ...

    def claim_message(self, key: str, channel: str, stage: int, now: datetime) -> str | None:
        """Atomically take the right to post the message of ``key``: a token, or None when another
        request has posted it or is posting it (a post left unfinished for
        ``MESSAGE_POST_STALE_AFTER`` is taken over)."""
        ...

    def message_posted(self, key: str, channel: str, token: str, ts: str, stage: int, now: datetime) -> None:
        """The post we claimed is made: remember its ``ts``."""
        ...

    def release_message(self, key: str, channel: str, token: str) -> None:
        """The post we claimed failed: drop the claim (only ours, only if unposted)."""
        ...

    def advance_message(self, key: str, channel: str, stage: int, now: datetime) -> bool:
        """Move the posted message to ``stage`` unless it shows a later one; whether it may be updated."""
        ...

    def replace_message(self, key: str, channel: str, old_ts: str, new_ts: str, now: datetime) -> None:
        """The message ``old_ts`` was gone and ``new_ts`` was posted in its place."""
        ...

    def clear(self) -> int:
        """Forget every delivery and build outcome (``memory clear``); how many records went."""
        ...

    def close(self) -> None: ...


def utc(value: datetime) -> datetime:
    """Aware UTC; a naive timestamp from a payload is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_outcome(value: object) -> Outcome | None:
    """A stored outcome back as the Literal (None for anything else, such as a missing value)."""
    if value == "success":
        return "success"
    if value == "failure":
        return "failure"
    return None


def digest(text: str) -> str:
    """A fixed-length key for any text (Table Storage keys forbid / \\ # ? and control characters)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_reason(exc: BaseException) -> str:
    """Why a store failed, for answers and log lines: the failure's class, never its text.

    Storage exceptions quote the host and port, the file path, sometimes the request URL; a class
    name ("ServiceRequestError", "OperationalError") says what kind of failure it was.
    """
    name = type(exc).__name__
    described = _KINDS.get(name)
    return f"{name} ({described})" if described else name


_KINDS = {
    "ServiceRequestError": "storage not reachable",
    "ServiceResponseError": "storage did not answer",
    "ClientAuthenticationError": "storage refused the credentials",
    "HttpResponseError": "storage answered with an error",
    "ResourceNotFoundError": "storage table or account not found",
    "OperationalError": "database file not usable",
    "DatabaseError": "database file not usable",
    "PermissionError": "no permission",
    "TimeoutError": "timed out",
}


_lock = threading.Lock()
_stores: dict[tuple[str, ...], StateStore] = {}


def backend(app: AppSettings) -> str:
    """Which backend ``open_store`` picks for these settings: ``sqlite`` or ``tables``."""
    spec = app.state_store.strip().lower()
    if not spec:
        return "tables" if connection.configured(app) else "sqlite"
    return spec.split(":", 1)[0]


def describe(app: AppSettings) -> dict[str, str]:
    """Which backend and which kind of credential memory uses, for ``/api/health``: never a secret."""
    kind = backend(app)
    if kind != "tables":
        return {"backend": kind}
    try:
        return {"backend": kind, **table_target(app).public()}
    except StoreUnavailable:
        return {"backend": kind, "credential": "none"}


def prefetch(app: AppSettings) -> None:
    """Import the Table Storage backend in the background when the settings will want it.

    azure-data-tables and azure-core take about 110 ms to import; done on a daemon thread while the
    first request is parsed, its memory lookups do not wait for all of it (Python's import lock
    makes a request wait for an import still in progress rather than start a second one).
    """
    if backend(app) == "tables" and "translators.state.tables" not in sys.modules:
        threading.Thread(
            target=importlib.import_module, args=("translators.state.tables",), daemon=True
        ).start()


def open_store(app: AppSettings) -> StateStore:
    """The store the settings name, opened once per process and reused (it holds a connection pool).

    Raises StoreUnavailable for settings that name no usable store.
    """
    kind = backend(app)
    if kind == "sqlite":
        path = sqlite_path(app)
        return _cached(("sqlite", str(path)), lambda: _open_sqlite(path))
    target = table_target(app)
    table = app.state_table
    return _cached(("tables", *target.key, table), lambda: _open_tables(target, table))


def sqlite_path(app: AppSettings) -> Path:
    """The SQLite file the settings name (STATE_STORE ``sqlite`` or ``sqlite:///path``)."""
    return _sqlite_path(app.state_store.strip() or "sqlite")


def table_target(app: AppSettings) -> connection.Target:
    """The Table Storage memory and the outbox use; StoreUnavailable when none is configured."""
    try:
        target = connection.resolve(app)
    except connection.NoConnection as exc:
        raise StoreUnavailable(f"STATE_STORE is tables but {exc}") from None
    logs.register_secrets(target.secrets())
    return target


def close_all() -> None:
    """Close every open store (tests; a process that is shutting down)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()


def _cached(key: tuple[str, ...], opener: Callable[[], StateStore]) -> StateStore:
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = opener()
            _stores[key] = store
        return store


@lru_cache(maxsize=16)
def _sqlite_path(spec: str) -> Path:
    """The file a ``sqlite...`` spec names; cached, as every request opens the store (exceptions are not)."""
    rest = spec[len("sqlite") :]
    if not rest:
        return DEFAULT_SQLITE_PATH
    if not rest.startswith("://") or len(rest) == 3:
        raise StoreUnavailable("STATE_STORE for SQLite is sqlite or sqlite:///path/to/file.db")
    path = rest[3:]
    if len(path) > 2 and path[0] == "/" and path[2] == ":":  # sqlite:///C:/state.db on Windows
        path = path[1:]
    return Path(path).expanduser()


def _open_sqlite(path: Path) -> StateStore:
    from translators.state.sqlite import SqliteStore

    return SqliteStore(path)


def _open_tables(target: connection.Target, table: str) -> StateStore:
    from translators.state.tables import TableStore  # azure-data-tables loads only for this backend

    return TableStore(target, table)


def now() -> datetime:
    return datetime.now(UTC)
