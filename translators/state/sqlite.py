"""The state store in an SQLite file: the default when no storage is configured.

Safe across threads and processes on one machine: every conditional write is a single
``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE`` statement, which SQLite runs atomically under
its write lock; WAL lets readers proceed while one request writes, and ``busy_timeout`` makes
concurrent writers wait instead of failing. Operations take turns (``Turn``), so a process needs
one connection, kept open (opening one per operation, with its PRAGMA, cost more than the queries
themselves); one that saw an error is closed, and the next operation opens another.

Not for several machines: SQLite's locking does not hold on network file systems (such as the
Azure Files share behind ``/home`` on App Service), which is what the Table Storage backend is for.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: threads take turns, processes rely on SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

from translators.state import (
    CLAIM_STALE_AFTER,
    KEEP_CLAIMS,
    KEEP_OUTCOMES,
    MESSAGE_POST_STALE_AFTER,
    UNKNOWN_RESEND_AFTER,
    Claim,
    Message,
    Outcome,
    StoreUnavailable,
    as_outcome,
    now,
    safe_reason,
    utc,
)

#: How long a write waits for another process's write before the store counts as unavailable.
BUSY_TIMEOUT_SECONDS = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    key TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    previous TEXT,
    event_id TEXT,
    at TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    event_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    token TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    delivered_at TEXT,
    unknown_at TEXT,
    PRIMARY KEY (event_id, channel)
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    format TEXT NOT NULL,
    template TEXT NOT NULL,
    body TEXT NOT NULL,
    minimal TEXT,
    event_id TEXT,
    event TEXT,
    title TEXT,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dead_reason TEXT,
    lease_token TEXT,
    lease_until TEXT,
    thread TEXT,
    http_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_by_channel ON outbox (channel, status, id);
CREATE TABLE IF NOT EXISTS messages (
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT,
    stage INTEGER NOT NULL,
    token TEXT,
    claimed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (key, channel)
);
"""


def stamp(value: datetime) -> str:
    """Fixed-width UTC text, so that SQL compares timestamps as strings correctly."""
    # isoformat: the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ") at twice the speed, and the
    # year always has four digits.
    return utc(value).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class Turn:
    """One operation at a time on an SQLite file: among this process's threads (a lock), and among
    the processes of ``serve --workers`` (``flock`` on a file beside it, where the OS has one).

    Writers that collide in SQLite itself wait in its busy handler, which sleeps 1, 2, 5, 10 … ms
    between tries: under load that cost more time than the statements, and the CPU of a futex
    storm. Waiting for a turn here wakes the next writer the moment the last one is done.
    """

    def __init__(self, path: Path) -> None:
        self._path = path.with_name(path.name + ".lock")
        self._fresh()
        _turns.add(self)

    def _fresh(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._opened = False

    def _forked(self) -> None:
        # A forked worker starts afresh: another thread of the parent may have held the lock at the
        # fork (so it is not taken here), and the descriptor the worker inherited shares the
        # parent's flock instead of having its own.
        self._close_file()
        self._fresh()

    def close(self) -> None:
        """Close the lock file, once no turn is taken; the next turn opens it again."""
        with self._lock:
            self._close_file()

    def _close_file(self) -> None:
        fd, self._fd, self._opened = self._fd, None, False
        if fd is not None:
            with suppress(OSError):
                os.close(fd)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if fcntl is None or self._opened:
            return self._fd
        self._opened = True
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            self._fd = None  # SQLite's own locking still keeps the file consistent
        return self._fd


_turns: weakref.WeakSet[Turn] = weakref.WeakSet()


def _after_fork() -> None:
    for turn in list(_turns):
        turn._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False
        self._init_lock = threading.Lock()
        self._turn = Turn(path)
        #: The connection, and the process that opened it: a forked worker opens its own.
        self._conn: tuple[sqlite3.Connection, int] | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The connection to the file, for one operation in this process's turn (the outbox shares
        the file)."""
        with self._db() as db:
            yield db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                self._initialise()
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(safe_reason(exc)) from None
        with self._turn():
            try:
                # SQLite forbids using a connection across fork: a worker leaves the one it
                # inherited alone (closing it could disturb the parent's) and opens its own.
                if self._conn is None or self._conn[1] != os.getpid():
                    self._conn = (self._connect(), os.getpid())
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(safe_reason(exc)) from None
            conn = self._conn[0]
            try:
                yield conn
            except sqlite3.Error as exc:
                self._conn = None
                conn.close()
                raise StoreUnavailable(safe_reason(exc)) from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: each statement commits on its own; the conditional writes are
        # single statements, so they need no explicit transaction. check_same_thread=False because
        # the connection serves every thread, one operation (one turn) at a time.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _initialise(self) -> None:
        with self._init_lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
            while True:
                try:
                    self._create()
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL needs it to itself, and SQLite answers "locked" at
                    # once rather than waiting when several processes open a new file together.
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            self._ready = True

    def _create(self) -> None:
        conn = self._connect()
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(claims)")}
            if "unknown_at" not in columns:  # a file made before unknown outcomes were remembered
                conn.execute("ALTER TABLE claims ADD COLUMN unknown_at TEXT")
            outbox_columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
            if "thread" not in outbox_columns:  # a file made before Slack app channels
                conn.execute("ALTER TABLE outbox ADD COLUMN thread TEXT")
            if "http_attempts" not in outbox_columns:  # a file made before HTTP attempts were counted
                conn.execute("ALTER TABLE outbox ADD COLUMN http_attempts INTEGER NOT NULL DEFAULT 0")
            moment = now()
            conn.execute("DELETE FROM claims WHERE claimed_at < ?", (stamp(moment - KEEP_CLAIMS),))
            conn.execute("DELETE FROM outcomes WHERE recorded_at < ?", (stamp(moment - KEEP_OUTCOMES),))
            conn.execute("DELETE FROM messages WHERE updated_at < ?", (stamp(moment - KEEP_CLAIMS),))
        finally:
            conn.close()

    def previous_outcome(self, key: str, event_id: str | None) -> Outcome | None:
        with self._db() as db:
            row = db.execute(
                "SELECT outcome, previous, event_id FROM outcomes WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        outcome, previous, recorded_event = row
        found = previous if event_id is not None and recorded_event == event_id else outcome
        return as_outcome(found)

    def record_outcome(self, key: str, outcome: Outcome, event_id: str | None, at: datetime) -> None:
        with self._db() as db:
            db.execute(
                """
                INSERT INTO outcomes (key, outcome, previous, event_id, at, recorded_at)
                VALUES (?, ?, NULL, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET
                    previous = outcomes.outcome,
                    outcome = excluded.outcome,
                    event_id = excluded.event_id,
                    at = excluded.at,
                    recorded_at = excluded.recorded_at
                WHERE (excluded.event_id IS NULL OR outcomes.event_id IS NOT excluded.event_id)
                  AND outcomes.at <= excluded.at
                """,
                (key, outcome, event_id, stamp(at), stamp(now())),
            )

    def claim(self, event_id: str, channel: str, now: datetime) -> Claim:
        token = uuid.uuid4().hex
        with self._db() as db:
            for _ in range(3):
                # Inserted, or taken over (a stale unconfirmed claim, or an unknown outcome old enough
                # to send again): RETURNING yields our token. Otherwise the WHERE of DO UPDATE is
                # false, nothing changes and no row comes back.
                won = db.execute(
                    """
                    INSERT INTO claims (event_id, channel, token, claimed_at, delivered_at, unknown_at)
                    VALUES (?, ?, ?, ?, NULL, NULL)
                    ON CONFLICT (event_id, channel) DO UPDATE SET
                        token = excluded.token,
                        claimed_at = excluded.claimed_at,
                        unknown_at = NULL
                    WHERE claims.delivered_at IS NULL AND (
                        (claims.unknown_at IS NULL AND claims.claimed_at < ?)
                        OR claims.unknown_at < ?
                    )
                    RETURNING token
                    """,
                    (
                        event_id,
                        channel,
                        token,
                        stamp(now),
                        stamp(now - CLAIM_STALE_AFTER),
                        stamp(now - UNKNOWN_RESEND_AFTER),
                    ),
                ).fetchall()
                if won and won[0][0] == token:
                    return Claim(token)
                row = db.execute(
                    "SELECT delivered_at, unknown_at FROM claims WHERE event_id = ? AND channel = ?",
                    (event_id, channel),
                ).fetchone()
                if row is not None:
                    return Claim(None, delivered=row[0] is not None, unknown=row[1] is not None)
                # Released between the two statements: try again.
        return Claim(None, delivered=False)

    def confirm(self, event_id: str, channel: str, token: str, now: datetime) -> None:
        # Unconditional: the delivery was made, whoever holds the claim now.
        with self._db() as db:
            db.execute(
                """
                INSERT INTO claims (event_id, channel, token, claimed_at, delivered_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (event_id, channel) DO UPDATE SET
                    delivered_at = excluded.delivered_at, unknown_at = NULL
                """,
                (event_id, channel, token, stamp(now), stamp(now)),
            )

    def release(self, event_id: str, channel: str, token: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM claims"
                " WHERE event_id = ? AND channel = ? AND token = ? AND delivered_at IS NULL",
                (event_id, channel, token),
            )

    def mark_unknown(self, event_id: str, channel: str, token: str, now: datetime) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE claims SET unknown_at = ?"
                " WHERE event_id = ? AND channel = ? AND token = ? AND delivered_at IS NULL",
                (stamp(now), event_id, channel, token),
            )

    def forget(self, event_id: str, channel: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM claims WHERE event_id = ? AND channel = ?", (event_id, channel))

    def clear(self) -> int:
        with self._db() as db:
            claims = db.execute("DELETE FROM claims").rowcount
            outcomes = db.execute("DELETE FROM outcomes").rowcount
            messages = db.execute("DELETE FROM messages").rowcount
        return int(claims) + int(outcomes) + int(messages)

    # -- messages (Slack app channels) -------------------------------------------------------

    def message(self, key: str, channel: str) -> Message | None:
        with self._db() as db:
            row = db.execute(
                "SELECT ts, stage, claimed_at FROM messages WHERE key = ? AND channel = ?", (key, channel)
            ).fetchone()
        if row is None:
            return None
        return Message(row[0], int(row[1]), _parse_stamp(row[2]))

    def claim_message(self, key: str, channel: str, stage: int, now: datetime) -> str | None:
        token = uuid.uuid4().hex
        with self._db() as db:
            won = db.execute(
                """
                INSERT INTO messages (key, channel, ts, stage, token, claimed_at, updated_at)
                VALUES (?, ?, NULL, ?, ?, ?, ?)
                ON CONFLICT (key, channel) DO UPDATE SET
                    token = excluded.token, stage = excluded.stage,
                    claimed_at = excluded.claimed_at, updated_at = excluded.updated_at
                WHERE messages.ts IS NULL AND messages.claimed_at < ?
                RETURNING token
                """,
                (key, channel, stage, token, stamp(now), stamp(now), stamp(now - MESSAGE_POST_STALE_AFTER)),
            ).fetchall()
        return token if won and won[0][0] == token else None

    def message_posted(self, key: str, channel: str, token: str, ts: str, stage: int, now: datetime) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE messages SET ts = ?, stage = max(stage, ?), token = NULL, updated_at = ?"
                " WHERE key = ? AND channel = ? AND token = ?",
                (ts, stage, stamp(now), key, channel, token),
            )

    def release_message(self, key: str, channel: str, token: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM messages WHERE key = ? AND channel = ? AND token = ? AND ts IS NULL",
                (key, channel, token),
            )

    def advance_message(self, key: str, channel: str, stage: int, now: datetime) -> bool:
        with self._db() as db:
            moved = db.execute(
                "UPDATE messages SET stage = ?, updated_at = ?"
                " WHERE key = ? AND channel = ? AND ts IS NOT NULL AND stage <= ? RETURNING 1",
                (stage, stamp(now), key, channel, stage),
            ).fetchall()
        return bool(moved)

    def replace_message(self, key: str, channel: str, old_ts: str, new_ts: str, now: datetime) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE messages SET ts = ?, updated_at = ? WHERE key = ? AND channel = ? AND ts = ?",
                (new_ts, stamp(now), key, channel, old_ts),
            )

    def close(self) -> None:
        """Close the connection and the lock file; a later operation opens them again."""
        with self._turn():
            found, self._conn = self._conn, None
            if found is not None and found[1] == os.getpid():
                found[0].close()
        self._turn.close()
