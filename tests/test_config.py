"""Channels from app settings: names, formats by host, errors that name the channel and never the URL."""

from __future__ import annotations

import pytest

from translators import config
from translators.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("https://hooks.slack.com/services/fake/fake/fake", "slack"),
        ("https://contoso.webhook.office.com/webhookb2/fake", "teams-messagecard"),
        (
            "https://prod-01.westeurope.logic.azure.com:443/workflows/fake/triggers/manual/paths/invoke",
            "teams",
        ),
        ("https://default0000.00.environment.api.powerplatform.com/powerautomate/fake", "teams"),
        ("https://chat.example.com/hook", None),
        ("https://evil-hooks.slack.com.example.com/x", None),
    ],
)
def test_format_by_host(url: str, fmt: str | None) -> None:
    assert config.format_for_host(url) == fmt


def test_channels_from_env() -> None:
    settings = config.load(
        {
            "CHANNEL_SLACK_URL": "https://hooks.slack.com/services/fake/fake/fake",
            "CHANNEL_Ops_Teams_URL": "https://chat.example.com/hook",
            "CHANNEL_OPS_TEAMS_FORMAT": "Teams",
            "CHANNEL_OPS_TEAMS_TEMPLATES": "/srv/templates/ops",
            "TEMPLATES_DIR": "/srv/templates",
            "UNRELATED": "x",
        }
    )
    assert set(settings.channels) == {"slack", "ops-teams"}
    assert settings.channel("OPS_TEAMS").format == "teams"
    assert settings.channel("ops-teams").templates == "/srv/templates/ops"
    assert settings.channel("Slack").format == "slack"
    assert settings.templates_dir == "/srv/templates"
    assert settings.channel_errors == {}


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"CHANNEL_X_URL": "https://chat.example.com/SECRETPATH"}, "CHANNEL_X_FORMAT"),
        (
            {"CHANNEL_X_URL": "https://chat.example.com/SECRETPATH", "CHANNEL_X_FORMAT": "discord"},
            "must be one of",
        ),
        ({"CHANNEL_X_URL": "ftp://chat.example.com/SECRETPATH"}, "not an http(s) URL"),
        ({"CHANNEL_X_FORMAT": "slack"}, "CHANNEL_X_URL is not set"),
    ],
)
def test_configuration_errors_name_the_channel_not_the_url(env: dict[str, str], words: str) -> None:
    settings = config.load(env)
    assert "x" in settings.channel_errors
    message = settings.channel_errors["x"]
    assert "'x'" in message and words in message
    assert "SECRETPATH" not in message
    with pytest.raises(ConfigurationError) as err:
        settings.channel("x")
    assert err.value.status == 503


def test_channel_repr_hides_url() -> None:
    settings = config.load({"CHANNEL_A_URL": "https://hooks.slack.com/services/fake/SECRET/fake"})
    channel = settings.channel("a")
    assert "SECRET" not in repr(channel) and "SECRET" not in str(settings)
    assert "SECRET" not in str(channel.public())


def test_local_settings_sample_is_a_valid_configuration() -> None:
    import json
    from pathlib import Path

    values = json.loads((Path(__file__).resolve().parent.parent / "local.settings.sample.json").read_text())[
        "Values"
    ]
    settings = config.load(values)
    assert settings.channel_errors == {}
    assert {name: c.format for name, c in settings.channels.items()} == {
        "slack": "slack",
        "teams": "teams",
        "legacy": "teams-messagecard",
    }
