"""Per-channel pacing: a token bucket per channel, so that a burst does not trip a destination's limit.

Slack allows about one message a second per incoming webhook with short bursts; Teams Workflows
throttles beyond about four requests a second. Each channel gets ``rate`` messages a second
(``CHANNEL_<NAME>_RATE``, else its format's default) and a burst of ``burst(rate)``. A delivery
that finds no token is not sent now: it goes to the outbox, due when the next token is, and the
drainer sends it then, in order.

Buckets live in one process. ``serve --workers N`` gives each worker's requests ``1/N`` of every
rate (``share``), so that together they keep it. Only one process drains the outbox, and while a
channel has entries queued every request of every worker queues behind them: the drainer then has
the channel to itself and paces it at its whole rate (``take(..., whole=True)``), in the same
bucket, so that what requests just sent still counts. Several instances of a
Function App each pace on their own: a destination may then see more than the rate and answer 429,
which the outbox retries after ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time

#: Messages a second by format, when the channel does not say (CHANNEL_<NAME>_RATE).
DEFAULT_RATES: dict[str, float] = {"slack": 1.0, "teams": 2.0, "teams-messagecard": 1.0}


def burst(rate: float) -> float:
    """How many messages may go at once after a quiet spell: two seconds' worth, at least two."""
    return float(max(2, math.ceil(rate * 2)))


class Pacer:
    """Token buckets by channel name, safe to use from many threads."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._lock = threading.Lock()
        #: This process's part of every rate: 1/N in each of N workers sharing the channels.
        self.share = 1.0

    def take(self, channel: str, rate: float, *, whole: bool = False) -> float:
        """Take a token now (0.0), or say in how many seconds one will be there (taking nothing).

        ``whole``: at the channel's whole rate, not this process's share (the drainer's pace).
        """
        rate = rate if whole else rate * self.share
        capacity = burst(rate)
        moment = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(channel, (capacity, moment))
            tokens = min(capacity, tokens + (moment - at) * rate)
            if tokens >= 1.0:
                self._buckets[channel] = (tokens - 1.0, moment)
                return 0.0
            self._buckets[channel] = (tokens, moment)
            return (1.0 - tokens) / rate

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


#: The process's pacer: every request and the drainer share it.
PACER = Pacer()
