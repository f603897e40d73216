"""Notification rules: which of the requested channels hear of an event. A pure function.

Per channel (settings in translators/settings.py):

- ``EVENTS``: event-name patterns (``build.failed,crash.*``); an event matching none is skipped.
  Unset: every event except opt-in ones (``Notification.opt_in``: Xcode Cloud's ``build.queued``),
  which only a channel whose patterns match them gets.
- ``BRANCHES``: branch patterns, ``tag:`` patterns for tags, ``!`` to leave out; ``APPS``: app ids
  and names. An event outside them is skipped; one that names no branch (no app) passes unless
  ``BRANCHES_STRICT`` (``APPS_STRICT``). Names include ``APP_NAMES``'s, applied before the rules.
- ``BUILD_SUCCESS`` = always | after-failure | never and ``BUILD_FAILURE`` = always | after-success
  | never: App Center's "only after a change" modes, for every source that reports build outcomes
  (events ``build.succeeded`` and ``build.failed``). The previous outcome is the last finished build
  (succeeded or failed; canceled does not count) of the same source, app, branch and workflow,
  recorded whether or not anyone was told (translators/memory.py).

With no earlier build on record (a new branch, a fresh deploy), ``after-success`` *sends* the
failure: people choose it to hear of breakages, and the first failure of a branch is one. An
``after-failure`` success is not sent: there was no failure to recover from.

A destination may keep one message per build and update it (a Slack app channel,
translators/destinations/slackapp.py). When
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

from translators.formats import clip
from translators.model import Notification
from translators.settings import TAG_PREFIX, Channel, channel_env
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
    skip = _ref_skip(channel, n) or _app_skip(channel, n)
    if skip is not None:
        return skip
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


def _ref_skip(channel: Channel, n: Notification) -> Skip | None:
    """The branch filter: a branch against the plain patterns, a tag against the ``tag:`` ones."""
    if not channel.branches:
        return None
    setting = f"{channel_env(channel.name)}_BRANCHES"
    if n.branch:
        what, ref = "branch", n.branch
        patterns = [p for p in channel.branches if not p.lstrip("!").startswith(TAG_PREFIX)]
    elif n.tag:
        what, ref = "tag", n.tag
        patterns = [
            p.replace(TAG_PREFIX, "", 1) for p in channel.branches if p.lstrip("!").startswith(TAG_PREFIX)
        ]
    elif channel.branches_strict:
        return Skip("branch_filter", f"the event names no branch or tag, and {setting}_STRICT is set")
    else:
        return None
    # With no pattern for this kind of ref, only a channel of exclusions alone ("!main") takes it.
    if matches([ref], patterns) if patterns else all(p.startswith("!") for p in channel.branches):
        return None
    return Skip(
        "branch_filter", f"{what} {clip(ref, 100)!r} is not among {setting} ({', '.join(channel.branches)})"
    )


def _app_skip(channel: Channel, n: Notification) -> Skip | None:
    """The app filter: the payload's ids and names, and the ``APP_NAMES`` name, any case."""
    if not channel.apps:
        return None
    setting = f"{channel_env(channel.name)}_APPS"
    known = [v.strip().lower() for v in (n.app_key, n.app_id, n.app, n.app_name) if v and v.strip()]
    if not known:
        if channel.apps_strict:
            return Skip("app_filter", f"the event names no app, and {setting}_STRICT is set")
        return None
    if matches(known, channel.apps):
        return None
    shown = clip(n.app_display or n.app_key or "", 100)
    return Skip("app_filter", f"app {shown!r} is not among {setting} ({', '.join(channel.apps)})")


def matches(values: Collection[str], patterns: Collection[str]) -> bool:
    """Whether one of ``values`` matches a pattern and none matches a ``!pattern`` (shell style).

    With exclusions only (``!main``), everything else matches.
    """
    wanted = [p for p in patterns if not p.startswith("!")]
    unwanted = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatchcase(v, p) for v in values for p in unwanted):
        return False
    return not wanted or any(fnmatchcase(v, p) for v in values for p in wanted)


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
