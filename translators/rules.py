"""Notification rules: which of the requested channels hear of an event, with memory.

Per channel (settings in translators/config.py):

- ``EVENTS``: event-name patterns (``build.failed,crash.*``); an event matching none is skipped.
- ``BUILD_SUCCESS`` = always | after-failure | never and ``BUILD_FAILURE`` = always | after-success
  | never: App Center's "only after a change" modes, for every source that reports build outcomes
  (events ``build.succeeded`` and ``build.failed``). The previous outcome is the last finished build
  (succeeded or failed; canceled does not count) of the same source, app, branch and workflow,
  recorded whether or not anyone was told. With no previous build, neither "after" mode fires.

And for every event with an ``event_id``: a delivery already made to a channel is not made again
(``duplicate``), so a source's retry after a partial fan-out reaches only the channels that failed.
Each delivery is claimed in the state store before it is sent, confirmed when it was made and
released when it failed, so two racing requests for one event send it once.

Memory is an extra, never a reason to lose a message: when the store is down, every channel that
its settings admit is sent to (an "after" mode cannot be judged, so it sends), duplicates cannot be
prevented, and the answer and a warning log line say ``memory: unavailable``. ``dry_run`` reads
memory but never writes it.
"""

from __future__ import annotations

import json
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

from translators import logs, state
from translators.config import Channel
from translators.model import Notification
from translators.state import Claim, Outcome, StateStore, StoreUnavailable

log = logs.logger("translators.rules")
state.prefetch(os.environ)

#: The events that settle a build, with the outcome memory keeps for them.
FINISHED: dict[str, Outcome] = {"build.succeeded": "success", "build.failed": "failure"}

IN_PROGRESS = "another request is delivering this event to this channel right now; retry later"


class Deliverable(Protocol):
    """What ``Plan.deliver`` needs of a prepared message (``pipeline.Prepared``)."""

    @property
    def channel(self) -> Channel: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Skip:
    reason: str
    """``event_filter``, ``build_mode`` or ``duplicate``."""
    message: str


def outcome_key(n: Notification) -> str:
    """Builds that succeed or fail one another: same source, app, branch and workflow (automation)."""
    return json.dumps([n.source, n.app_id or n.app, n.branch, n.workflow], ensure_ascii=False)


def skip_reason(channel: Channel, n: Notification, previous: Outcome | None, known: bool) -> Skip | None:
    """Why ``channel`` does not take ``n``, or None when it does.

    ``known`` is False when memory was unavailable: then an "after" mode cannot be judged and the
    message is sent rather than risk losing it.
    """
    if channel.events and not any(fnmatchcase(n.event, pattern) for pattern in channel.events):
        return Skip(
            "event_filter", f"{n.event} is not among this channel's events ({', '.join(channel.events)})"
        )
    if n.event == "build.succeeded":
        mode: str = channel.build_success
        setting, wanted = "build_success", "failure"
    elif n.event == "build.failed":
        mode, setting, wanted = channel.build_failure, "build_failure", "success"
    else:
        return None
    if mode == "never":
        return Skip("build_mode", f"{setting}=never")
    if mode == "always" or not known or previous == wanted:
        return None
    if previous is None:
        return Skip(
            "build_mode", f"{setting}={mode} and no earlier build of this app and branch is on record"
        )
    said = "succeeded" if previous == "success" else "failed"
    return Skip("build_mode", f"{setting}={mode} and the previous build {said} too")


#: After a store fails, this process leaves it alone for this long: otherwise, with a store that
#: does not answer, every request would wait out the same timeouts before delivering.
COOL_DOWN_SECONDS = 30.0
_outages: weakref.WeakKeyDictionary[Any, tuple[float, str]] = weakref.WeakKeyDictionary()


class Memory:
    """One request's use of the state store; after the first failure it is not used again."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._store: StateStore | None = None
        self.problem: str | None = None

    def _open(self) -> StateStore | None:
        if self._store is None and self.problem is None:
            try:
                store = state.open_store(self._env)
            except StoreUnavailable as exc:
                self._failed(exc, "opening the state store")
                return None
            until, reason = _outages.get(store, (0.0, ""))
            wait = until - time.monotonic()
            if wait > 0:
                self.problem = f"{reason} (not tried again for {wait:.0f} s)"
            else:
                self._store = store
        return self._store

    def _failed(self, exc: StoreUnavailable, doing: str) -> None:
        if self._store is not None:
            _outages[self._store] = (time.monotonic() + COOL_DOWN_SECONDS, str(exc))
        self._store = None
        self.problem = str(exc) or type(exc).__name__
        log.warning(
            "memory unavailable (%s, while %s): %s; going on without it",
            state.describe(self._env),
            doing,
            self.problem,
        )

    def _do[T](self, doing: str, op: Callable[[StateStore], T]) -> tuple[bool, T | None]:
        store = self._open()
        if store is None:
            return False, None
        try:
            return True, op(store)
        except StoreUnavailable as exc:
            self._failed(exc, doing)
            return False, None

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
        """The claim, or None when memory is unavailable (then the caller sends anyway)."""
        _, claim = self._do("claiming a delivery", lambda s: s.claim(event_id, channel, state.now()))
        return claim

    def confirm(self, event_id: str, channel: str, token: str) -> None:
        self._do("confirming a delivery", lambda s: s.confirm(event_id, channel, token, state.now()))

    def release(self, event_id: str, channel: str, token: str) -> None:
        self._do("releasing a failed delivery", lambda s: s.release(event_id, channel, token))


@dataclass
class Plan:
    """The rules applied to one event: who is sent to, who is skipped and why."""

    notification: Notification
    channels: list[Channel]
    send: list[Channel]
    skipped: dict[str, dict[str, Any]]
    memory: Memory
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def notes(self) -> dict[str, Any]:
        """Fields for the answer: the previous outcome, and whether memory was unavailable."""
        out: dict[str, Any] = {}
        if self.notification.previous_outcome:
            out["previous_outcome"] = self.notification.previous_outcome
        if self.memory.problem:
            out["memory"] = f"unavailable: {self.memory.problem}"
        return out

    def merge(self, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per-channel answers in the order the channels were asked for."""
        by_name = {r["channel"]: r for r in results} | self.extra | self.skipped
        return [by_name[c.name] for c in self.channels if c.name in by_name]

    def deliver[P: Deliverable](
        self, prepared: Sequence[P], send: Callable[[list[P]], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Claim each channel's delivery, send the claimed ones with ``send``, settle the claims."""
        event_id = self.notification.event_id
        to_send: list[P] = []
        tokens: dict[str, str] = {}
        for p in prepared:
            name = p.channel.name
            claim = self.memory.claim(event_id, name) if event_id else None
            if claim is None or claim.held:
                to_send.append(p)
                if claim is not None and claim.token:
                    tokens[name] = claim.token
            elif claim.delivered:
                self.skipped[name] = {
                    **p.describe(),
                    "status": "skipped",
                    "reason": "duplicate",
                    "message": "this event was already delivered to this channel",
                }
            else:
                # Not "skipped": if that other delivery fails, this retry must not have been the
                # last chance, so the channel counts as failed and the source may retry later.
                self.extra[name] = {
                    **p.describe(),
                    "status": "failed",
                    "error": IN_PROGRESS,
                    "in_progress": True,
                }
        results = send(to_send) if to_send else []
        for result in results:
            token = tokens.get(result["channel"])
            if event_id and token:
                if result["status"] == "delivered":
                    self.memory.confirm(event_id, result["channel"], token)
                else:
                    self.memory.release(event_id, result["channel"], token)
        return self.merge(results)


def plan(
    n: Notification, channels: Sequence[Channel], env: Mapping[str, str], *, dry_run: bool = False
) -> Plan:
    """Apply the channels' rules to ``n``: previous outcome, filters and modes; record the outcome.

    The outcome is recorded (unless ``dry_run``) before anything is sent, whatever the channels
    decide, so that history does not depend on who was listening.
    """
    memory = Memory(env)
    outcome = FINISHED.get(n.event)
    known, previous = True, None
    if outcome is not None:
        known, previous = memory.previous(n)
        if previous is not None:
            n = n.model_copy(update={"previous_outcome": previous})
        if not dry_run:
            memory.record(n, outcome, n.finished_at or state.now())
    send: list[Channel] = []
    skipped: dict[str, dict[str, Any]] = {}
    for channel in channels:
        skip = skip_reason(channel, n, previous, known)
        if skip is None:
            send.append(channel)
        else:
            skipped[channel.name] = {
                "channel": channel.name,
                "format": channel.format,
                "status": "skipped",
                "reason": skip.reason,
                "message": skip.message,
            }
    return Plan(n, list(channels), send, skipped, memory)


def all_skipped(results: Sequence[Mapping[str, Any]]) -> bool:
    return bool(results) and all(r.get("status") == "skipped" for r in results)
