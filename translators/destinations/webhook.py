"""Incoming webhooks: Slack, Teams Workflows and legacy MessageCard connectors, a message per event.

Each format's webhook answers in its own way, so success, refusal and hints are per format here
(``RULES``); the format itself only makes and checks the body. When a webhook refuses the rich
body as malformed (Slack ``invalid_blocks``, a Teams 400), the format's minimal message is sent
once instead, and the result says ``fallback: "rejected: <error>"``.

A failure is ``retry`` when another attempt could mend it: no connection, a timeout, 408, 429 or
5xx. Anything else (every other 4xx, a body refused in both forms) is refused for good, and the
deliverer keeps it as a dead letter to replay after the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from translators import logs
from translators.destinations import (
    BUSY,
    MINIMAL_TEMPLATE,
    Context,
    admitted,
    result_of,
    transient_http,
)

if TYPE_CHECKING:
    from translators.deliverer import Prepared
    from translators.delivery import DeliveryResult
    from translators.memory import Memory
    from translators.model import Notification
    from translators.results import ChannelResult
    from translators.rules import Skip
    from translators.settings import Channel

log = logs.logger("translators.destinations.webhook")

#: Slack's answers that mean it refused the body itself: the minimal message may still get through.
SLACK_REJECTED = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "invalid_payload", "invalid_attachments"}
)
#: What to do about Slack's errors with a known meaning
#: (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/).
SLACK_HINTS = {
    "no_service": "the incoming webhook was revoked or its Slack app removed: create a new webhook "
    "(api.slack.com/apps -> Incoming Webhooks) and update CHANNEL_<NAME>_URL",
    "no_active_hooks": "the app's incoming webhooks are turned off: turn them on or create a new webhook",
    "channel_not_found": "the webhook's channel was deleted or the app lost access to it: "
    "create a new webhook",
    "channel_is_archived": "the webhook's channel is archived: unarchive it, or create a webhook "
    "for another channel",
    "invalid_token": "the webhook's token is no longer valid: create a new webhook and update "
    "CHANNEL_<NAME>_URL",
    "action_prohibited": "a workspace admin restricted posting to this channel: ask them, or use "
    "another channel",
    "posting_to_general_channel_denied": "only admins may post in #general: use another channel",
}
WORKFLOWS_GONE = (
    "the Workflows URL is wrong, or its flow was deleted or turned off (a flow stops when its "
    "owner leaves): in Teams, create a new 'Post to a channel when a webhook request is "
    "received' workflow and update CHANNEL_<NAME>_URL"
)
CONNECTOR_RETIRED = (
    "Office 365 connectors were retired in 2026: use a Teams Workflows webhook with "
    "CHANNEL_<NAME>_FORMAT=teams instead"
)


@dataclass(frozen=True)
class Rules:
    """How one format's webhook answers: success, a refused body, and hints for known errors."""

    is_success: Callable[[int, str], bool]
    is_rejected: Callable[[int, str], bool]
    hint: Callable[[int | None, str], str | None]
    #: What the webhook answers when it takes a message (status, body): the local inbox answers so.
    accepted: tuple[int, str]


def _slack_hint(status: int | None, text: str) -> str | None:
    return SLACK_HINTS.get(text.strip())


def _teams_hint(status: int | None, text: str) -> str | None:
    if status in (401, 403, 404):
        return WORKFLOWS_GONE
    if status == 429:
        return "Workflows throttles more than about 4 requests a second: slow this channel down"
    return None


def _connector_hint(status: int | None, text: str) -> str | None:
    return CONNECTOR_RETIRED if status in (401, 403, 404, 410) else None


RULES: dict[str, Rules] = {
    # Slack answers 200 "ok", and 400 with an error word for a body it refuses.
    "slack": Rules(
        is_success=lambda status, text: status == 200 and text.strip() == "ok",
        is_rejected=lambda status, text: status == 400 and text.strip() in SLACK_REJECTED,
        hint=_slack_hint,
        accepted=(200, "ok"),
    ),
    # Workflows answers 202 Accepted: accepted by the flow, not proven posted.
    "teams": Rules(
        is_success=lambda status, text: 200 <= status < 300,
        is_rejected=lambda status, text: status == 400,
        hint=_teams_hint,
        accepted=(202, ""),
    ),
    # The connector answers 200 "1"; a 200 with any other body (throttling was seen so) failed.
    "teams-messagecard": Rules(
        is_success=lambda status, text: status == 200 and text.strip() == "1",
        is_rejected=lambda status, text: status == 400,
        hint=_connector_hint,
        accepted=(200, "1"),
    ),
}


class Webhook:
    name: ClassVar[str] = "webhook"
    keeps_one_message: ClassVar[bool] = False

    def state(
        self, channel: Channel, n: Notification, body: dict[str, Any], update_only: Skip | None
    ) -> dict[str, Any] | None:
        # Only the build: its events reach the channel in the order they came.
        return {"key": n.message_key} if n.message_key else None

    def has_message(self, channel: Channel, key: str, memory: Memory) -> bool:
        return False

    def plan(self, p: Prepared, memory: Memory) -> dict[str, Any]:
        return {}

    def send(self, p: Prepared, ctx: Context) -> ChannelResult:
        rules = RULES[p.fmt.name]
        with admitted(p.channel.name) as ok:
            if not ok:
                return p.result("failed", reason="busy", error=BUSY, retry=True)
            sent = self._post(p, p.body, rules, ctx)
            refused = sent.outcome == "failed" and sent.final and p.template != MINIMAL_TEMPLATE
            if refused and rules.is_rejected(sent.status or 0, sent.error or ""):
                minimal = p.minimal()
                if minimal is not None:
                    return self._fallback(p, sent, minimal, rules, ctx)
            return result_of(p, sent, rules.hint, retry=transient_http(sent.status))

    @staticmethod
    def _post(p: Prepared, body: dict[str, Any], rules: Rules, ctx: Context) -> DeliveryResult:
        from translators import delivery  # requests is imported only when something is sent
        from translators.formats import dumps

        assert p.channel.url is not None, "a webhook channel has a URL"
        context = {"request_id": ctx.request_id, "channel": p.channel.name, "format": p.fmt.name}
        return delivery.deliver(
            p.channel.url.get_secret_value(),
            dumps(body),
            is_success=rules.is_success,
            policy=ctx.policy,
            context=context,
        )

    def _fallback(
        self, p: Prepared, refused: DeliveryResult, minimal: dict[str, Any], rules: Rules, ctx: Context
    ) -> ChannelResult:
        """The destination refused the body: send the minimal message once, and say why."""
        log.warning(
            "channel %s refused the body of template %s (%s %s); sending the minimal message instead",
            p.channel.name,
            p.template,
            refused.status,
            refused.error,
        )
        sent = self._post(p, minimal, rules, ctx)
        return replace(
            result_of(p, sent, rules.hint, retry=transient_http(sent.status)),
            template=MINIMAL_TEMPLATE,
            fallback=f"rejected: {refused.error or refused.status}",
            attempts=(refused.attempts or 0) + (sent.attempts or 0),
        )


DESTINATION = Webhook()
