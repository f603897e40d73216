"""App names and mentions: only configuration names apps and mentions people (translators/people.py).

Payload text that looks like a mention in any format (``<@U999>``, ``<!subteam^S1>``,
``<!channel>``, ``<at>x</at>``) stays text; a person with no mapping is shown by name, never
guessed; each format writes the configured mentions its own way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import crosscheck
from tests.conftest import post, sample
from translators import formats, pipeline, settings
from translators.model import Notification
from translators.people import Mention, Person, of_event, parse_directory, parse_notify
from translators.samples import all_samples
from translators.samples import notification as sample_notification

DANA = {"dana": {"slack": "U012AB3CD", "teams": "dana@contoso.com", "name": "Dana"}}
HOSTILE = "<@U999> <!subteam^S1> <!channel> <!here> <at>Dana</at> <at>x</at> @channel"


def read_nothing(path: str) -> str:
    raise FileNotFoundError(path)


# -- APP_NAMES ---------------------------------------------------------------------------------


def test_every_source_names_its_app_by_the_id_samples_shows() -> None:
    plain = settings.load({})
    for s in all_samples():
        # With what the platform's API answered, where a source asks one: App Store Connect's
        # webhooks carry no app, its id comes from the API (which knows none for a failed upload).
        n = sample_notification(s, plain)
        if not isinstance(n, Notification):
            continue
        if n.app_key is None:
            assert s.source == "appstoreconnect", s.id
            continue
        loaded = settings.load({"APP_NAMES": json.dumps({f"{s.source}:{n.app_key}": "Team Name"})})
        assert loaded.errors == {}
        named = pipeline.named(n, loaded)
        assert named.app_display == "Team Name", s.id
        assert named.summary.startswith("Team Name: "), (s.id, named.summary)
        assert named.title == n.title


@pytest.mark.parametrize(
    "value",
    [
        "bitrise:305da28f92b6b419=Acme iOS, applivery:5e790ce04faa50cac52e4676=Acme Field",
        '{"bitrise:305da28f92b6b419": "Acme iOS", "APPLIVERY:5e790ce04faa50cac52e4676": "Acme Field"}',
    ],
)
def test_app_names_are_pairs_or_json(value: str) -> None:
    loaded = settings.load({"APP_NAMES": value})
    assert loaded.errors == {}
    assert loaded.app_name("bitrise", "305da28f92b6b419") == "Acme iOS"
    assert loaded.app_name("applivery", "5e790ce04faa50cac52e4676") == "Acme Field"
    assert loaded.app_name("bitrise", "other") is None


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("bitrise:abc", "is not source:app-id=Name"),
        ("jenkins:abc=Name", "unknown source 'jenkins'"),
        ("abc=Name", "must start with source:app-id"),
        ("bitrise:abc=", "the name must be 1-100 characters"),
        ('{"bitrise:abc": 3}', 'must map "source:app-id" to a name'),
        ("{not json", "is not valid JSON"),
    ],
)
def test_a_wrong_app_names_entry_is_named(value: str, said: str) -> None:
    error = settings.load({"APP_NAMES": value}).errors["APP_NAMES"]
    assert error.startswith("APP_NAMES ") and said in error


def test_the_samples_command_shows_each_samples_app_id(capsys: pytest.CaptureFixture[str]) -> None:
    from translators import cli

    assert cli.main(["samples"]) == 0
    out = capsys.readouterr().out
    assert "bitrise:305da28f92b6b419" in out and "applivery:5e790ce04faa50cac52e4676" in out
    assert cli.main(["samples", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"app": "appflow:abcd1234"}.items() <= next(
        x for x in listed if x["id"] == "appflow/web-success"
    ).items()


# -- MENTIONS and NOTIFY ---------------------------------------------------------------------------


def test_mentions_is_json_or_a_file(tmp_path: Path) -> None:
    people = parse_directory(json.dumps(DANA), read_nothing)
    assert people == {"dana": Person("dana", "Dana", "U012AB3CD", "dana@contoso.com")}
    file = tmp_path / "mentions.json"
    file.write_text(json.dumps({"Dana@Example.com": {"teams": "0b7a4e2c-9a51-4c77-8d3f-2f1e6b0c9d11"}}))
    loaded = settings.load({"MENTIONS": str(file)})
    assert loaded.errors == {}
    assert loaded.people["dana@example.com"] == Person(
        "Dana@Example.com", "Dana", None, "0b7a4e2c-9a51-4c77-8d3f-2f1e6b0c9d11"
    )


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"dana": {"slack": "dana"}}, "slack must be a Slack member id"),
        ({"dana": {"teams": "not an address"}}, "teams must be a user principal name"),
        ({"dana": {}}, "give slack, teams or both"),
        ({"dana": {"slack": "U012AB3CD", "email": "x"}}, "unknown field(s) email"),
        ({"dana": {"slack": "U012AB3CD", "name": "<!channel>"}}, "name must be letters"),
        ({"dana": "U012AB3CD"}, "must be an object"),
        ([1, 2], "must be a JSON object of people"),
    ],
)
def test_a_wrong_mentions_entry_is_named(entry: Any, said: str) -> None:
    error = settings.load({"MENTIONS": json.dumps(entry)}).errors["MENTIONS"]
    assert error.startswith("MENTIONS ") and said in error, error


def test_a_mentions_file_that_is_missing_is_named(tmp_path: Path) -> None:
    error = settings.load({"MENTIONS": str(tmp_path / "nope.json")}).errors["MENTIONS"]
    assert "names a file that cannot be read (FileNotFoundError)" in error


def test_notify_reads_every_kind_of_mention() -> None:
    people = parse_directory(json.dumps(DANA), read_nothing)
    found = parse_notify(
        "<!subteam^S0MOBILE1|@mobile-oncall>, subteam^S0QA, U0BOSS99, <@W0ADMIN1>, here, <!channel>,"
        " oncall@contoso.com, Dana",
        people,
    )
    assert found == (
        Mention("mobile-oncall", slack="S0MOBILE1"),
        Mention("S0QA", slack="S0QA"),
        Mention("U0BOSS99", slack="U0BOSS99"),
        Mention("W0ADMIN1", slack="W0ADMIN1"),
        Mention("@here", slack="here"),
        Mention("@channel", slack="channel"),
        Mention("oncall", teams="oncall@contoso.com"),
        Mention("Dana", slack="U012AB3CD", teams="dana@contoso.com"),
    )


def test_a_wrong_notify_token_breaks_that_channel_alone() -> None:
    loaded = settings.load(
        {
            "CHANNEL_A_URL": "https://hooks.slack.com/services/T0/B0/a",
            "CHANNEL_A_NOTIFY": "everyone",
            "CHANNEL_B_URL": "https://hooks.slack.com/services/T0/B0/b",
            "CHANNEL_B_MENTION": "sometimes",
            "CHANNEL_C_URL": "https://hooks.slack.com/services/T0/B0/c",
        }
    )
    assert "CHANNEL_A_NOTIFY: 'everyone' is not a Slack user" in loaded.channel_errors["a"]
    assert "CHANNEL_B_MENTION must be one of failures, always, never" in loaded.channel_errors["b"]
    assert list(loaded.channels) == ["c"]


def test_health_shows_mention_settings_without_naming_anyone() -> None:
    loaded = settings.load(
        {
            "MENTIONS": json.dumps(DANA),
            "CHANNEL_A_URL": "https://hooks.slack.com/services/T0/B0/a",
            "CHANNEL_A_NOTIFY": "U0BOSS99,dana",
            "CHANNEL_A_MENTION": "always",
        }
    )
    shown = json.dumps(pipeline.health(loaded).body)
    assert '"mention": "always", "notify": 2' in shown
    assert "U0BOSS99" not in shown and "U012AB3CD" not in shown and "contoso" not in shown


@pytest.mark.parametrize(
    ("mode", "outcome", "expected"),
    [
        ("failures", "failure", ["Dana", "oncall"]),
        ("failures", "success", []),
        ("always", "success", ["Dana"]),
        ("always", "failure", ["Dana", "oncall"]),
        ("never", "failure", ["oncall"]),
    ],
)
def test_who_is_mentioned_when(mode: Any, outcome: str, expected: list[str]) -> None:
    people = parse_directory(json.dumps(DANA), read_nothing)
    notify = (Mention("oncall", slack="S0ONCALL"),)
    found = of_event(outcome, ("DANA", "stranger"), mode, notify, people)
    assert [m.name for m in found] == expected


def test_a_person_without_a_mapping_is_shown_by_name_never_mentioned() -> None:
    env = {
        "MENTIONS": json.dumps(DANA),
        "CHANNEL_S_URL": "https://hooks.slack.com/services/T0/B0/s",
        "CHANNEL_T_URL": "https://prod-1.westeurope.logic.azure.com/workflows/x/invoke?sig=1",
    }
    loaded = settings.load(env)
    n = sample_notification(sample("appflow/package-success"))  # built by Ionitron, whom nobody mapped
    assert isinstance(n, Notification) and n.people == ("ionitron", "Ionitron")
    for channel in ("s", "t"):
        prepared = pipeline.prepare(
            loaded.channel(channel), n.model_copy(update={"outcome": "failure"}), loaded
        )
        text = json.dumps(prepared.body)
        assert "Ionitron" in text
        assert '"type": "user"' not in text and "msteams" not in text and "<at>" not in text


# -- payload text never mentions ---------------------------------------------------------------------


def hostile_appflow() -> bytes:
    body = json.loads(sample("appflow/package-ios-failed").body())
    body["commit"]["note"] = HOSTILE
    body["commit"]["user"]["name"] = "<at>Dana</at>"
    body["automation"]["name"] = "<!subteam^S1>"
    return json.dumps(body).encode()


def test_payload_text_never_mentions_anyone_in_any_format(channels: dict[str, str]) -> None:
    env = channels | {
        "MENTIONS": json.dumps(DANA | {"danalee": {"slack": "U04DLEE77", "teams": "dana.lee@contoso.com"}}),
        "CHANNEL_SLACK_NOTIFY": "S0MOBILE1",
    }
    answer = post(env, "appflow", "slack+teams+legacy", hostile_appflow(), {}, {"dry_run": "1"})
    drawn = {c["channel"]: c["body"] for c in answer.body["channels"]}
    slack = drawn["slack"]
    elements = _rich_elements(slack)
    mentions = [e for e in elements if e["type"] in ("user", "usergroup", "broadcast", "channel")]
    # Dana Lee built it (username danalee, mapped) and the channel's group: nobody else.
    assert mentions == [
        {"type": "user", "user_id": "U04DLEE77"},
        {"type": "usergroup", "usergroup_id": "S0MOBILE1"},
    ]
    for text in _mrkdwn_texts(slack):  # the fallback carries our mentions; the footer our <!date>
        for payload_markup in ("<@U999", "<!subteam^S1", "<!channel", "<!here"):
            assert payload_markup not in text, (payload_markup, text)
    card = drawn["teams"]["attachments"][0]["content"]
    assert [e["mentioned"]["id"] for e in card["msteams"]["entities"]] == ["dana.lee@contoso.com"]
    assert crosscheck.check("teams", drawn["teams"]) == []
    teams_text = json.dumps(card["body"], ensure_ascii=False)
    # The only <at> tag is ours; the payload's is text in a TextRun, a word joiner after each "<"
    # so that Teams cannot match it to a mention entity.
    assert teams_text.count("<at>") == 1 and "<at>danalee</at>" in teams_text
    assert "<\u2060at>Dana<\u2060/at>" in teams_text
    legacy = json.dumps(drawn["legacy"], ensure_ascii=False)
    assert "<at>" not in legacy and "&lt;at&gt;" in legacy


def _rich_elements(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "type" in node and node.get("type") in (
            "text",
            "link",
            "user",
            "usergroup",
            "broadcast",
            "channel",
        ):
            found.append(node)
        for value in node.values():
            found += _rich_elements(value)
    elif isinstance(node, list):
        for value in node:
            found += _rich_elements(value)
    return found


def _mrkdwn_texts(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            found.append(node["text"])
        if isinstance(node.get("fallback"), str):
            found.append(node["fallback"])
        for value in node.values():
            found += _mrkdwn_texts(value)
    elif isinstance(node, list):
        for value in node:
            found += _mrkdwn_texts(value)
    return found


def test_the_teams_validator_takes_exactly_the_mention_extension() -> None:
    teams = formats.get("teams")
    assert teams is not None
    n = sample_notification(sample("bitrise/build-failed"))
    assert isinstance(n, Notification)
    loaded = settings.load(
        {
            "MENTIONS": json.dumps(DANA),
            "CHANNEL_T_URL": "https://prod-1.westeurope.logic.azure.com/workflows/x/invoke?sig=1",
            "CHANNEL_T_MENTION": "always",
        }
    )
    body = pipeline.prepare(loaded.channel("t"), n.model_copy(update={"people": ("dana",)}), loaded).body
    teams.validate(body)
    card = body["attachments"][0]["content"]

    def refused(change: dict[str, Any]) -> str:
        broken = json.loads(json.dumps(body))
        broken["attachments"][0]["content"]["msteams"] = change
        with pytest.raises(formats.OutputInvalid) as err:
            teams.validate(broken)
        return str(err.value)

    entity = card["msteams"]["entities"][0]
    assert "msteams" in refused({"entities": [entity], "unknown": 1})
    assert "no text of the card holds this mention" in refused(
        {
            "entities": [
                entity | {"text": "<at>Someone</at>", "mentioned": {"id": "x@contoso.com", "name": "Someone"}}
            ]
        }
    )
    assert "text" in refused({"entities": [entity | {"text": "<at><b>Dana</b></at>"}]})
    teams.validate(json.loads(json.dumps(body).replace('"msteams": {', '"msteams": {"width": "Full", ')))
