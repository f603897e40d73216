"""One request's use of the state store, which is never a reason to lose a message.

When the store is down, callers go on without it: every channel the settings admit is sent to (an
"after" build mode cannot be judged, so it sends), duplicates cannot be prevented, and the answer
and a warning log line say ``memory: unavailable: <failure class>``. After a failure this process
leaves the store alone for ``COOL_DOWN_SECONDS``: with a store that does not answer, every request
would otherwise wait out the same timeouts before delivering.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from translators import logs, state
from translators.model import Notification
from translators.settings import AppSettings
from translators.state import Claim, Outcome, StateStore, StoreUnavailable

log = logs.logger("translators.memory")

COOL_DOWN_SECONDS = 30.0
_outages: weakref.WeakKeyDictionary[Any, tuple[float, str]] = weakref.WeakKeyDictionary()
_outages_lock = threading.Lock()

#: Deliveries the destination took whose confirmation the store did not take (it was down): the
#: process remembers them, answers "delivered" for them, and confirms them once the store is back,
#: so that a delivery the destination confirmed is never sent again by this process.
UNCONFIRMED_KEPT = 10_000
_unconfirmed: dict[tuple[str, str], str] = {}
_unconfirmed_lock = threading.Lock()


def outcome_key(n: Notification) -> str:
    """Builds that succeed or fail one another: same source, app, branch and workflow (automation)."""
    return json.dumps([n.source, n.app_id or n.app, n.branch, n.workflow], ensure_ascii=False)


class Memory:
    """The state store for one request (thread-safe: a fan-out claims from several threads)."""

    def __init__(self, app: AppSettings) -> None:
        self._app = app
        self._store: StateStore | None = None
        self._lock = threading.Lock()
        self.problem: str | None = None

    @property
    def backend(self) -> str:
        return state.backend(self._app)

    def _open(self) -> StateStore | None:
        with self._lock:
            if self._store is not None or self.problem is not None:
                return self._store
        try:
            store = state.open_store(self._app)
        except StoreUnavailable as exc:
            self._failed(None, exc, "opening the state store")
            return None
        with _outages_lock:
            until, reason = _outages.get(store, (0.0, ""))
        wait = until - time.monotonic()
        with self._lock:
            if wait > 0:
                self.problem = f"{reason} (not tried again for {wait:.0f} s)"
                return None
            self._store = store
            return store

    def _failed(self, store: StateStore | None, exc: StoreUnavailable, doing: str) -> None:
        reason = str(exc) or type(exc).__name__
        if store is not None:
            with _outages_lock:
                _outages[store] = (time.monotonic() + COOL_DOWN_SECONDS, reason)
        with self._lock:
            self._store = None
            first = self.problem is None
            self.problem = reason
        if first:
            log.warning(
                "memory unavailable (%s, while %s): %s; going on without it", self.backend, doing, reason
            )

    def _do[T](self, doing: str, op: Callable[[StateStore], T]) -> tuple[bool, T | None]:
        store = self._open()
        if store is None:
            return False, None
        try:
            return True, op(store)
        except StoreUnavailable as exc:
            self._failed(store, exc, doing)
            return False, None

    def probe(self) -> str | None:
        """None when the store answers a read now, else why not (what health reports)."""
        self._do("answering a health check", lambda s: s.previous_outcome("health-probe", None))
        return self.problem

    def previous(self, n: Notification) -> tuple[bool, Outcome | None]:
        """(known, outcome): known is False when memory could not be asked."""
        return self._do(
            "reading the previous build", lambda s: s.previous_outcome(outcome_key(n), n.event_id)
        )

    def record(self, n: Notification, outcome: Outcome, at: datetime) -> None:
        self._do(
            "recording the build outcome", lambda s: s.record_outcome(outcome_key(n), outcome, n.event_id, at)
        )

    def claim(self, event_id: str, channel: str) -> Claim | None:
        """The claim, or None when memory is unavailable (then the request path sends anyway)."""
        with _unconfirmed_lock:
            token = _unconfirmed.get((event_id, channel))
        if token is not None:  # delivered before, confirmation pending: never sent again from here
            self.confirm(event_id, channel, token)
            return Claim(None, delivered=True)
        _, claim = self._do("claiming a delivery", lambda s: s.claim(event_id, channel, state.now()))
        return claim

    def confirm(self, event_id: str, channel: str, token: str) -> None:
        done, _ = self._do(
            "confirming a delivery", lambda s: s.confirm(event_id, channel, token, state.now())
        )
        with _unconfirmed_lock:
            if done:
                _unconfirmed.pop((event_id, channel), None)
            else:
                _unconfirmed[(event_id, channel)] = token
                while len(_unconfirmed) > UNCONFIRMED_KEPT:
                    _unconfirmed.pop(next(iter(_unconfirmed)))

    def release(self, event_id: str, channel: str, token: str) -> None:
        self._do("releasing a failed delivery", lambda s: s.release(event_id, channel, token))

    def forget(self, event_id: str, channel: str) -> None:
        with _unconfirmed_lock:
            _unconfirmed.pop((event_id, channel), None)
        self._do("forgetting a delivery", lambda s: s.forget(event_id, channel))

    # -- one message per build, where a destination keeps one (translators/destinations/) ----

    def message(self, key: str, channel: str) -> tuple[bool, state.Message | None]:
        """(known, the build's message): known is False when memory could not be asked."""
        return self._do("reading a message id", lambda s: s.message(key, channel))

    def claim_message(self, key: str, channel: str, stage: int) -> tuple[bool, str | None]:
        return self._do("claiming a message", lambda s: s.claim_message(key, channel, stage, state.now()))

    def message_posted(self, key: str, channel: str, token: str, ts: str, stage: int) -> None:
        self._do(
            "remembering a message id",
            lambda s: s.message_posted(key, channel, token, ts, stage, state.now()),
        )

    def release_message(self, key: str, channel: str, token: str) -> None:
        self._do("releasing a message claim", lambda s: s.release_message(key, channel, token))

    def advance_message(self, key: str, channel: str, stage: int) -> bool | None:
        """Whether the message may be updated to ``stage``; None when memory could not be asked."""
        known, moved = self._do(
            "advancing a message", lambda s: s.advance_message(key, channel, stage, state.now())
        )
        return moved if known else None

    def replace_message(self, key: str, channel: str, old_ts: str, new_ts: str) -> None:
        self._do(
            "remembering a new message id",
            lambda s: s.replace_message(key, channel, old_ts, new_ts, state.now()),
        )

    def mark_unknown(self, event_id: str, channel: str, token: str) -> None:
        self._do(
            "remembering an unknown outcome", lambda s: s.mark_unknown(event_id, channel, token, state.now())
        )
