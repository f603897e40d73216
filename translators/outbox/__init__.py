"""The outbox: accepted notifications a channel has not taken yet, kept until it does.

A delivery that does not succeed within its request (the destination is down, slow, rate-limits
us, or the channel is being paced) is written here before the request is answered, with the body
exactly as rendered, the channel's *name* (never its URL: a rotated URL applies to what is queued)
and the event's identity. The drainer (translators/drainer.py) sends the entries later, oldest
first per channel, paced, with backoff; an entry that cannot be delivered for good becomes a dead
letter, which can be listed, replayed or dropped.

Two backends, like memory and beside it: a table in the SQLite file of the state store
(``outbox/sqlite.py``), and an Azure Table in the same storage account (``outbox/tables.py``).
Entries are leased before they are sent (a conditional write), so two drainers never send one
entry at the same time; the delivery claims of memory make sure a message confirmed delivered is
not sent again even when its drainer died before removing it.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from translators import logs
from translators.state import StoreUnavailable, backend, now

if TYPE_CHECKING:
    from translators.settings import AppSettings

log = logs.logger("translators.outbox")

Status = Literal["queued", "dead"]
#: How long a drainer holds an entry it is sending; longer than any delivery can take.
LEASE = timedelta(seconds=90)
DEFAULT_TABLE = "translatoroutbox"


@dataclass(frozen=True)
class Entry:
    """One queued (or dead) delivery. ``body`` is what the channel gets; ``minimal`` its fallback."""

    id: str
    channel: str
    format: str
    template: str
    body: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    event_id: str | None = None
    event: str | None = None
    title: str | None = None
    minimal: dict[str, Any] | None = None
    #: Tries: how many times the delivery was tried (its request's try, then each outbox pass).
    attempts: int = 0
    #: HTTP attempts: the requests those tries made, summed (each try makes up to
    #: DELIVERY_MAX_ATTEMPTS); what an answer's ``attempts`` counts for its one try.
    http_attempts: int = 0
    last_error: str | None = None
    status: Status = "queued"
    dead_reason: str | None = None
    lease_until: datetime | None = None
    #: What the channel's destination keeps beside the body (translators/destinations/): the build
    #: (for the order of its events) and, for a Slack app channel, how its one message is sent.
    thread: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self, at: datetime | None = None) -> dict[str, Any]:
        """What list shows: everything but the body, and never a URL (entries hold none)."""
        moment = at or now()
        return {
            "id": self.id,
            "channel": self.channel,
            "status": self.status,
            "event": self.event,
            "event_id": self.event_id,
            "title": self.title,
            "tries": self.attempts,
            "attempts": self.http_attempts,
            "last_error": self.last_error,
            "dead_reason": self.dead_reason,
            "next_attempt_at": None if self.status == "dead" else iso(self.next_attempt_at),
            "created_at": iso(self.created_at),
            "age_seconds": int((moment - self.created_at).total_seconds()),
        }


@dataclass(frozen=True)
class Stats:
    queued: int
    dead: int
    oldest: datetime | None

    def public(self, at: datetime | None = None) -> dict[str, Any]:
        moment = at or now()
        age = int((moment - self.oldest).total_seconds()) if self.oldest else None
        return {"queued": self.queued, "dead": self.dead, "oldest_age_seconds": age}


class OutboxStore(Protocol):
    """What the deliverer and the drainer need. Every method raises only ``StoreUnavailable``."""

    kind: str

    def add(self, entry: Entry) -> None: ...

    def has_queued(self, channel: str) -> bool:
        """Whether the channel has an entry waiting: a new event must queue behind it."""
        ...

    def heads(self) -> list[Entry]:
        """Each channel's oldest queued entry (leased or not): only a head may be sent."""
        ...

    def lease(self, entry: Entry, token: str, until: datetime, at: datetime) -> bool:
        """Take the entry for sending, unless another drainer holds it (a conditional write)."""
        ...

    def remove(self, entry: Entry, token: str) -> None:
        """The entry is settled (delivered, duplicate, unknown): drop it, if our lease still holds."""
        ...

    def reschedule(
        self, entry: Entry, token: str, at: datetime, error: str | None, http_attempts: int = 0
    ) -> None:
        """Try again at ``at``; the lease is given up, tries count one more and the HTTP attempts
        ``http_attempts`` more (those of the try that just failed)."""
        ...

    def bury(self, entry: Entry, token: str | None, reason: str, http_attempts: int = 0) -> None:
        """A dead letter: kept with the reason, never sent again unless replayed. With ``token`` (it
        was just tried) tries count one more and the HTTP attempts ``http_attempts`` more."""
        ...

    def entries(self, status: Status | None = None) -> list[Entry]: ...

    def replay(self, ids: Sequence[str] | None, at: datetime) -> int:
        """Dead letters back in the queue (all of them when ``ids`` is None), due at ``at``."""
        ...

    def drop(self, ids: Sequence[str]) -> int: ...

    def stats(self) -> Stats: ...

    def close(self) -> None: ...


def log_change(change: str, entry: Entry, *, tried: int | None = None, **fields: Any) -> None:
    """One structured line per change of an entry: never a body, never a URL (entries hold none).

    ``tries`` and ``attempts`` count as ``outbox list`` does: tries of the delivery and the HTTP
    attempts they made. ``tried``: the change follows a try that made that many HTTP attempts, and
    which the entry does not count yet.
    """
    tries, attempts = entry.attempts, entry.http_attempts
    if tried is not None:
        tries, attempts = tries + 1, attempts + tried
    logs.event(
        log,
        f"outbox.{change}",
        {
            "id": entry.id,
            "channel": entry.channel,
            "event": entry.event,
            "event_id": entry.event_id,
            "tries": tries,
            "attempts": attempts,
            **{k: v for k, v in fields.items() if v is not None},
        },
    )


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_sequence = 0
_sequence_lock = threading.Lock()


def new_id(at: datetime) -> str:
    """Sortable by creation (per channel, entries are sent in this order), unique across processes."""
    global _sequence
    with _sequence_lock:
        _sequence = (_sequence + 1) % 100_000
        count = _sequence
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S%f}{count:05d}-{os.urandom(3).hex()}"


def backoff(attempts: int, minimum: float, maximum: float, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempts + 1``: exponential with jitter, at least ``Retry-After``."""
    base = min(maximum, minimum * float(2 ** max(attempts - 1, 0)))
    delay = base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), maximum if retry_after is None else max(maximum, retry_after))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def leased(entry: Entry, at: datetime) -> bool:
    return entry.lease_until is not None and entry.lease_until > at


def with_status(entry: Entry, status: Status, **changes: Any) -> Entry:
    return replace(entry, status=status, **changes)


_lock = threading.Lock()
_outboxes: dict[tuple[str, ...], OutboxStore] = {}


def open_outbox(app: AppSettings) -> OutboxStore:
    """The outbox beside memory: the SQLite file's ``outbox`` table, or the ``OUTBOX_TABLE`` table."""
    from translators import state

    kind = backend(app)
    if kind == "sqlite":
        store = state.open_store(app)
        key: tuple[str, ...] = ("sqlite", repr(store))
        with _lock:
            if key not in _outboxes:
                from translators.outbox.sqlite import SqliteOutbox

                _outboxes[key] = SqliteOutbox(store)  # type: ignore[arg-type]
            return _outboxes[key]
    target = state.table_target(app)
    table = app.outbox_table
    key = ("tables", *target.key, table)
    with _lock:
        if key not in _outboxes:
            from translators.outbox.tables import TableOutbox

            _outboxes[key] = TableOutbox(target, table)
        return _outboxes[key]


def close_all() -> None:
    with _lock:
        outboxes = list(_outboxes.values())
        _outboxes.clear()
    for outbox in outboxes:
        outbox.close()


def after(seconds: float, at: datetime | None = None) -> datetime:
    return (at or now()) + timedelta(seconds=seconds)


__all__ = [
    "LEASE",
    "Entry",
    "OutboxStore",
    "Stats",
    "StoreUnavailable",
    "after",
    "backoff",
    "close_all",
    "new_id",
    "open_outbox",
]
