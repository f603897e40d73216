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
4. What failed in a way another attempt could mend (no connection, a timeout before sending, 5xx,
   429, 408, a destination busy with hanging deliveries) goes to the outbox (``queued``), which
   owns it from then on. A refusal (another 4xx) fails the channel for good (``failed``, 502).

When a destination refuses the rich body as malformed (Slack ``invalid_blocks``, a Teams 400), the
format's minimal message is sent once instead, and the result says ``fallback: "rejected: <error>"``.

A destination that hangs cannot take every worker: at most ``DESTINATION_CONCURRENCY`` deliveries
to one channel wait for answers at a time; another waits a moment for one of them, then gives up
as ``busy`` (and is queued). The drainer (translators/drainer.py) sends queued entries with
``send``, the same claim-send-settle path without the queueing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from translators import logs
from translators.formats import ChatFormat, dumps
from translators.memory import Memory
from translators.model import Notification
from translators.pacing import PACER, Pacer
from translators.results import ChannelResult, Status
from translators.settings import Channel
from translators.slackapp import Thread
from translators.state import StoreUnavailable, now

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from translators.delivery import DeliveryPolicy, DeliveryResult
    from translators.outbox import OutboxStore
    from translators.settings import AppSettings

log = logs.logger("translators.deliverer")

#: Deliveries to one channel that may wait for its answers at the same time, in one process, and
#: how long another waits for one of them to finish before giving up (``busy``).
DESTINATION_CONCURRENCY = 4
DESTINATION_WAIT_SECONDS = 2.0
MINIMAL_TEMPLATE = "(built-in minimal)"

IN_PROGRESS = "another request is delivering this event to this channel right now; retry later"
UNKNOWN_HELD = (
    "an earlier attempt was sent and got no answer in time, so the channel most likely has it; "
    "a retry more than 10 minutes after that attempt sends it again"
)
BUSY = (
    f"{DESTINATION_CONCURRENCY} deliveries to this channel are already waiting for its answer "
    "(is the destination hanging?)"
)


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
    #: Slack app channels: which build's message this posts or updates (translators/slackapp.py).
    thread: Thread | None = None

    def minimal(self) -> dict[str, Any] | None:
        if self.minimal_body is not None:
            return self.minimal_body
        return self.fmt.minimal(self.notification) if self.notification is not None else None

    def result(self, status: Status, **fields: Any) -> ChannelResult:
        return ChannelResult(
            channel=self.channel.name,
            format=self.fmt.name,
            template=self.template,
            template_error=self.template_error,
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


_limits: dict[str, threading.BoundedSemaphore] = {}
_limits_lock = threading.Lock()


@contextmanager
def _admitted(channel: str) -> Iterator[bool]:
    with _limits_lock:
        semaphore = _limits.setdefault(channel, threading.BoundedSemaphore(DESTINATION_CONCURRENCY))
    if not semaphore.acquire(timeout=DESTINATION_WAIT_SECONDS):
        yield False
        return
    try:
        yield True
    finally:
        semaphore.release()


def retryable(result: ChannelResult) -> bool:
    """Whether another attempt later could deliver what this one did not."""
    if result.status != "failed" or result.in_progress:
        return False
    return result.http_status is None or result.http_status in (408, 429) or result.http_status >= 500


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
        if self.outbox is not None and not self.force:
            try:
                if self.outbox.has_queued(name):
                    return self._queue(event_id, p, "behind_queue", outboxes.after(0))
            except StoreUnavailable as exc:
                log.warning("outbox unavailable (%s): delivering without it", exc)
                self.outbox = None
        if self.outbox is not None:
            wait = self.pacer.take(name, p.channel.rate)
            if wait > 0:
                return self._queue(event_id, p, "paced", outboxes.after(wait))
        result = self.send(event_id, p)
        if self.outbox is not None and retryable(result):
            return self._queue(event_id, p, "retrying", None, result)
        return result

    def _queue(
        self, event_id: str | None, p: Prepared, reason: str, due: Any, failed: ChannelResult | None = None
    ) -> ChannelResult:
        """Write ``p`` to the outbox; the result says when it is tried next (or ``failed`` if it cannot)."""
        from translators import drainer
        from translators import outbox as outboxes

        assert self.outbox is not None and self.app is not None
        created = now()
        if due is None:
            assert failed is not None
            delay = outboxes.backoff(
                1, self.app.outbox_min_delay_seconds, self.app.outbox_max_delay_seconds, failed.retry_after
            )
            due = outboxes.after(delay, created)
        entry = outboxes.Entry(
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
            last_error=failed.error if failed is not None else None,
            thread=p.thread.dump() if p.thread is not None else None,
        )
        try:
            self.outbox.add(entry)
        except StoreUnavailable as exc:
            log.warning("outbox unavailable (%s): the delivery could not be kept", exc)
            if failed is not None:
                return failed
            return self.send(event_id, p)  # nothing kept it: better sent now than not at all
        drainer.log_change("queued", entry, reason=reason, request_id=self.request_id)
        fields: dict[str, Any] = {"reason": reason, "next_attempt_at": outboxes.iso(due)}
        if failed is not None:
            fields |= {
                "error": failed.error,
                "http_status": failed.http_status,
                "attempts": failed.attempts,
                "retry_after": failed.retry_after,
                "hint": failed.hint,
            }
        if reason == "behind_queue":
            fields["message"] = "earlier deliveries to this channel are waiting; this one follows them"
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
            # Not "skipped": if that other delivery fails, this retry must not have been the last
            # chance, so the channel counts as failed and the source may retry later.
            return p.result("failed", reason="in_progress", error=IN_PROGRESS, in_progress=True)
        token = claim.token if claim is not None else None
        settled = False
        try:
            result = self._send(p)
            if event_id and token:
                if result.status == "delivered":
                    self.memory.confirm(event_id, name, token)
                elif result.status == "unknown":
                    self.memory.mark_unknown(event_id, name, token)
                else:
                    self.memory.release(event_id, name, token)
            settled = True
            return result
        finally:
            if not settled and event_id and token:  # a bug of ours: let a retry send it
                self.memory.release(event_id, name, token)

    def _send(self, p: Prepared) -> ChannelResult:
        if p.channel.slack_app:
            return self._send_app(p)
        with _admitted(p.channel.name) as admitted:
            if not admitted:
                return p.result("failed", reason="busy", error=BUSY)
            sent = self._post(p, p.body)
            refused = sent.outcome == "failed" and sent.final and p.template != MINIMAL_TEMPLATE
            if refused and p.fmt.is_rejected(sent.status or 0, sent.error or ""):
                minimal = p.minimal()
                if minimal is not None:
                    return self._fallback(p, sent, minimal)
            return self._result(p, sent)

    def _send_app(self, p: Prepared) -> ChannelResult:
        """A Slack app channel: post the build's message or update it (translators/slackapp.py)."""
        from translators import slackapp

        with _admitted(p.channel.name) as admitted:
            if not admitted:
                return p.result("failed", reason="busy", error=BUSY)
            context = {"request_id": self.request_id, "channel": p.channel.name, "format": p.fmt.name}
            done = slackapp.send(p.channel, p.body, p.thread, self.memory, self.policy, context)
            sent = done.sent
            fallback: str | None = None
            if sent is not None and not sent.ok and p.template != MINIMAL_TEMPLATE:
                minimal = p.minimal()
                if minimal is not None and slackapp.is_rejected(sent.status or 0, sent.error or ""):
                    log.warning(
                        "channel %s refused the body of template %s (%s); sending the minimal message",
                        p.channel.name,
                        p.template,
                        sent.error,
                    )
                    fallback = f"rejected: {sent.error}"
                    done = slackapp.send(p.channel, minimal, p.thread, self.memory, self.policy, context)
        extra: dict[str, Any] = {"slack_message": done.action}
        if done.reply_error:
            extra["reply_error"] = done.reply_error
        if done.sent is None:
            if done.action == "waiting":  # http_status None: the outbox tries it again shortly
                return p.result("failed", reason="message_in_progress", error=done.message, extra=extra)
            skip = p.thread.skip if p.thread is not None and p.thread.skip else None
            if done.action == "not_posted" and skip is not None:
                return p.result("skipped", reason=skip[0], message=skip[1], extra=extra)
            return p.result("skipped", reason=done.action, message=done.message, extra=extra)
        result = self._result(p, done.sent, hint=slackapp.hint)
        changes: dict[str, Any] = {"extra": extra}
        if fallback is not None:
            changes |= {"template": MINIMAL_TEMPLATE, "fallback": fallback}
        if done.message and result.message is None:
            changes["message"] = done.message
        return replace(result, **changes)

    def _post(self, p: Prepared, body: dict[str, Any]) -> DeliveryResult:
        from translators import delivery  # requests is imported only when something is sent

        assert p.channel.url is not None, "a webhook channel has a URL"
        context = {"request_id": self.request_id, "channel": p.channel.name, "format": p.fmt.name}
        return delivery.deliver(
            p.channel.url.get_secret_value(),
            dumps(body),
            is_success=p.fmt.is_success,
            policy=self.policy,
            context=context,
        )

    def _fallback(self, p: Prepared, refused: DeliveryResult, minimal: dict[str, Any]) -> ChannelResult:
        """The destination refused the body: send the minimal message once, and say why."""
        log.warning(
            "channel %s refused the body of template %s (%s %s); sending the minimal message instead",
            p.channel.name,
            p.template,
            refused.status,
            refused.error,
        )
        sent = self._post(p, minimal)
        return replace(
            self._result(p, sent),
            template=MINIMAL_TEMPLATE,
            fallback=f"rejected: {refused.error or refused.status}",
            attempts=(refused.attempts or 0) + (sent.attempts or 0),
        )

    @staticmethod
    def _result(
        p: Prepared, sent: DeliveryResult, hint: Callable[[int | None, str], str | None] | None = None
    ) -> ChannelResult:
        fields: dict[str, Any] = {
            "http_status": sent.status,
            "attempts": sent.attempts,
            "error": sent.error,
            "retry_after": sent.retry_after,
            "ms": sent.elapsed_ms,
        }
        if sent.outcome == "failed":
            fields["hint"] = (hint or p.fmt.hint)(sent.status, sent.error or "")
        if sent.incomplete:
            fields["message"] = (
                "the destination took it (2xx) but the rest of its answer did not come in time"
            )
        return p.result(sent.outcome, **fields)
