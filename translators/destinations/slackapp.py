"""Slack app channels: one message per build, posted with a bot token and updated in place.

An incoming webhook returns no message id, so each event is a message of its own: "Build #41
started", then "Build #41 failed". A Slack app's bot token can ``chat.postMessage`` (which
answers with the message's ``ts``) and ``chat.update`` it later. The ``ts`` of each build's
message is kept in memory (translators/state: SQLite or Table Storage), so a restart, another
instance or the outbox's retry an hour later all update the same message.

For one event of a build (``Notification.message_key``) in one channel:

1. No message yet: claim the right to post it in memory (two instances racing on one build end
   with one message), post, remember the ``ts``. A post that fails gives the claim back.
2. Another request is posting it right now: wait a moment for its ``ts``; if it does not come,
   fail in a way the outbox retries (the update then follows the post).
3. A message exists: move it to this event's stage unless it shows a later one (a "started" that
   arrives after "failed" is not posted: ``skipped``, reason ``superseded``), then ``chat.update``.
   A message that can no longer be updated (deleted, too old) is replaced by a new post.
4. An update notifies nobody, so an event the channel broadcasts (``CHANNEL_<NAME>_BROADCAST``,
   default ``build.failed``) also posts a short reply in the message's thread with
   ``reply_broadcast``, which shows in the channel too and carries the mentions.

Success is HTTP 200 with ``"ok": true``; a 200 with ``"ok": false`` is a failure named by Slack's
``error``, with a hint for the usual ones. Errors Slack documents as transient (``internal_error``,
``fatal_error``, ``ratelimited``, ``request_timeout``, ``service_unavailable``...) are retried by
the outbox like a 5xx; any other (``invalid_auth``, ``channel_not_found``, ``not_in_channel``...)
is refused for good and kept as a dead letter to replay once the token or channel is fixed. An
update whose answer did not come in time is tried again (``chat.update`` is idempotent), and the
broadcast reply follows it. A 429's ``Retry-After`` is honoured by the delivery's retries and then
by the outbox. The bot token is sent in the ``Authorization`` header and is kept out of every
answer and log line.

The message's ``text`` (what a notification and a screen reader show) is made from the
notification, not from the blocks: Slack reads it as mrkdwn, where ``*``, ``_``, ``~``, ``` ` ```
and ``:emoji:`` format and no escape exists, so a zero-width space after each of them in payload
text keeps it literal, as the blocks' rich text is.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, ClassVar

from translators import logs
from translators.destinations import BUSY, MINIMAL_TEMPLATE, Context, admitted, result_of, transient_http

if TYPE_CHECKING:
    from translators.deliverer import Prepared
    from translators.delivery import DeliveryPolicy, DeliveryResult
    from translators.memory import Memory
    from translators.model import Notification
    from translators.results import ChannelResult
    from translators.rules import Skip
    from translators.settings import Channel
    from translators.state import Message

POST = "chat.postMessage"
UPDATE = "chat.update"
#: chat.update's errors for a message that cannot be updated any more: a new one is posted instead.
GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
#: Errors that mean Slack refused the body itself: the minimal message may still get through.
REJECTED = frozenset({"invalid_blocks", "invalid_blocks_format", "invalid_attachments", "msg_too_long"})
#: Web API errors Slack documents as temporary (chat.postMessage, chat.update): tried again later.
TRANSIENT = frozenset(
    {
        "internal_error",
        "fatal_error",
        "ratelimited",
        "rate_limited",
        "request_timeout",
        "service_unavailable",
        "team_added_to_org",
    }
)
#: How long an event waits for another request's post of the same build before it is retried later.
WAIT_FOR_POST_SECONDS = 3.0
POLL_SECONDS = 0.1

HINTS = {
    "not_in_channel": "invite the app to the channel (/invite @your-app in Slack), or give it the"
    " chat:write.public scope and reinstall it",
    "channel_not_found": "CHANNEL_<NAME>_SLACK_CHANNEL names no channel the app can see: use the"
    " channel id (channel name -> About -> Channel ID); a private channel needs the app invited",
    "invalid_auth": "the bot token is not valid: copy the Bot User OAuth Token (xoxb-…) from the"
    " app's OAuth & Permissions page into SLACK_BOT_TOKEN",
    "not_authed": "no bot token was sent: set SLACK_BOT_TOKEN or CHANNEL_<NAME>_SLACK_TOKEN",
    "token_revoked": "the bot token was revoked (the app was uninstalled?): reinstall the app and"
    " copy its new token",
    "account_inactive": "the bot token's app or user was deactivated: reinstall the app",
    "missing_scope": "the app lacks the chat:write scope: add it under OAuth & Permissions and"
    " reinstall the app",
    "is_archived": "the channel is archived: unarchive it, or choose another channel",
    "restricted_action": "a workspace admin restricted posting in this channel",
    "ratelimited": "Slack asks us to slow down: the outbox sends it again after Retry-After",
}

log = logs.logger("translators.slackapp")


@dataclass(frozen=True)
class Thread:
    """How one event's body goes to a Slack app channel (kept in the outbox with a queued body)."""

    #: The build (``Notification.message_key``) whose one message this event posts or updates;
    #: None: a message of its own (a crash, a release).
    key: str | None
    #: ``Notification.stage``: 0 under way, 1 settled.
    stage: int
    #: The broadcast thread reply's text, when this event asks for one after an update.
    reply: str | None = None
    #: The rules skipped this event (``skip`` says why): only a message already posted is updated,
    #: so that it does not go on saying "started" (docs/slack-app.md).
    update_only: bool = False
    skip: tuple[str, str] | None = None
    #: The message's ``text`` (notifications, screen readers), payload text made literal for mrkdwn.
    text: str | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "stage": self.stage,
            "reply": self.reply,
            "update_only": self.update_only,
            "skip": list(self.skip) if self.skip else None,
            "text": self.text,
        }

    @classmethod
    def load(cls, data: Mapping[str, Any] | None) -> Thread | None:
        if not data:
            return None
        skip = data.get("skip")
        return cls(
            key=data.get("key"),
            stage=int(data.get("stage") or 0),
            reply=data.get("reply"),
            update_only=bool(data.get("update_only")),
            skip=(str(skip[0]), str(skip[1])) if skip else None,
            text=data.get("text") if isinstance(data.get("text"), str) else None,
        )


@dataclass(frozen=True)
class Outcome:
    """What one event did in a Slack app channel: ``sent`` (the main call), or why nothing was."""

    sent: DeliveryResult | None
    #: posted, updated, reposted (the old message was gone), superseded, waiting, not_posted
    action: str
    message: str | None = None
    reply_error: str | None = None


def error_of(text: str | None) -> str | None:
    """Slack's ``error`` in a Web API answer, if it is one."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    return str(data.get("error")) if isinstance(data, dict) and data.get("error") else None


def is_success(status: int, text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return status == 200 and isinstance(data, dict) and data.get("ok") is True


def hint(status: int | None, text: str) -> str | None:
    return HINTS.get(error_of(text) or "")


def is_rejected(status: int, text: str) -> bool:
    return error_of(text) in REJECTED


def ts_of(answer: str | None) -> str | None:
    try:
        data = json.loads(answer or "")
    except ValueError:
        return None
    ts = data.get("ts") if isinstance(data, dict) else None
    return ts if isinstance(ts, str) and ts else None


class Api:
    """Calls of the Slack Web API for one channel, with the delivery's retries and deadline."""

    def __init__(
        self,
        channel: Channel,
        policy: DeliveryPolicy,
        context: Mapping[str, object],
        text: str | None = None,
    ) -> None:
        assert channel.slack_channel is not None and channel.slack_token is not None
        self.channel = channel
        self.policy = policy
        self.context = context
        #: The message's ``text``, made from the notification (``message_text``).
        self.text = text

    def call(self, method: str, body: Mapping[str, Any]) -> DeliveryResult:
        from translators import delivery
        from translators.formats import dumps

        token = self.channel.slack_token.get_secret_value()  # type: ignore[union-attr]
        payload = {**body, "channel": self.channel.slack_channel}
        if method in (POST, UPDATE):
            payload.setdefault("text", self.text or _notification_text(payload))
        return delivery.deliver(
            f"{self.channel.slack_api_url}/{method}",
            dumps(payload),
            is_success=is_success,
            policy=self.policy,
            secrets=(token,),
            context={**self.context, "method": method},
            headers={"Authorization": f"Bearer {token}"},
        )


def _notification_text(body: Mapping[str, Any]) -> str:
    """``text`` for the notification (and screen readers): an attachment's fallback, else a word."""
    return reply_text(body) or "New message"


def reply_text(body: Mapping[str, Any]) -> str | None:
    """The broadcast reply of an update: the message's one-line text (title, app and mentions, in
    the built-in templates' attachment fallback), else its ``text``."""
    for attachment in body.get("attachments") or []:
        if isinstance(attachment, dict) and isinstance(attachment.get("fallback"), str):
            return str(attachment["fallback"])
    text = body.get("text")
    return text if isinstance(text, str) and text.strip() else None


def plan(channel: Channel, thread: Thread | None, memory: Memory) -> str:
    """What ``send`` would do now, for a dry run: "post", "update", or why neither."""
    if thread is None or thread.key is None:
        return "post"
    known, message = memory.message(thread.key, channel.name)
    if not known:
        return "post (memory unavailable)"
    if message is None or message.ts is None:
        return "skip (no message to update)" if thread.update_only else "post"
    if message.stage > thread.stage:
        return "skip (the build's message already shows a later event)"
    return "update"


def send(
    channel: Channel,
    body: Mapping[str, Any],
    thread: Thread | None,
    memory: Memory,
    policy: DeliveryPolicy,
    context: Mapping[str, object],
) -> Outcome:
    api = Api(channel, policy, context, thread.text if thread is not None else None)
    name = channel.name
    if thread is None or thread.key is None:
        return Outcome(api.call(POST, body), "posted")
    key = thread.key
    known, message = memory.message(key, name)
    if not known:  # memory is down: a message of its own, rather than none
        if thread.update_only:
            return Outcome(None, "not_posted", "memory is unavailable, so there is no message to update")
        return Outcome(api.call(POST, body), "posted", "memory unavailable: posted as a message of its own")
    if message is None or message.ts is None:
        if thread.update_only and message is None:
            return Outcome(None, "not_posted")
        if message is None:
            claimed, token = memory.claim_message(key, name, thread.stage)
            if token is not None:
                return _post_claimed(api, memory, key, name, token, body, thread.stage)
            if not claimed:
                return Outcome(
                    api.call(POST, body), "posted", "memory unavailable: posted as a message of its own"
                )
        message = _wait_for_post(memory, key, name)
        if message is None or message.ts is None:
            if message is None and not thread.update_only:  # the other post failed and let go: ours
                claimed, token = memory.claim_message(key, name, thread.stage)
                if token is not None:
                    return _post_claimed(api, memory, key, name, token, body, thread.stage)
            return Outcome(None, "waiting", "another request is posting this build's message; updated later")
    allowed = memory.advance_message(key, name, thread.stage)
    if allowed is False:
        return Outcome(None, "superseded", "the build's message already shows a later event")
    return _update(api, memory, key, name, message, body, thread)


def _post_claimed(
    api: Api, memory: Memory, key: str, name: str, token: str, body: Mapping[str, Any], stage: int
) -> Outcome:
    sent = api.call(POST, body)
    ts = ts_of(sent.answer) if sent.ok else None
    if ts is not None:
        memory.message_posted(key, name, token, ts, stage)
    elif sent.outcome == "failed":
        memory.release_message(key, name, token)  # nothing was posted: a retry may post it
    # "unknown" keeps the claim: the post most likely arrived, and a second one would duplicate it;
    # after MESSAGE_POST_STALE_AFTER a later event may post again.
    return Outcome(sent, "posted")


def _wait_for_post(memory: Memory, key: str, name: str) -> Message | None:
    deadline = time.monotonic() + WAIT_FOR_POST_SECONDS
    while True:
        _, message = memory.message(key, name)
        if message is None or message.ts is not None or time.monotonic() > deadline:
            return message
        time.sleep(POLL_SECONDS)


def _update(
    api: Api, memory: Memory, key: str, name: str, message: Message, body: Mapping[str, Any], thread: Thread
) -> Outcome:
    assert message.ts is not None
    sent = api.call(UPDATE, {**body, "ts": message.ts})
    if not sent.ok and error_of(sent.error) in GONE:
        log.info("the message of %s in channel %s is gone (%s); posting a new one", key, name, sent.error)
        posted = api.call(POST, body)
        new_ts = ts_of(posted.answer) if posted.ok else None
        if new_ts is not None:
            memory.replace_message(key, name, message.ts, new_ts)
        attempts = (sent.attempts or 0) + (posted.attempts or 0)
        return Outcome(
            replace(posted, attempts=attempts), "reposted", "the build's message was gone; posted anew"
        )
    if not sent.ok or thread.reply is None or thread.update_only:
        return Outcome(sent, "updated")
    # The update notified nobody: a reply in the thread, also shown in the channel, does.
    reply = api.call(POST, {"thread_ts": message.ts, "reply_broadcast": True, "text": thread.reply})
    return Outcome(sent, "updated", reply_error=None if reply.ok else reply.error or "the reply failed")


#: mrkdwn's formatting characters: a zero-width space after each keeps payload text from pairing
#: into bold, italics, strike-through, code or an :emoji: (Slack has no escape for them).
_FORMATTING = re.compile(r"([*_~`:])")


def literal(text: str) -> str:
    """Payload text for a mrkdwn ``text``: ``& < >`` as entities (no mention, no link), and no
    formatting character able to pair up."""
    from translators.formats import escape_entities

    return _FORMATTING.sub("\\1\u200b", escape_entities(text))


def message_text(n: Notification) -> str:
    """The message's ``text``: the heading (payload text made literal) and the channel's mentions."""
    from translators.formats import OUTCOME_EMOJI
    from translators.formats.slack import FORMAT as SLACK

    line = f"{n.emoji or OUTCOME_EMOJI.get(n.outcome, '')} {literal(n.heading)}".strip()
    return f"{line} cc {SLACK.mentions(n.mentions)}" if n.mentions else line


def retryable(sent: DeliveryResult, method_error: str | None) -> bool:
    """Another attempt could mend it: no answer, 408/429/5xx, or an error Slack calls temporary."""
    if sent.outcome != "failed":
        return False
    return (sent.status != 200 and transient_http(sent.status)) or method_error in TRANSIENT


class SlackApp:
    """A Slack app channel: one message per build, posted and updated in place."""

    name: ClassVar[str] = "slack-app"
    keeps_one_message: ClassVar[bool] = True

    def state(
        self, channel: Channel, n: Notification, body: dict[str, Any], update_only: Skip | None
    ) -> dict[str, Any] | None:
        text = message_text(n)
        broadcast = any(fnmatchcase(n.event, pattern) for pattern in channel.broadcast)
        return Thread(
            key=n.message_key,
            stage=n.stage,
            reply=text if broadcast else None,
            update_only=update_only is not None,
            skip=(update_only.reason, update_only.message) if update_only is not None else None,
            text=text,
        ).dump()

    def has_message(self, channel: Channel, key: str, memory: Memory) -> bool:
        _, message = memory.message(key, channel.name)
        return message is not None and message.ts is not None

    def plan(self, p: Prepared, memory: Memory) -> dict[str, Any]:
        return {"slack_message": plan(p.channel, Thread.load(p.state), memory)}

    def send(self, p: Prepared, ctx: Context) -> ChannelResult:
        thread = Thread.load(p.state)
        with admitted(p.channel.name) as ok:
            if not ok:
                return p.result("failed", reason="busy", error=BUSY, retry=True)
            context = {"request_id": ctx.request_id, "channel": p.channel.name, "format": p.fmt.name}
            done = send(p.channel, p.body, thread, ctx.memory, ctx.policy, context)
            sent = done.sent
            fallback: str | None = None
            if sent is not None and not sent.ok and p.template != MINIMAL_TEMPLATE:
                minimal = p.minimal()
                if minimal is not None and is_rejected(sent.status or 0, sent.error or ""):
                    log.warning(
                        "channel %s refused the body of template %s (%s); sending the minimal message",
                        p.channel.name,
                        p.template,
                        sent.error,
                    )
                    fallback = f"rejected: {sent.error}"
                    done = send(p.channel, minimal, thread, ctx.memory, ctx.policy, context)
        extra: dict[str, Any] = {"slack_message": done.action}
        if done.reply_error:
            extra["reply_error"] = done.reply_error
        if done.sent is None:
            if done.action == "waiting":  # the outbox tries it again shortly, after the post
                return p.result(
                    "failed", reason="message_in_progress", error=done.message, extra=extra, retry=True
                )
            skip = thread.skip if thread is not None and thread.skip else None
            if done.action == "not_posted" and skip is not None:
                return p.result("skipped", reason=skip[0], message=skip[1], extra=extra)
            return p.result("skipped", reason=done.action, message=done.message, extra=extra)
        error = error_of(done.sent.error)
        # An update with no answer in time is sent again (chat.update is idempotent), and the
        # broadcast reply follows it; a post is not (a second one would be a second message).
        again = retryable(done.sent, error) or (done.sent.outcome == "unknown" and done.action == "updated")
        result = result_of(p, done.sent, hint, retry=again)
        changes: dict[str, Any] = {"extra": extra, "retry": again}
        if fallback is not None:
            changes |= {"template": MINIMAL_TEMPLATE, "fallback": fallback}
        if done.message and result.message is None:
            changes["message"] = done.message
        return replace(result, **changes)


DESTINATION = SlackApp()
