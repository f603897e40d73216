"""One typed result per channel, and the one place that turns results into an answer's JSON.

Every stage that decides a channel's fate says so with a ``ChannelResult``: the rules (skipped),
the settings (misconfigured), rendering (dry run) and the deliverer (delivered, failed, unknown,
queued). ``summarise`` picks the answer's HTTP status and overall status from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal[
    "delivered", "failed", "unknown", "queued", "skipped", "in_progress", "dry_run", "misconfigured"
]


@dataclass(frozen=True)
class ChannelResult:
    """What happened to one channel. Texts never hold a destination URL or any other secret."""

    channel: str
    status: Status
    format: str | None = None
    template: str | None = None
    #: Why: a skip's reason (``event_filter``, ``build_mode``, ``duplicate``) or an error's kind.
    reason: str | None = None
    message: str | None = None
    error: str | None = None
    #: What to do about a known destination error ("revoked webhook: create a new one").
    hint: str | None = None
    http_status: int | None = None
    attempts: int | None = None
    retry_after: float | None = None
    ms: int | None = None
    template_error: str | None = None
    #: Set when the destination refused the rich body and the minimal message was sent instead.
    fallback: str | None = None
    #: Another request is delivering this event to this channel right now.
    in_progress: bool = False
    #: When a queued delivery will be tried next (ISO 8601, UTC).
    next_attempt_at: str | None = None
    #: What a dry run would send.
    body: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Decided by the destination: another attempt later could mend this failure (the outbox takes
    #: it); a failure without it was refused for good (a dead letter). Not part of the answer.
    retry: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"channel": self.channel}
        for key in (
            "format",
            "template",
            "template_error",
            "status",
            "reason",
            "message",
            "http_status",
            "attempts",
            "error",
            "hint",
            "fallback",
            "retry_after",
            "next_attempt_at",
            "ms",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.in_progress:
            out["in_progress"] = True
        if self.body is not None:
            out["body"] = self.body
        out.update(self.extra)
        return out


def in_order(results: Sequence[ChannelResult], names: Sequence[str]) -> list[ChannelResult]:
    """Results in the order the channels were asked for (each channel once)."""
    by_name = {r.channel: r for r in results}
    return [by_name[n] for n in names if n in by_name]


def summarise(results: Sequence[ChannelResult]) -> tuple[int, str, str | None]:
    """(HTTP status, overall status, message) for an answer made of these channel results.

    - a channel failed for good: 502, so that sources which retry will (only the failed channels
      are sent again: the others' deliveries are remembered);
    - another request is delivering the same event right now: 200 ``in_progress``;
    - every channel misconfigured: 503 (not the sender's fault; retrying sources try again);
    - queued (the outbox owns it) or unknown (sent, no answer in time): 200, the event is ours now;
    - all skipped: 200 ``skipped``; else ``delivered``.
    """
    statuses = [r.status for r in results]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        return 502, "failed", f"{len(failed)} of {len(results)} channel(s) failed"
    if "in_progress" in statuses:
        # Another request holds this event's delivery right now: it will arrive once. A 5xx would
        # only make the platform send it yet again.
        return (
            200,
            "in_progress",
            "another request is delivering this event right now; it arrives once (see channels[])",
        )
    if statuses and all(s == "misconfigured" for s in statuses):
        return 503, "misconfigured", "every channel asked for is misconfigured (see channels[].error)"
    if "dry_run" in statuses:
        return 200, "dry_run", None
    if "queued" in statuses:
        return (
            200,
            "queued",
            "kept in the outbox and retried until delivered (see channels[].next_attempt_at)",
        )
    if "unknown" in statuses:
        return 200, "unknown", "sent, but no answer came in time (see channels[].error)"
    if statuses and all(s == "skipped" for s in statuses):
        return 200, "skipped", "every channel skipped this event (see channels[].reason)"
    if "misconfigured" in statuses:
        return 200, "partial", "delivered to the healthy channels; some are misconfigured (see channels[])"
    return 200, "delivered", None
