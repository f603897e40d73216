"""Notification rules: which of the requested channels hear of an event. A pure function.

Per channel (settings in translators/settings.py):

- ``EVENTS``: event-name patterns (``build.failed,crash.*``); an event matching none is skipped.
  Unset: every event except opt-in ones (``Notification.opt_in``: Xcode Cloud's ``build.queued``),
  which only a channel whose patterns match them gets.
- ``BUILD_SUCCESS`` = always | after-failure | never and ``BUILD_FAILURE`` = always | after-success
  | never: App Center's "only after a change" modes, for every source that reports build outcomes
  (events ``build.succeeded`` and ``build.failed``). The previous outcome is the last finished build
  (succeeded or failed; canceled does not count) of the same source, app, branch and workflow,
  recorded whether or not anyone was told (translators/memory.py).

With no earlier build on record (a new branch, a fresh deploy), ``after-success`` *sends* the
failure: people choose it to hear of breakages, and the first failure of a branch is one. An
``after-failure`` success is not sent: there was no failure to recover from.

A Slack app channel keeps one message per build and updates it (translators/slackapp.py). When
the rules skip an event for such a channel but the build already has a message there, the message
is still updated, so that it never goes on saying "started" for a build that finished: its
*notification* is what the rules decide about, and an update notifies nobody (no broadcast reply
is posted for it).

``decide`` takes what memory said as arguments and reads nothing itself; whether a delivery was
already made is the deliverer's question, asked when it claims the delivery.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from translators.model import Notification
from translators.settings import Channel, channel_env
from translators.state import Outcome

#: The events that settle a build, with the outcome memory keeps for them.
FINISHED: dict[str, Outcome] = {"build.succeeded": "success", "build.failed": "failure"}


@dataclass(frozen=True)
class Skip:
    reason: str
    """``event_filter`` or ``build_mode``."""
    message: str


@dataclass(frozen=True)
class Decision:
    """The rules applied to one event: who is sent to, who is skipped and why."""

    send: tuple[Channel, ...]
    skipped: tuple[tuple[Channel, Skip], ...]
    #: Channels in ``send`` only to update the build's message the rules would have skipped, and why.
    update_only: dict[str, Skip] = field(default_factory=dict)


def skip_reason(channel: Channel, n: Notification, previous: Outcome | None, known: bool) -> Skip | None:
    """Why ``channel`` does not take ``n``, or None when it does.

    ``known`` is False when memory was unavailable: then an "after" mode cannot be judged and the
    message is sent rather than risk losing it.
    """
    if channel.events and not any(fnmatchcase(n.event, pattern) for pattern in channel.events):
        return Skip(
            "event_filter", f"{n.event} is not among this channel's events ({', '.join(channel.events)})"
        )
    if n.opt_in and not channel.events:
        return Skip(
            "event_filter",
            f"{n.event} from {n.source_label} goes only to channels that ask for it: add it to"
            f" {channel_env(channel.name)}_EVENTS",
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
        if n.event == "build.failed":
            return None  # the first failure on record is a breakage: after-success sends it
        return Skip(
            "build_mode", f"{setting}={mode} and no earlier failed build of this app and branch is on record"
        )
    said = "succeeded" if previous == "success" else "failed"
    return Skip("build_mode", f"{setting}={mode} and the previous build {said} too")


def decide(
    n: Notification,
    channels: Sequence[Channel],
    previous: Outcome | None,
    known: bool,
    posted: Collection[str] = (),
) -> Decision:
    """Apply each channel's rules to ``n``, given what memory knows of the previous build.

    ``posted``: the channels where this build already has a message (Slack app channels).
    """
    send: list[Channel] = []
    skipped: list[tuple[Channel, Skip]] = []
    update_only: dict[str, Skip] = {}
    for channel in channels:
        skip = skip_reason(channel, n, previous, known)
        if skip is None:
            send.append(channel)
        elif channel.name in posted:
            send.append(channel)
            update_only[channel.name] = skip
        else:
            skipped.append((channel, skip))
    return Decision(tuple(send), tuple(skipped), update_only)
