"""The idempotent deliverer: claim, send, confirm or release, queue what did not go; one result each.

For each rendered body of a request it decides, in this order:

1. the channel has deliveries waiting in the outbox: this one queues behind them (``queued``), so
   that "started" never arrives after "finished";
2. the channel is being paced (translators/pacing.py) and has no token now: it queues, due when
   the next token is;
3. otherwise it is sent now. It claims the (event, channel) delivery in memory, sends it, and
   settles the claim in the same thread as soon as that channel's answer is in: ``confirm`` once
   delivered, ``mark_unknown`` when sent with no answer in time, ``release`` when it failed. A stop
   or a crash after one channel of a fan-out therefore never leaves that channel's delivery
   unconfirmed, and a retry of the event reaches only the channels that did not get it.
4. What failed in a way another attempt could mend (the destination says so: ``retry``) goes to
   the outbox (``queued``), which owns it from then on. What was refused for good fails the channel
   (``failed``, 502) and is kept as a dead letter (``dead_letter``: its id), to replay after the fix.

Sending is the destination's (translators/destinations/: a webhook, a Slack app channel), each
behind the same interface; the deliverer treats them alike. Events of one build reach a channel in
the order they came: while one is being tried inside its request, a later one of the same build
queues behind it, and the drainer waits for it too. The drainer (translators/drainer.py) sends
queued entries with ``send``, the same claim-send-settle path without the queueing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from translators import destinations, logs
from translators.destinations import MINIMAL_TEMPLATE
from translators.formats import ChatFormat
from translators.memory import Memory
from translators.model import Notification
from translators.pacing import PACER, Pacer
from translators.results import ChannelResult, Status
from translators.settings import Channel
from translators.state import StoreUnavailable, now

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime

    from translators.delivery import DeliveryPolicy
    from translators.outbox import OutboxStore
    from translators.settings import AppSettings

log = logs.logger("translators.deliverer")

__all__ = ["MINIMAL_TEMPLATE", "Deliverer", "Prepared", "in_flight"]

IN_PROGRESS = (
    "another request is delivering this event to this channel right now: it arrives once, or is"
    " kept and retried by that request"
)
UNKNOWN_HELD = (
    "an earlier attempt was sent and got no answer in time, so the channel most likely has it; "
    "a retry more than 10 minutes after that attempt sends it again"
)
BEHIND_EVENT = "an earlier event of this build is still being sent to this channel; this one follows it"


@dataclass(frozen=True)
class Prepared:
    """A rendered, fitted and validated body for one channel.

    ``minimal`` is the format's minimal message, should the destination refuse this body: built from
    the notification on demand, or kept in the outbox beside a queued body.
    """

    channel: Channel
    fmt: ChatFormat
    template: str
    body: dict[str, Any]
    notification: Notification | None = None
    template_error: str | None = None
    minimal_body: dict[str, Any] | None = None
    event: str | None = None
    title: str | None = None
    #: What the channel's destination keeps beside the body (translators/destinations/).
    state: dict[str, Any] | None = None

    def minimal(self) -> dict[str, Any] | None:
        if self.minimal_body is not None:
            return self.minimal_body
        return self.fmt.minimal(self.notification) if self.notification is not None else None

    def result(self, status: Status, **fields: Any) -> ChannelResult:
        # A template's error matters only where the body made from it went (or would go) out.
        sent = status not in ("skipped", "in_progress")
        return ChannelResult(
            channel=self.channel.name,
            format=self.fmt.name,
            template=self.template,
            template_error=self.template_error if sent else None,
            status=status,
            **fields,
        )


_pool_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def fan_out_pool() -> ThreadPoolExecutor:
    global _executor
    with _pool_lock:
        if _executor is None:
            # Imported here: only a fan-out to several channels needs it, and a cold start should not.
            from concurrent.futures import ThreadPoolExecutor

            _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deliver")
        return _executor


_flight_lock = threading.Lock()
_flights: dict[tuple[str, str], int] = {}


@contextmanager
def _flying(channel: str, key: str | None) -> Iterator[None]:
    """Mark an event of build ``key`` as being sent to ``channel`` in this process."""
    if key is None:
        yield
        return
    with _flight_lock:
        _flights[(channel, key)] = _flights.get((channel, key), 0) + 1
    try:
        yield
    finally:
        with _flight_lock:
            left = _flights.pop((channel, key)) - 1
            if left:
                _flights[(channel, key)] = left


def in_flight(channel: str, key: str | None) -> bool:
    """Whether an event of build ``key`` is being sent to ``channel`` right now, in this process."""
    return key is not None and (channel, key) in _flights


class Deliverer:
    """Delivers one event's bodies, each exactly once per channel as far as memory can tell."""

    def __init__(
        self,
        memory: Memory,
        policy: DeliveryPolicy,
        request_id: str = "",
        outbox: OutboxStore | None = None,
        app: AppSettings | None = None,
        pacer: Pacer = PACER,
        *,
        force: bool = False,
    ) -> None:
        self.memory = memory
        self.policy = policy
        self.request_id = request_id
        self.outbox = outbox
        self.app = app
        self.pacer = pacer
        #: Send even what memory says was delivered (``send --force``), and remember it afresh.
        self.force = force
        #: When the event came: a delivery retried later keeps its place in the channel's order.
        self.arrived = now()

    def deliver(self, event_id: str | None, prepared: Sequence[Prepared]) -> list[ChannelResult]:
        """The request path: send now, or queue behind a backlog, for the pace, or after a failure."""
        return self._each(prepared, lambda p: self._route(event_id, p))

    @staticmethod
    def _each(prepared: Sequence[Prepared], one: Callable[[Prepared], ChannelResult]) -> list[ChannelResult]:
        if len(prepared) <= 1:
            return [one(p) for p in prepared]
        return list(fan_out_pool().map(one, prepared))

    def _route(self, event_id: str | None, p: Prepared) -> ChannelResult:
        from translators import outbox as outboxes

        name = p.channel.name
        key = destinations.order_key(p.state)
        if self.outbox is not None and not self.force:
            try:
                if self.outbox.has_queued(name):
                    return self._queue(event_id, p, "behind_queue", outboxes.after(0))
            except StoreUnavailable as exc:
                log.warning("outbox unavailable (%s): delivering without it", exc)
                self.outbox = None
        if self.outbox is not None and not self.force and in_flight(name, key):
            return self._queue(event_id, p, "behind_event", outboxes.after(0))
        if self.outbox is not None:
            wait = self.pacer.take(name, p.channel.rate)
            if wait > 0:
                return self._queue(event_id, p, "paced", outboxes.after(wait))
        with _flying(name, key):
            result = self.send(event_id, p)
            # Queued before the mark is gone, so that no later event of the build overtakes it.
            if result.retry and self.outbox is not None:
                return self._queue(event_id, p, "retrying", None, result)
        if result.status == "failed" and not result.in_progress:
            return self._keep_dead(event_id, p, result)
        return result

    def _keep_dead(self, event_id: str | None, p: Prepared, failed: ChannelResult) -> ChannelResult:
        """Refused for good: the channel failed (502), and the body is kept as a dead letter."""
        from translators import outbox as outboxes

        if self.outbox is None or failed.reason in ("memory_unavailable",):
            return failed
        entry = self._entry(event_id, p, now(), now(), failed)
        reason = f"refused: {failed.error or failed.http_status}"
        try:
            self.outbox.add(entry)
            self.outbox.bury(entry, None, reason)
        except StoreUnavailable as exc:
            log.warning("outbox unavailable (%s): the refused delivery could not be kept", exc)
            return failed
        log.warning("dead letter %s for channel %s: %s", entry.id, entry.channel, reason)
        outboxes.log_change("dead", entry, reason=reason, request_id=self.request_id)
        return replace(
            failed,
            extra={**failed.extra, "dead_letter": entry.id},
            message=(failed.message + "; " if failed.message else "")
            + "kept as a dead letter: `outbox replay "
            + entry.id
            + "` sends it again once the cause is fixed",
        )

    def _entry(
        self,
        event_id: str | None,
        p: Prepared,
        created: datetime,
        due: datetime,
        failed: ChannelResult | None,
    ) -> Any:
        from translators import outbox as outboxes

        return outboxes.Entry(
            id=outboxes.new_id(created),
            channel=p.channel.name,
            format=p.fmt.name,
            template=p.template,
            body=p.body,
            minimal=p.minimal(),
            event_id=event_id,
            event=p.event or (p.notification.event if p.notification else None),
            title=p.title or (p.notification.title if p.notification else None),
            created_at=created,
            next_attempt_at=due,
            attempts=1 if failed is not None else 0,
            http_attempts=(failed.attempts or 0) if failed is not None else 0,
            last_error=failed.error if failed is not None else None,
            thread=p.state,
        )

    def _queue(
        self, event_id: str | None, p: Prepared, reason: str, due: Any, failed: ChannelResult | None = None
    ) -> ChannelResult:
        """Write ``p`` to the outbox; the result says when it is tried next (or ``failed`` if it cannot)."""
        from translators import outbox as outboxes

        assert self.outbox is not None and self.app is not None
        # A retry keeps its place: it is ordered by when the event came, ahead of any later event of
        # the same build that queued behind it meanwhile.
        created = self.arrived if failed is not None else now()
        if due is None:
            assert failed is not None
            delay = outboxes.backoff(
                1, self.app.outbox_min_delay_seconds, self.app.outbox_max_delay_seconds, failed.retry_after
            )
            due = outboxes.after(delay, now())
        entry = self._entry(event_id, p, created, due, failed)
        try:
            self.outbox.add(entry)
        except StoreUnavailable as exc:
            log.warning("outbox unavailable (%s): the delivery could not be kept", exc)
            if failed is not None:
                return failed
            return self.send(event_id, p)  # nothing kept it: better sent now than not at all
        outboxes.log_change("queued", entry, reason=reason, request_id=self.request_id)
        fields: dict[str, Any] = {"reason": reason, "next_attempt_at": outboxes.iso(due)}
        if failed is not None:
            fields |= {
                "error": failed.error,
                "http_status": failed.http_status,
                "attempts": failed.attempts,
                "retry_after": failed.retry_after,
                "hint": failed.hint,
                "extra": failed.extra,
            }
        if reason == "behind_queue":
            fields["message"] = "earlier deliveries to this channel are waiting; this one follows them"
        elif reason == "behind_event":
            fields["message"] = BEHIND_EVENT
        elif reason == "paced":
            fields["message"] = f"this channel is paced at {p.channel.rate:g} a second; it follows shortly"
        return p.result("queued", **fields)

    def send(self, event_id: str | None, p: Prepared, *, require_claim: bool = False) -> ChannelResult:
        """Claim, send and settle one channel's delivery (no queueing: the drainer's path too).

        ``require_claim``: do not send without memory. A request sends anyway (a possible duplicate
        beats a certain loss); the drainer waits instead, since the outbox keeps the message.
        """
        name = p.channel.name
        if self.force and event_id:
            self.memory.forget(event_id, name)
        claim = self.memory.claim(event_id, name) if event_id else None
        if claim is None and require_claim and event_id:
            return p.result(
                "failed", reason="memory_unavailable", error=f"memory unavailable: {self.memory.problem}"
            )
        if claim is not None and not claim.held:
            if claim.delivered:
                return p.result(
                    "skipped", reason="duplicate", message="this event was already delivered to this channel"
                )
            if claim.unknown:
                return p.result("unknown", reason="unknown_outcome", message=UNKNOWN_HELD)
            # Not "skipped", not "failed": the other request owns it, and what it cannot deliver it
            # keeps (outbox, dead letter). A 5xx would only make the platform send it again.
            return p.result("in_progress", reason="in_progress", message=IN_PROGRESS, in_progress=True)
        token = claim.token if claim is not None else None
        settled = False
        try:
            context = destinations.Context(self.memory, self.policy, self.request_id)
            result = destinations.of(p.channel).send(p, context)
            if event_id and token:
                if result.status == "delivered":
                    self.memory.confirm(event_id, name, token)
                elif result.status == "unknown" and not result.retry:
                    self.memory.mark_unknown(event_id, name, token)
                else:  # failed, or an idempotent send to be tried again: a later attempt may send it
                    self.memory.release(event_id, name, token)
            settled = True
            return result
        finally:
            if not settled and event_id and token:  # a bug of ours: let a retry send it
                self.memory.release(event_id, name, token)
