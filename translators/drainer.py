"""The drainer: sends what the outbox holds, oldest first per channel, paced, until each is settled.

Each pass looks at every channel's oldest queued entry (a channel's later entries wait behind it,
so order holds) and sends those that are due, whose channel has a token (translators/pacing.py)
and which it can lease. It sends with the deliverer's claim-send-settle path, then settles the
entry:

- delivered, already delivered (a duplicate), or sent without an answer in time (unknown, as a
  request would report it): removed;
- failed in a way a later attempt could mend: rescheduled with exponential backoff and jitter
  (``OUTBOX_MIN_DELAY_SECONDS`` doubling up to ``OUTBOX_MAX_DELAY_SECONDS``, at least the
  ``Retry-After``), until ``OUTBOX_MAX_AGE_SECONDS`` have passed; then a dead letter;
- refused for good (a 4xx other than 408 and 429, after the minimal message was tried): a dead
  letter with the destination's answer;
- its channel no longer configured: a dead letter saying so. A channel that is configured but
  broken keeps its entries (a fixed setting should not lose them) until they are too old.

Every change is one structured log line (``outbox.queued``, ``outbox.delivered``, ``outbox.retry``,
``outbox.dead``, ...). ``serve`` runs a drainer in a thread; on Azure the timer-triggered function
``drain`` runs one every minute (the host runs one at a time across instances).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from translators import destinations, formats, logs
from translators.deliverer import Deliverer, Prepared, fan_out_pool, in_flight
from translators.memory import Memory
from translators.outbox import LEASE, Entry, OutboxStore, after, backoff, iso, leased, log_change, open_outbox
from translators.pacing import PACER, Pacer
from translators.results import ChannelResult
from translators.settings import Settings
from translators.state import StoreUnavailable, now

log = logs.logger("translators.drainer")

#: Between passes when nothing was due, and the longest a pass waits for a due entry.
IDLE_SECONDS = 0.5


@dataclass
class Report:
    """What one pass did, by change."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, change: str) -> None:
        self.counts[change] = self.counts.get(change, 0) + 1

    @property
    def sent(self) -> int:
        return sum(v for k, v in self.counts.items() if k not in ("waiting",))


class Drainer:
    """Drains the outbox of the settings ``settings_source`` gives (read anew every pass)."""

    def __init__(self, settings_source: Callable[[], Settings], pacer: Pacer = PACER) -> None:
        self.settings_source = settings_source
        self.pacer = pacer

    def drain_once(self) -> Report:
        """One pass: send each channel's due head, settle it. Never raises for a store outage."""
        report = Report()
        settings = self.settings_source()
        try:
            outbox = open_outbox(settings.app)
            heads = outbox.heads()
        except StoreUnavailable as exc:
            log.warning("outbox unavailable (%s); draining again later", exc)
            return report
        from translators.delivery import DeliveryPolicy

        memory = Memory(settings.app)
        deliverer = Deliverer(memory, DeliveryPolicy.from_settings(settings.app), "outbox", app=settings.app)
        moment = now()
        taken: list[tuple[Entry, str]] = []
        for head in heads:
            if leased(head, moment) or head.next_attempt_at > moment:
                continue
            if in_flight(head.channel, destinations.order_key(head.thread)):
                continue  # an earlier event of the build is still being tried in its request
            channel = settings.channels.get(head.channel)
            if channel is None and head.channel not in settings.channel_errors:
                self._bury(outbox, head, None, f"channel {head.channel!r} is no longer configured", report)
                continue
            # The only drainer, with every request queued behind it: the channel's whole rate.
            if channel is not None and self.pacer.take(channel.name, channel.rate, whole=True) > 0:
                continue
            token = uuid.uuid4().hex
            try:
                if outbox.lease(head, token, moment + LEASE, moment):
                    taken.append((head, token))
            except StoreUnavailable as exc:
                log.warning("outbox unavailable (%s) while leasing; draining again later", exc)
                return report
        if not taken:
            return report

        def one(item: tuple[Entry, str]) -> None:
            self._deliver(outbox, deliverer, settings, *item, report)

        list(fan_out_pool().map(one, taken))
        return report

    def _deliver(
        self,
        outbox: OutboxStore,
        deliverer: Deliverer,
        settings: Settings,
        entry: Entry,
        token: str,
        report: Report,
    ) -> None:
        app = settings.app
        channel = settings.channels.get(entry.channel)
        try:
            if channel is None:  # configured but broken: kept, so that fixing the setting loses nothing
                self._retry(
                    outbox, entry, token, settings.channel_errors.get(entry.channel), None, app, report
                )
                return
            fmt = formats.get(entry.format)
            if fmt is None or channel.format != entry.format:
                reason = (
                    f"the channel's format is now {channel.format}; this body was made for {entry.format}"
                )
                self._bury(outbox, entry, token, reason, report)
                return
            prepared = Prepared(
                channel,
                fmt,
                entry.template,
                entry.body,
                minimal_body=entry.minimal,
                event=entry.event,
                state=entry.thread,
            )
            result = deliverer.send(entry.event_id or f"outbox:{entry.id}", prepared, require_claim=True)
            self._settle(outbox, entry, token, result, app, report)
        except StoreUnavailable as exc:  # the lease runs out and the entry is tried again later
            log.warning("outbox unavailable (%s) while settling %s", exc, entry.id)

    def _settle(
        self, outbox: OutboxStore, entry: Entry, token: str, result: ChannelResult, app: Any, report: Report
    ) -> None:
        posts = result.attempts or 0  # this try's HTTP attempts (each try makes up to max_attempts)
        if result.retry or result.in_progress:
            self._retry(outbox, entry, token, result.error, result.retry_after, app, report, posts)
        elif result.status in ("delivered", "skipped", "unknown"):
            outbox.remove(entry, token)
            change = {"delivered": "delivered", "skipped": "duplicate", "unknown": "unknown"}[result.status]
            log_change(
                change,
                entry,
                tried=posts,
                http_status=result.http_status,
                fallback=result.fallback,
                error=result.error,
            )
            report.add(change)
        else:
            reason = f"refused: {result.error or result.http_status}"
            self._bury(outbox, entry, token, reason, report, posts)

    def _retry(
        self,
        outbox: OutboxStore,
        entry: Entry,
        token: str,
        error: str | None,
        retry_after: float | None,
        app: Any,
        report: Report,
        posts: int = 0,
    ) -> None:
        """Try again later; ``posts``: the HTTP attempts of the try that just failed (0: none made)."""
        moment = now()
        if (moment - entry.created_at).total_seconds() > app.outbox_max_age_seconds:
            limit = f"OUTBOX_MAX_AGE_SECONDS ({app.outbox_max_age_seconds:g} s)"
            reason = f"not delivered within {limit}; last error: {error}"
            self._bury(outbox, entry, token, reason, report, posts)
            return
        attempts = entry.attempts + 1
        due: datetime = after(
            backoff(attempts, app.outbox_min_delay_seconds, app.outbox_max_delay_seconds, retry_after), moment
        )
        outbox.reschedule(entry, token, due, error, posts)
        log_change("retry", entry, tried=posts, error=error, next_attempt_at=iso(due))
        report.add("retry")

    @staticmethod
    def _bury(
        outbox: OutboxStore, entry: Entry, token: str | None, reason: str, report: Report, posts: int = 0
    ) -> None:
        outbox.bury(entry, token, reason, posts)
        log.warning("dead letter %s for channel %s: %s", entry.id, entry.channel, reason)
        log_change("dead", entry, tried=posts if token else None, reason=reason)
        report.add("dead")

    def run(self, stop: threading.Event, seconds: float | None = None) -> None:
        """Drain until ``stop`` is set (or ``seconds`` have passed), a pass at a time."""
        until = None if seconds is None else time.monotonic() + seconds
        while not stop.is_set() and (until is None or time.monotonic() < until):
            try:
                report = self.drain_once()
            except Exception:  # a bug must not stop draining for good; the next pass tries again
                log.exception("draining the outbox failed")
                report = Report()
            stop.wait(0.05 if report.sent else IDLE_SECONDS)


def start(settings_source: Callable[[], Settings]) -> tuple[threading.Thread, threading.Event]:
    """A drainer on a daemon thread (the local server's), and the event that stops it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=Drainer(settings_source).run, args=(stop,), name="outbox-drainer", daemon=True
    )
    thread.start()
    return thread, stop
