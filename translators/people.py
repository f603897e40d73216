"""Who an event concerns, and whom a channel mentions: only ever from configuration.

``MENTIONS`` maps a person as a platform names them (a git username or email, an Appflow user,
Bitrise's ``triggered_by``) to their chat accounts::

    {"dana@example.com": {"slack": "U012AB3CD", "teams": "dana@contoso.com", "name": "Dana"}}

``CHANNEL_<NAME>_MENTION`` says when a channel mentions the people of an event (``failures``,
``always``, ``never``) and ``CHANNEL_<NAME>_NOTIFY`` adds fixed mentions to failures (user ids,
a user group, ``here``/``channel``, Teams users, or names of ``MENTIONS`` entries).

A mention is built here from configured ids alone and written by each chat format (Slack
``<@U…>``, Teams ``<at>Name</at>`` with its entity, a name where a format cannot mention). The
names inside a mention come from configuration too, never from a payload; payload text stays
escaped everywhere, so it can never produce a mention. A person with no mapping is not
mentioned: the message shows their name as the payload gave it, as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

MentionMode = Literal["failures", "always", "never"]
MENTION_MODES: tuple[MentionMode, ...] = ("failures", "always", "never")

SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,20}$")
#: Slack's broadcasts; ``everyone`` is left out on purpose (it reaches the whole workspace).
BROADCASTS = ("here", "channel")
TEAMS_UPN = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
TEAMS_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
#: A name written inside a mention: letters, digits, spaces and a little punctuation, so that it
#: is the same text in a Teams card and in its mention entity, and never markup anywhere.
NAME = re.compile(r"^[\w][\w .'()-]{0,79}$")
#: Keys are how payloads name people: no need for control characters or very long ones.
KEY = re.compile(r"^[^\x00-\x1f]{1,200}$")


@dataclass(frozen=True)
class Person:
    """One ``MENTIONS`` entry."""

    key: str
    name: str
    slack: str | None = None
    teams: str | None = None


@dataclass(frozen=True)
class Mention:
    """One mention to make. ``slack`` is a user id (``U…``/``W…``), a user group (``S…``) or a
    broadcast (``here``, ``channel``); ``teams`` a UPN or an Entra object id; ``name`` is shown
    where the format cannot mention, or has no id for this person."""

    name: str
    slack: str | None = None
    teams: str | None = None

    @property
    def slack_kind(self) -> Literal["user", "usergroup", "broadcast"] | None:
        if self.slack is None:
            return None
        if self.slack in BROADCASTS:
            return "broadcast"
        return "usergroup" if self.slack.startswith("S") else "user"


class Mentions(tuple[Mention, ...]):
    """The mentions of one message for one channel; each format writes them its own way."""

    __slots__ = ()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, cls) else cls(value)
        )


NONE = Mentions()


def parse_directory(value: str, read: Callable[[str], str]) -> dict[str, Person]:
    """``MENTIONS``: a JSON object, or the path of a file holding one (``read`` reads it).

    Keys are matched case-insensitively. ValueError names the entry and what is wrong with it.
    """
    text = value.strip()
    if not text.startswith(("{", "[")):
        try:
            text = read(text)
        except OSError as exc:
            raise ValueError(f"names a file that cannot be read ({type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object of people")
    people: dict[str, Person] = {}
    for key, entry in data.items():
        person = _person(str(key), entry)
        people[person.key.lower()] = person
    return people


def _person(key: str, entry: Any) -> Person:
    where = f"entry {key[:60]!r}"
    if not KEY.match(key) or not key.strip():
        raise ValueError(f"{where}: a key is how a platform names someone (an email, a username)")
    if not isinstance(entry, dict):
        raise ValueError(
            f'{where} must be an object like {{"slack": "U012AB3CD", "teams": "dana@contoso.com"}}'
        )
    unknown = sorted(set(entry) - {"slack", "teams", "name"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; use slack, teams and name")
    slack, teams, name = entry.get("slack"), entry.get("teams"), entry.get("name")
    if slack is not None and not (isinstance(slack, str) and SLACK_USER.match(slack)):
        raise ValueError(
            f"{where}: slack must be a Slack member id like U012AB3CD (profile -> ⋯ -> Copy member ID)"
        )
    if teams is not None and not (
        isinstance(teams, str) and (TEAMS_UPN.match(teams) or TEAMS_OBJECT_ID.match(teams))
    ):
        raise ValueError(
            f"{where}: teams must be a user principal name (dana@contoso.com) or an Entra object id"
        )
    if slack is None and teams is None:
        raise ValueError(f"{where}: give slack, teams or both")
    shown = name if name is not None else key.split("@", 1)[0]
    if not (isinstance(shown, str) and NAME.match(shown.strip())):
        raise ValueError(f"{where}: name must be letters, digits, spaces and . ' ( ) - (at most 80)")
    return Person(key.strip(), shown.strip(), slack, teams)


def parse_notify(value: str, people: Mapping[str, Person]) -> tuple[Mention, ...]:
    """``CHANNEL_<NAME>_NOTIFY``: comma-separated fixed mentions; ValueError names a token it cannot read."""
    found: list[Mention] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token:
            continue
        found.append(_notify_token(token, people))
    return tuple(dict.fromkeys(found))


def _notify_token(token: str, people: Mapping[str, Person]) -> Mention:
    bare = token.removeprefix("<").removesuffix(">").removeprefix("!").removeprefix("@")
    if bare.lower() in BROADCASTS:
        return Mention(f"@{bare.lower()}", slack=bare.lower())
    if bare.lower().startswith("subteam^"):
        group, _, label = bare.split("^", 1)[1].partition("|")
        label = label.strip().removeprefix("@")
        if SLACK_GROUP.match(group) and (not label or NAME.match(label)):
            return Mention(label or group, slack=group)
    if SLACK_GROUP.match(bare) or SLACK_USER.match(bare):
        return Mention(bare, slack=bare)
    person = people.get(token.lower())
    if person is not None:
        return Mention(person.name, slack=person.slack, teams=person.teams)
    if TEAMS_UPN.match(token) or TEAMS_OBJECT_ID.match(token):
        return Mention(token.split("@", 1)[0], teams=token)
    raise ValueError(
        f"{token[:60]!r} is not a Slack user or group id (U…, S…, <!subteam^S…|name>), here, channel,"
        " a Teams user (UPN or object id), or a MENTIONS entry"
    )


def of_event(
    outcome: str,
    people_keys: Iterable[str],
    mode: MentionMode,
    notify: tuple[Mention, ...],
    directory: Mapping[str, Person],
) -> Mentions:
    """Whom one channel mentions for one event: the event's people that ``MENTIONS`` maps, when
    ``mode`` says so, then the channel's fixed mentions on a failure. Never a guess."""
    failure = outcome == "failure"
    found: list[Mention] = []
    if mode == "always" or (mode == "failures" and failure):
        for key in people_keys:
            person = directory.get(key.strip().lower())
            if person is not None:
                found.append(Mention(person.name, slack=person.slack, teams=person.teams))
    if failure:
        found.extend(notify)
    return Mentions(dict.fromkeys(found)) if found else NONE
