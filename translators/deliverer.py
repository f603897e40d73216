"""The idempotent deliverer: claim, send, confirm or release, one typed result per channel.

For each rendered body it claims the (event, channel) delivery in memory, sends it, and settles
the claim in the same thread, as soon as that channel's answer is in:
- ``confirm`` once delivered;
- ``mark_unknown`` when it was sent with no answer in time;
- ``release`` when it failed, so that a retry can send it.
A stop or a crash after one channel of a fan-out therefore never leaves that channel's delivery
unconfirmed. A retry of the event reaches only the channels that did not get it.

When a destination refuses the rich body (Slack ``invalid_blocks``, a Teams 400), the format's
minimal message is sent once instead, and the result says ``fallback: "rejected: <error>"``.

A destination that hangs cannot take every worker: at most ``DESTINATION_CONCURRENCY`` deliveries
to one channel wait for answers at a time; another waits a moment for one of them, then gives up
as ``busy``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from translators import logs
from translators.formats import ChatFormat, dumps
from translators.memory import Memory
from translators.model import Notification
from translators.results import ChannelResult, Status
from translators.settings import Channel

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from translators.delivery import DeliveryPolicy, DeliveryResult

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
    "(is the destination hanging?); retry later"
)


@dataclass(frozen=True)
class Prepared:
    """A rendered, fitted and validated body for one channel."""

    channel: Channel
    fmt: ChatFormat
    template: str
    body: dict[str, Any]
    notification: Notification
    template_error: str | None = None

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


def _fan_out_pool() -> ThreadPoolExecutor:
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


class Deliverer:
    """Delivers one event's bodies, each exactly once per channel as far as memory can tell."""

    def __init__(self, memory: Memory, policy: DeliveryPolicy, request_id: str = "") -> None:
        self.memory = memory
        self.policy = policy
        self.request_id = request_id

    def deliver(self, event_id: str | None, prepared: Sequence[Prepared]) -> list[ChannelResult]:
        if len(prepared) <= 1:
            return [self._one(event_id, p) for p in prepared]
        return list(_fan_out_pool().map(lambda p: self._one(event_id, p), prepared))

    def _one(self, event_id: str | None, p: Prepared) -> ChannelResult:
        name = p.channel.name
        claim = self.memory.claim(event_id, name) if event_id else None
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
        with _admitted(p.channel.name) as admitted:
            if not admitted:
                return p.result("failed", reason="busy", error=BUSY)
            sent = self._post(p, p.body)
            refused = sent.outcome == "failed" and sent.final and p.template != MINIMAL_TEMPLATE
            if refused and p.fmt.is_rejected(sent.status or 0, sent.error or ""):
                return self._fallback(p, sent)
            return self._result(p, sent)

    def _post(self, p: Prepared, body: dict[str, Any]) -> DeliveryResult:
        from translators import delivery  # requests is imported only when something is sent

        context = {"request_id": self.request_id, "channel": p.channel.name, "format": p.fmt.name}
        return delivery.deliver(
            p.channel.url.get_secret_value(),
            dumps(body),
            is_success=p.fmt.is_success,
            policy=self.policy,
            context=context,
        )

    def _fallback(self, p: Prepared, refused: DeliveryResult) -> ChannelResult:
        """The destination refused the body: send the minimal message once, and say why."""
        log.warning(
            "channel %s refused the body of template %s (%s %s); sending the minimal message instead",
            p.channel.name,
            p.template,
            refused.status,
            refused.error,
        )
        minimal = p.fmt.minimal(p.notification)
        sent = self._post(p, minimal)
        result = self._result(p, sent)
        return ChannelResult(
            **{
                **result.__dict__,
                "template": MINIMAL_TEMPLATE,
                "fallback": f"rejected: {refused.error or refused.status}",
                "attempts": (refused.attempts or 0) + (sent.attempts or 0),
            }
        )

    @staticmethod
    def _result(p: Prepared, sent: DeliveryResult) -> ChannelResult:
        fields: dict[str, Any] = {
            "http_status": sent.status,
            "attempts": sent.attempts,
            "error": sent.error,
            "retry_after": sent.retry_after,
            "ms": sent.elapsed_ms,
        }
        if sent.outcome == "failed":
            fields["hint"] = p.fmt.hint(sent.status, sent.error or "")
        if sent.incomplete:
            fields["message"] = (
                "the destination took it (2xx) but the rest of its answer did not come in time"
            )
        return p.result(sent.outcome, **fields)
