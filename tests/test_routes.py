"""Channels that choose branches and apps: CHANNEL_<NAME>_BRANCHES and _APPS, with _STRICT."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.chatserver import ChatServer
from tests.conftest import path_of, post, sample
from translators import pipeline, rules, settings
from translators.model import Notification

XCODE = json.loads(sample("xcodecloud/build-failed").body())  # app 6450012345 "Acme Field", branch main


def on(branch: str | None = None, tag: str | None = None, run: str = "r1") -> dict[str, Any]:
    body = copy.deepcopy(XCODE)
    body["ciBuildRun"]["id"] = run
    reference = body["scmGitReference"]["attributes"]
    if tag is not None:
        reference.update(name=tag, kind="TAG")
    elif branch is not None:
        reference.update(name=branch, kind="BRANCH")
    else:
        del body["scmGitReference"]
    return body


def channel(**values: str) -> settings.Channel:
    env = {"CHANNEL_C_URL": "https://hooks.slack.com/services/T1/B2/abc"}
    env |= {f"CHANNEL_C_{k.upper()}": v for k, v in values.items()}
    loaded = settings.load(env)
    assert loaded.channel_errors == {}, loaded.channel_errors
    return loaded.channel("c")


def skip(c: settings.Channel, n: Notification) -> str | None:
    found = rules.skip_reason(c, n, None, True)
    return found.reason if found else None


def n_of(body: dict[str, Any], env: dict[str, str] | None = None) -> Notification:
    from translators import sources

    source = sources.get("xcodecloud")
    assert source is not None
    result = source.translate(body, {})
    assert isinstance(result, Notification)
    return pipeline.named(result, settings.load(env or {}))


@pytest.mark.parametrize(
    ("patterns", "taken", "skipped"),
    [
        ("main", ["main"], ["feature/x", "mainline", "release/2.4"]),
        ("main,release/*", ["main", "release/2.4"], ["feature/x", "release"]),
        ("*", ["main", "feature/x"], []),
        ("!main", ["feature/x", "release/2.4"], ["main"]),
        ("release/*,!release/old-*", ["release/2.4"], ["release/old-1", "main"]),
    ],
)
def test_branches_take_the_branches_their_patterns_match(
    patterns: str, taken: list[str], skipped: list[str]
) -> None:
    c = channel(branches=patterns)
    for branch in taken:
        assert skip(c, n_of(on(branch))) is None, branch
    for branch in skipped:
        assert skip(c, n_of(on(branch))) == "branch_filter", branch


def test_tags_have_patterns_of_their_own() -> None:
    c = channel(branches="main,tag:v*")
    assert skip(c, n_of(on(tag="v2.4.0"))) is None
    assert skip(c, n_of(on(tag="nightly-12"))) == "branch_filter"
    assert skip(channel(branches="*"), n_of(on(tag="v2.4.0"))) == "branch_filter", (
        "a branch pattern is not a tag one"
    )
    assert skip(channel(branches="tag:*"), n_of(on("main"))) == "branch_filter"
    assert skip(channel(branches="!tag:nightly-*"), n_of(on(tag="v2.4.0"))) is None
    assert skip(channel(branches="!tag:nightly-*"), n_of(on(tag="nightly-12"))) == "branch_filter"


def test_an_event_without_branch_or_tag_passes_unless_strict() -> None:
    assert skip(channel(branches="main"), n_of(on(None))) is None
    assert skip(channel(branches="main", branches_strict="true"), n_of(on(None))) == "branch_filter"
    assert skip(channel(branches="main", branches_strict="yes"), n_of(on("main"))) is None


@pytest.mark.parametrize(
    ("apps", "env", "taken"),
    [
        ("6450012345", {}, True),  # the id the payload carries
        ("acme field", {}, True),  # the payload's name, any case
        ("Acme*", {}, True),
        ("Field Service", {"APP_NAMES": "xcodecloud:6450012345=Field Service"}, True),  # the team's name
        ("other-app,9999", {}, False),
        ("!acme field", {}, False),
        ("!acme shop", {}, True),
    ],
)
def test_apps_take_their_apps_by_id_or_name(apps: str, env: dict[str, str], taken: bool) -> None:
    assert skip(channel(apps=apps), n_of(on("main"), env)) == (None if taken else "app_filter")


def test_an_event_without_an_app_passes_unless_strict() -> None:
    body = on("main")
    del body["app"], body["ciProduct"]
    assert skip(channel(apps="6450012345"), n_of(body)) is None
    assert skip(channel(apps="6450012345", apps_strict="1"), n_of(body)) == "app_filter"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"BRANCHES_STRICT": "true"}, "CHANNEL_C_BRANCHES_STRICT is set, but CHANNEL_C_BRANCHES is not"),
        ({"BRANCHES": "main", "BRANCHES_STRICT": "maybe"}, "CHANNEL_C_BRANCHES_STRICT must be true or false"),
        ({"APPS_STRICT": "on"}, "CHANNEL_C_APPS_STRICT is set, but CHANNEL_C_APPS is not"),
        ({"BRANCHES": "main,tag:"}, "CHANNEL_C_BRANCHES has an empty pattern 'tag:'"),
        ({"BRANCHES": "!"}, "CHANNEL_C_BRANCHES has an empty pattern '!'"),
    ],
)
def test_wrong_filters_break_the_channel_naming_the_setting(values: dict[str, str], words: str) -> None:
    env = {"CHANNEL_C_URL": "https://hooks.slack.com/services/T1/B2/abc"}
    env |= {f"CHANNEL_C_{k}": v for k, v in values.items()}
    errors = settings.load(env).channel_errors
    assert words in errors["c"], errors


def test_filters_show_in_settings_and_health(channels: dict[str, str]) -> None:
    env = channels | {
        "CHANNEL_SLACK_BRANCHES": "main,tag:v*",
        "CHANNEL_SLACK_APPS": "Acme Field",
        "CHANNEL_SLACK_APPS_STRICT": "true",
    }
    shown = next(c for c in pipeline.health(settings.load(env)).body["channels"] if c["name"] == "slack")
    assert shown["branches"] == ["main", "tag:v*"] and shown["apps"] == ["acme field", "(strict)"]


def test_failures_on_main_to_alerts_and_everything_to_builds(
    chat: ChatServer, channels: dict[str, str]
) -> None:
    """The docs' example: #mobile-alerts hears of failures on main, #mobile-builds of everything."""
    env = channels | {
        "CHANNEL_SLACK_EVENTS": "build.failed",
        "CHANNEL_SLACK_BRANCHES": "main",
        "CHANNEL_SLACK_APPS": "Acme Field",
    }
    main = post(env, "xcodecloud", "slack+teams", on("main", run="on-main"))
    assert [c["status"] for c in main.body["channels"]] == ["delivered", "delivered"]
    feature = post(env, "xcodecloud", "slack+teams", on("feature/x", run="on-feature"), {}, {"dry_run": "1"})
    slack, teams = feature.body["channels"]
    assert (slack["status"], slack["reason"]) == ("skipped", "branch_filter")
    assert "'feature/x' is not among CHANNEL_SLACK_BRANCHES (main)" in slack["message"]
    assert teams["status"] == "dry_run"
    other = on("main", run="other-app")
    other["app"]["id"] = "6459999999"
    other["ciProduct"]["attributes"]["name"] = "Acme Shop"
    answer = post(env, "xcodecloud", "slack", other)
    assert (answer.body["status"], answer.body["channels"][0]["reason"]) == ("skipped", "app_filter")
    assert len(chat.at(path_of(env, "slack"))) == 1


def test_check_says_what_each_filtered_channel_takes(tmp_path: Any) -> None:
    from tests.localserve import run_cli

    env = {
        "CHANNEL_ALERTS_URL": "https://hooks.slack.com/services/T1/B2/abc",
        "CHANNEL_ALERTS_EVENTS": "build.failed",
        "CHANNEL_ALERTS_BRANCHES": "main",
        "CHANNEL_ALERTS_APPS": "acme field",
        "CHANNEL_ALL_URL": "https://hooks.slack.com/services/T1/B2/def",
    }
    result = run_cli("check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("channel alerts:"))
    assert line.startswith("channel alerts: takes 1 (xcodecloud/build-failed); skips ")
    assert "event_filter" in line and "app_filter" in line
    assert "channel all:" not in result.stdout, "a channel without filters takes everything: nothing to say"
