"""The outbox as a table in the state store's SQLite file (one machine: ``serve``, its workers).

Every change is a single statement, conditional where two drainers could race: an entry is
leased with ``UPDATE ... WHERE lease_until < now RETURNING``, so only one of them gets it.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from translators.outbox import Entry, Stats, Status, dumps
from translators.state import StoreUnavailable, now, safe_reason
from translators.state.sqlite import SqliteStore, stamp

_COLUMNS = (
    "id, channel, status, format, template, body, minimal, event_id, event, title, created_at,"
    " next_attempt_at, attempts, last_error, dead_reason, lease_until, thread, http_attempts"
)


def _time(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if text else None


def _entry(row: Sequence[Any]) -> Entry:
    created, due = _time(row[10]), _time(row[11])
    assert created is not None and due is not None
    return Entry(
        id=row[0],
        channel=row[1],
        status=row[2],
        format=row[3],
        template=row[4],
        body=json.loads(row[5]),
        minimal=json.loads(row[6]) if row[6] else None,
        event_id=row[7],
        event=row[8],
        title=row[9],
        created_at=created,
        next_attempt_at=due,
        attempts=row[12],
        last_error=row[13],
        dead_reason=row[14],
        lease_until=_time(row[15]),
        thread=json.loads(row[16]) if row[16] else None,
        http_attempts=row[17] or 0,
    )


class SqliteOutbox:
    kind = "sqlite"

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"SqliteOutbox({self._store!r})"

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._store.connection() as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:  # raised past the store's own guard (a statement of ours)
            raise StoreUnavailable(safe_reason(exc)) from None

    def add(self, entry: Entry) -> None:
        self._run(
            f"INSERT INTO outbox ({_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                entry.id,
                entry.channel,
                entry.status,
                entry.format,
                entry.template,
                dumps(entry.body),
                dumps(entry.minimal) if entry.minimal is not None else None,
                entry.event_id,
                entry.event,
                entry.title,
                stamp(entry.created_at),
                stamp(entry.next_attempt_at),
                entry.attempts,
                entry.last_error,
                entry.dead_reason,
                dumps(entry.thread) if entry.thread is not None else None,
                entry.http_attempts,
            ),
        )

    def has_queued(self, channel: str) -> bool:
        return bool(
            self._run("SELECT 1 FROM outbox WHERE channel = ? AND status = 'queued' LIMIT 1", (channel,))
        )

    def heads(self) -> list[Entry]:
        rows = self._run(
            f"SELECT {_COLUMNS} FROM outbox WHERE id IN"
            " (SELECT min(id) FROM outbox WHERE status = 'queued' GROUP BY channel) ORDER BY id"
        )
        return [_entry(row) for row in rows]

    def lease(self, entry: Entry, token: str, until: datetime, at: datetime) -> bool:
        won = self._run(
            "UPDATE outbox SET lease_token = ?, lease_until = ?"
            " WHERE id = ? AND status = 'queued' AND (lease_until IS NULL OR lease_until < ?)"
            " RETURNING lease_token",
            (token, stamp(until), entry.id, stamp(at)),
        )
        return bool(won) and won[0][0] == token

    def remove(self, entry: Entry, token: str) -> None:
        self._run("DELETE FROM outbox WHERE id = ? AND lease_token = ?", (entry.id, token))

    def reschedule(
        self, entry: Entry, token: str, at: datetime, error: str | None, http_attempts: int = 0
    ) -> None:
        self._run(
            "UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1, last_error = ?,"
            " http_attempts = coalesce(http_attempts, 0) + ?,"
            " lease_token = NULL, lease_until = NULL WHERE id = ? AND lease_token = ?",
            (stamp(at), error, http_attempts, entry.id, token),
        )

    def bury(self, entry: Entry, token: str | None, reason: str, http_attempts: int = 0) -> None:
        self._run(
            "UPDATE outbox SET status = 'dead', dead_reason = ?, attempts = attempts + ?,"
            " http_attempts = coalesce(http_attempts, 0) + ?,"
            " lease_token = NULL, lease_until = NULL WHERE id = ? AND (? IS NULL OR lease_token = ?)",
            (reason, 1 if token else 0, http_attempts if token else 0, entry.id, token, token),
        )

    def entries(self, status: Status | None = None) -> list[Entry]:
        where = "" if status is None else " WHERE status = ?"
        rows = self._run(
            f"SELECT {_COLUMNS} FROM outbox{where} ORDER BY id",
            () if status is None else (status,),
        )
        return [_entry(row) for row in rows]

    def replay(self, ids: Sequence[str] | None, at: datetime) -> int:
        reset = "status = 'queued', attempts = 0, http_attempts = 0, dead_reason = NULL, next_attempt_at = ?"
        if ids is None:
            rows = self._run(f"UPDATE outbox SET {reset} WHERE status = 'dead' RETURNING id", (stamp(at),))
        else:
            marks = ",".join("?" * len(ids))
            rows = self._run(
                f"UPDATE outbox SET {reset} WHERE status = 'dead' AND id IN ({marks}) RETURNING id",
                (stamp(at), *ids),
            )
        return len(rows)

    def drop(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        return len(self._run(f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING id", tuple(ids)))

    def stats(self) -> Stats:
        ((queued, dead, oldest),) = self._run(
            "SELECT sum(status = 'queued'), sum(status = 'dead'), min(CASE WHEN status = 'queued'"
            " THEN created_at END) FROM outbox"
        )
        return Stats(queued or 0, dead or 0, _time(oldest))

    def close(self) -> None:
        pass  # the store owns the connections


def token() -> str:
    return uuid.uuid4().hex


__all__ = ["SqliteOutbox", "now", "token"]
