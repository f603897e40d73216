"""Ways of delivering a rendered message: one module each, behind one small interface.

A destination sends one prepared body to one channel and returns one typed result
(``results.ChannelResult``: delivered, failed, unknown or skipped, with ``retry`` saying whether a
later attempt could mend a failure). It owns what is particular to it: what counts as success,
what is refused for good, the hints for its errors, the state it keeps beside a queued body, and
what a dry run would do. The deliverer (claim, outbox, pacing, order) and the drainer treat every
destination alike; formats keep markup, limits and validation only.

- ``webhook``: an incoming webhook (Slack, Teams Workflows, MessageCard), a message per event.
- ``slackapp``: a Slack app channel, one message per build, posted and updated with a bot token.

A third way of delivering (a Teams bot, a Discord webhook) is one more module and a line in ``of``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from translators.deliverer import Prepared
    from translators.delivery import DeliveryPolicy, DeliveryResult
    from translators.memory import Memory
    from translators.model import Notification
    from translators.results import ChannelResult
    from translators.rules import Skip
    from translators.settings import Channel

#: Deliveries to one channel that may wait for its answers at the same time, in one process, and
#: how long another waits for one of them to finish before giving up (``busy``).
DESTINATION_CONCURRENCY = 4
DESTINATION_WAIT_SECONDS = 2.0
BUSY = (
    f"{DESTINATION_CONCURRENCY} deliveries to this channel are already waiting for its answer "
    "(is the destination hanging?)"
)
MINIMAL_TEMPLATE = "(built-in minimal)"


@dataclass(frozen=True)
class Context:
    """What a send may use besides the prepared body: memory, the delivery policy, the request."""

    memory: Memory
    policy: DeliveryPolicy
    request_id: str = ""


class Destination(Protocol):
    name: ClassVar[str]
    #: This destination keeps one message per build and updates it (the rules ask which channels
    #: already have one; nothing else outside the destination needs to know more).
    keeps_one_message: ClassVar[bool]

    def state(
        self, channel: Channel, n: Notification, body: dict[str, Any], update_only: Skip | None
    ) -> dict[str, Any] | None:
        """What this destination needs beside the body to send it later (kept in the outbox)."""
        ...

    def has_message(self, channel: Channel, key: str, memory: Memory) -> bool:
        """Whether the build ``key`` already has its message in this channel."""
        ...

    def plan(self, p: Prepared, memory: Memory) -> dict[str, Any]:
        """What a dry run adds to the channel's result (what the send would do now)."""
        ...

    def send(self, p: Prepared, ctx: Context) -> ChannelResult:
        """Send ``p`` (no claim, no queueing: the deliverer owns those); one result."""
        ...


def of(channel: Channel) -> Destination:
    """The destination a channel's settings describe."""
    if channel.slack_app:
        from translators.destinations import slackapp

        return slackapp.DESTINATION
    from translators.destinations import webhook

    return webhook.DESTINATION


def order_key(state: Mapping[str, Any] | None) -> str | None:
    """The build a queued body belongs to (``Notification.message_key``): its events go in order."""
    key = state.get("key") if state else None
    return key if isinstance(key, str) and key else None


_limits: dict[str, threading.BoundedSemaphore] = {}
_limits_lock = threading.Lock()


@contextmanager
def admitted(channel: str) -> Iterator[bool]:
    """At most ``DESTINATION_CONCURRENCY`` deliveries to one channel wait for answers at a time."""
    with _limits_lock:
        semaphore = _limits.setdefault(channel, threading.BoundedSemaphore(DESTINATION_CONCURRENCY))
    if not semaphore.acquire(timeout=DESTINATION_WAIT_SECONDS):
        yield False
        return
    try:
        yield True
    finally:
        semaphore.release()


def transient_http(status: int | None) -> bool:
    """No answer, a timeout, too many requests or the destination's own trouble: worth retrying."""
    return status is None or status in (408, 429) or status >= 500


def result_of(
    p: Prepared,
    sent: DeliveryResult,
    hint: Callable[[int | None, str], str | None],
    *,
    retry: bool,
) -> ChannelResult:
    """The channel's result for one HTTP exchange, ``hint`` naming what to do about a failure."""
    fields: dict[str, Any] = {
        "http_status": sent.status,
        "attempts": sent.attempts,
        "error": sent.error,
        "retry_after": sent.retry_after,
        "ms": sent.elapsed_ms,
        "retry": retry and sent.outcome == "failed",
    }
    if sent.outcome == "failed":
        fields["hint"] = hint(sent.status, sent.error or "")
    if sent.incomplete:
        fields["message"] = "the destination took it (2xx) but the rest of its answer did not come in time"
    return p.result(sent.outcome, **fields)
