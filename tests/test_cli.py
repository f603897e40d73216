"""``python -m translators`` render, check, send, samples and --help, each run as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import bodies
from tests.chatserver import SUCCESS, ChatServer, Reply
from tests.localserve import ROOT, run_cli
from translators import samples

GOLDEN = ROOT / "tests" / "golden"
FAILED = samples.get("bitrise/build-failed")


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ((), "serve,render,check,send,samples"),
        (("serve",), "--host,--port,--settings,inbox"),
        (("render",), "SOURCE,FORMAT,PAYLOAD,--templates,-H"),
        (("check",), "--templates,line"),
        (("send",), "SOURCE,CHANNEL,PAYLOAD,--dry-run"),
        (("samples",), "--json"),
    ],
)
def test_help(command: tuple[str, ...], words: str, tmp_path: Path) -> None:
    result = run_cli(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: python -m translators {' '.join(command)}".rstrip())
    for word in words.split(","):
        assert word in result.stdout, word


# ---------------------------------------------------------------------------------------------
# render


def test_render_prints_the_body_a_channel_gets(tmp_path: Path) -> None:
    result = run_cli("render", "bitrise", "slack", str(FAILED.path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    # The bundled sample brings its Bitrise-Event-Type header; the output is the golden body.
    assert body == json.loads((GOLDEN / "slack" / "bitrise" / "build-failed.json").read_text())
    assert "Build #41 failed" in bodies.title("slack", body)
    assert "build.failed -> slack" in result.stderr and "slack/default.json.j2" in result.stderr


def test_auto_that_recognises_nothing_says_to_name_the_source_argument(tmp_path: Path) -> None:
    result = run_cli("render", "auto", "slack", "-", cwd=tmp_path, stdin=b'{"a": 1}')
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert "did not recognise" in first and "name the source (SOURCE)" in first
    assert "URL" not in first  # on the command line the source is an argument
    assert "Bitrise (bitrise)" in result.stderr  # what each platform is recognised by


def test_render_a_sample_id_with_auto_source_and_a_header(tmp_path: Path) -> None:
    result = run_cli("render", "auto", "teams", "appcenter/distribute", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(
        (GOLDEN / "teams" / "appcenter" / "distribute.json").read_text()
    )
    # -H overrides the sample's header: build/triggered makes the finished build a "started" one.
    started = run_cli(
        "render",
        "bitrise",
        "teams-messagecard",
        "-",
        "-H",
        "Bitrise-Event-Type: build/triggered",
        cwd=tmp_path,
        stdin=json.dumps({**json.loads(FAILED.body()), "build_status": 0}).encode(),
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["@type"] == "MessageCard"
    assert "build.started" in started.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("bitrise", "slack", "missing.json"), "no such file: missing.json"),
        (("bitrise", "slack", "not-json.json"), "not-json.json: the request body is not valid JSON"),
        (("bitrise", "slack", "array.json"), "array"),
        (("bitrise", "slack", "wrong.json", "-H", "Bitrise-Event-Type: build/finished"), "build_number"),
        (("jenkins", "slack", "wrong.json"), "unknown source 'jenkins'"),
        (("bitrise", "discord", "wrong.json"), "unknown format 'discord'"),
        (("bitrise", "slack", "wrong.json", "-H", "no colon"), "expected 'Name: value'"),
        (("bitrise", "slack", "wrong.json", "--templates", "nowhere"), "no template folder at nowhere"),
    ],
)
def test_render_bad_input_is_a_message_and_exit_2(args: tuple[str, ...], words: str, tmp_path: Path) -> None:
    (tmp_path / "not-json.json").write_text("{nope")
    (tmp_path / "array.json").write_text("[1]")
    (tmp_path / "wrong.json").write_text(json.dumps({"build_number": "x", "build_slug": "s"}))
    result = run_cli("render", *args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert words in result.stderr and result.stdout == ""


def broken_templates(root: Path) -> tuple[Path, int]:
    """A template folder: Slack's default with an unknown filter on a known line, an invalid Teams card."""
    folder = root / "tpl"
    (folder / "slack").mkdir(parents=True)
    (folder / "teams").mkdir()
    lines = (ROOT / "templates" / "slack" / "default.json.j2").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if '"fallback": "' in text)
    lines[line - 1] = lines[line - 1].replace(
        '"fallback": "', '"fallback": "{{ n.title | no_such_filter }}', 1
    )
    (folder / "slack" / "default.json.j2").write_text("\n".join(lines) + "\n")
    (folder / "teams" / "default.json.j2").write_text('{"type": "message", "attachments": []}\n')
    return folder, line


def test_render_reports_a_broken_template_with_its_line(tmp_path: Path) -> None:
    folder, line = broken_templates(tmp_path)
    result = run_cli(
        "render", "bitrise", "slack", "bitrise/build-failed", "--templates", str(folder), cwd=tmp_path
    )
    assert result.returncode == 1 and result.stdout == ""
    assert f"tpl/slack/default.json.j2, line {line}: No filter named 'no_such_filter'" in result.stderr


# ---------------------------------------------------------------------------------------------
# check


def test_check_passes_on_the_builtin_templates(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    # Every sample, and the mapped variants (app names, mentions) the preview draws too.
    drawn = len(samples.all_samples()) + len(samples.mapped_samples())
    assert f"OK: all {drawn * 3} bodies rendered and valid" in result.stdout
    assert "templates: built-in" in result.stdout


def test_check_names_template_line_and_field_of_each_problem(tmp_path: Path) -> None:
    folder, line = broken_templates(tmp_path)
    shutil.copytree(ROOT / "templates" / "teams-messagecard", folder / "teams-messagecard")
    (folder / "teams-messagecard" / "orphan").mkdir()
    (folder / "teams-messagecard" / "orphan" / "x.json.j2").write_text('{\n  "a": "{{ n.title }"\n}\n')
    result = run_cli("check", "--templates", str(folder), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert f"FAIL tpl/slack/default.json.j2, line {line}: No filter named 'no_such_filter'" in out
    assert "FAIL tpl/teams/default.json.j2: renders a teams body the destination would reject" in out
    assert "attachments: List should have at least 1 item" in out
    # A template no sample reaches is still compiled, and its syntax error located.
    assert "FAIL tpl/teams-messagecard/orphan/x.json.j2, line 2:" in out
    # Each problem once, with what ran into it: every sample in Slack, and the compile step.
    count = len(samples.all_samples()) + len(samples.mapped_samples())
    assert "3 problems" in out and f"hit by {count + 1}: {samples.all_samples()[0].id} -> slack" in out
    # The copied MessageCard templates are fine: every MessageCard body still rendered.
    assert f"; {count} of {count * 3} bodies rendered and valid" in out


def test_check_uses_templates_dir_from_local_settings(tmp_path: Path) -> None:
    folder, _ = broken_templates(tmp_path)
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"TEMPLATES_DIR": str(folder)}}))
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 1 and "FAIL tpl/slack/default.json.j2" in result.stdout


# ---------------------------------------------------------------------------------------------
# samples


def test_samples_lists_every_bundled_payload(tmp_path: Path) -> None:
    result = run_cli("samples", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "SOURCE", "EVENT", "APP", "HEADERS"]
    ids = [line.split()[0] for line in lines[1:]]
    assert ids == [s.id for s in samples.all_samples()]
    row = next(line for line in lines if line.startswith("bitrise/build-failed "))
    assert row.split()[1:4] == ["bitrise", "build.failed", "bitrise:305da28f92b6b419"]
    assert "Bitrise-Event-Type: build/finished" in row

    listed = json.loads(run_cli("samples", "--json", cwd=tmp_path).stdout)
    by_id = {r["id"]: r for r in listed}
    assert by_id["appcenter/distribute"]["event"] == "release.published"
    assert Path(by_id["bitrise/build-failed"]["path"]) == FAILED.path


# ---------------------------------------------------------------------------------------------
# send


def test_send_delivers_through_a_configured_channel(chat: ChatServer, tmp_path: Path) -> None:
    path = f"/workflows/SECRET{uuid.uuid4().hex}/invoke"
    chat.default(path, Reply(*SUCCESS["teams"]))
    env = {
        "CHANNEL_TEAMS_URL": chat.url(path),
        "CHANNEL_TEAMS_FORMAT": "teams",
        "STATE_STORE": f"sqlite://{tmp_path / 'state.db'}",
    }
    result = run_cli("send", "bitrise", "teams", str(FAILED.path), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "delivered" and answer["channels"][0]["http_status"] == 202
    [got] = chat.at(path)
    assert got.json()["attachments"][0]["content"]["type"] == "AdaptiveCard"
    assert "SECRET" not in result.stdout + result.stderr

    dry = run_cli("send", "bitrise", "teams", "bitrise/build-failed", "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0 and json.loads(dry.stdout)["status"] == "dry_run"
    assert len(chat.at(path)) == 1, "a dry run sends nothing"


def test_send_signs_as_the_platform_would_when_its_secret_is_set(chat: ChatServer, tmp_path: Path) -> None:
    path = f"/hook/slack/SECRET{uuid.uuid4().hex}"
    chat.default(path, Reply(*SUCCESS["slack"]))
    env = {
        "CHANNEL_BUILDS_URL": chat.url(path),
        "CHANNEL_BUILDS_FORMAT": "slack",
        "APPSTORECONNECT_WEBHOOK_SECRET": "the-webhook-secret",
        "STATE_STORE": f"sqlite://{tmp_path / 'state.db'}",
    }
    result = run_cli(
        "send", "appstoreconnect", "builds", "appstoreconnect/version-rejected", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "delivered"
    wrong = run_cli(
        "send",
        "appstoreconnect",
        "builds",
        "appstoreconnect/version-in-review",
        "-H",
        "x-apple-signature: hmacsha256=00",
        cwd=tmp_path,
        env=env,
    )
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["error"] == "unauthorized", (
        "a given header is kept"
    )
    assert len(chat.at(path)) == 1 and "the-webhook-secret" not in result.stdout + wrong.stdout


def test_send_reads_local_settings_and_fails_with_the_answer(chat: ChatServer, tmp_path: Path) -> None:
    path = f"/hook/slack/SECRET{uuid.uuid4().hex}"
    chat.default(path, Reply(404, "channel_not_found"))
    settings = tmp_path / "conf" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(
        json.dumps(
            {
                "Values": {
                    "CHANNEL_ALERTS_URL": chat.url(path),
                    "CHANNEL_ALERTS_FORMAT": "slack",
                    "STATE_STORE": f"sqlite://{tmp_path / 'state.db'}",
                }
            }
        )
    )
    result = run_cli(
        "send", "appcenter", "alerts", "appcenter/crash", "--settings", str(settings), cwd=tmp_path
    )
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["error"] == "delivery_failed" and "channel_not_found" in answer["channels"][0]["error"]
    assert len(chat.at(path)) == 1


def test_send_without_channels_says_how_to_configure_one(tmp_path: Path) -> None:
    result = run_cli("send", "bitrise", "slack", "bitrise/build-failed", cwd=tmp_path)
    assert result.returncode == 2, "an unknown channel is bad input"
    answer = json.loads(result.stdout)
    # The function's own answer says so (a Function App with no channels answers the same).
    assert answer["error"] == "unknown_channel" and "CHANNEL_<NAME>_URL" in answer["message"]
    assert f"error: {answer['message']}" in result.stderr


def test_send_bad_payload_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    result = run_cli("send", "bitrise", "slack", "empty.json", cwd=tmp_path)
    assert result.returncode == 2 and "empty.json: the request body is empty" in result.stderr


def test_send_prints_the_functions_answer_to_a_payload_its_source_refuses(tmp_path: Path) -> None:
    (tmp_path / "wrong.json").write_text(json.dumps({"build_number": "x", "build_slug": "s"}))
    env = {
        "CHANNEL_SLACK_URL": "https://hooks.slack.com/services/T1/B2/abc",
        "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
    }
    result = run_cli("send", "bitrise", "slack", "wrong.json", "--dry-run", cwd=tmp_path, env=env)
    answer = json.loads(result.stdout)
    assert result.returncode == 2 and answer["error"] == "invalid_payload"
    assert "build_number" in {e["path"] for e in answer["errors"]}
    assert f"error: {answer['message']}" in result.stderr


def test_make_run_starts_serve_with_overridable_address() -> None:
    # Without the caller's HOST/PORT or an outer make's flags (make test runs this under make).
    env = {
        k: v for k, v in os.environ.items() if k not in {"HOST", "PORT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    }

    def dry_run(*overrides: str) -> str:
        result = subprocess.run(
            ["make", "-n", "run", *overrides], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "-m translators serve --host '127.0.0.1' --port '7071'" in dry_run()
    assert "-m translators serve --host '0.0.0.0' --port '8123'" in dry_run("PORT=8123", "HOST=0.0.0.0")
    env["PORT"] = "9000"
    assert "--port '9000'" in dry_run()


# ---------------------------------------------------------------------------------------------
# issue 26: template folders, misspelled settings, and the small edges


def test_a_missing_template_folder_breaks_the_channel_in_settings_and_send(tmp_path: Path) -> None:
    env = {
        "CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T0/B0/x",
        "CHANNEL_BUILDS_TEMPLATES": "nope/",
        "STATE_STORE": f"sqlite://{tmp_path / 's.db'}",
    }
    shown = run_cli("settings", cwd=tmp_path, env=env)
    assert (
        shown.returncode == 1
        and "BROKEN channel 'builds': CHANNEL_BUILDS_TEMPLATES names no folder" in shown.stdout
    )
    sent = run_cli("send", "--dry-run", "bitrise", "builds", "bitrise/build-failed", cwd=tmp_path, env=env)
    assert sent.returncode == 1 and json.loads(sent.stdout)["status"] == "misconfigured"
    checked = run_cli("check", cwd=tmp_path, env=env)
    assert checked.returncode == 2 and "CHANNEL_BUILDS_TEMPLATES names no folder" in checked.stderr


def test_a_relative_template_folder_is_the_apps_from_any_directory(tmp_path: Path) -> None:
    """`--settings` from another folder: custom-templates/ is the app's, not the current directory's."""
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "Values": {
                    "CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T0/B0/x",
                    "CHANNEL_BUILDS_TEMPLATES": "custom-templates",
                    "STATE_STORE": f"sqlite://{tmp_path / 's.db'}",
                }
            }
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = run_cli("settings", "--settings", str(tmp_path / "local.settings.json"), cwd=elsewhere)
    assert shown.returncode == 0 and "custom_templates=True" in shown.stdout, shown.stdout


def test_misspelled_settings_are_warned_about_by_settings_and_check(tmp_path: Path) -> None:
    env = {
        "CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T0/B0/x",
        "CHANNEL_BUILDS_EVENT": "build.failed",
        "CHANNEL_BUILDS_BUILD_SUCCES": "never",
        "CHANNELS_BUILDS_URL": "https://hooks.slack.com/services/T0/B0/y",
    }
    shown = run_cli("settings", cwd=tmp_path, env=env)
    assert shown.returncode == 0, "a warning blocks nothing"
    for name, nearest in [
        ("CHANNEL_BUILDS_EVENT", "CHANNEL_BUILDS_EVENTS"),
        ("CHANNEL_BUILDS_BUILD_SUCCES", "CHANNEL_BUILDS_BUILD_SUCCESS"),
        ("CHANNELS_BUILDS_URL", "CHANNEL_BUILDS_URL"),
    ]:
        assert (
            f"WARNING {name} is not a setting the app knows, so it is ignored: did you mean {nearest}?"
            in shown.stdout
        )
    checked = run_cli("check", cwd=tmp_path, env=env)
    assert "WARNING CHANNEL_BUILDS_EVENT is not a setting" in checked.stdout


def test_send_with_a_broken_template_exits_1_and_says_the_minimal_message_was_used(tmp_path: Path) -> None:
    folder = tmp_path / "tpl"
    (folder / "slack").mkdir(parents=True)
    (folder / "slack" / "default.json.j2").write_text('{"text": "{{ n.title }"}\n')
    env = {
        "CHANNEL_S_URL": "https://hooks.slack.com/services/T0/B0/x",
        "CHANNEL_S_TEMPLATES": str(folder),
        "STATE_STORE": f"sqlite://{tmp_path / 's.db'}",
    }
    sent = run_cli("send", "--dry-run", "bitrise", "s", "bitrise/build-failed", cwd=tmp_path, env=env)
    assert sent.returncode == 1
    assert "the template failed, so the minimal message was rendered instead" in sent.stderr
    assert "tpl/slack/default.json.j2, line 1" in sent.stderr


def test_outbox_and_memory_alone_say_which_actions_there_are(tmp_path: Path) -> None:
    alone = run_cli("outbox", cwd=tmp_path)
    assert alone.returncode == 2 and "`outbox list`" in alone.stderr and "`outbox drop ID...`" in alone.stderr
    assert "required" not in alone.stderr
    memory = run_cli("memory", cwd=tmp_path)
    assert memory.returncode == 2 and "`memory clear`" in memory.stderr


@pytest.mark.parametrize(
    ("args", "usage"), [(("samples", "bitrise"), "samples"), (("check", "extra"), "check")]
)
def test_extra_arguments_get_the_commands_own_usage(
    tmp_path: Path, args: tuple[str, ...], usage: str
) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert (
        f"usage: python -m translators {usage} " in result.stderr
        and f"unrecognized arguments: {args[1]}" in result.stderr
    )


def test_memory_clear_names_the_file_it_cleared(tmp_path: Path) -> None:
    env = {"STATE_STORE": f"sqlite://{tmp_path / 's.db'}"}
    default = run_cli(
        "memory", "clear", "--yes", cwd=tmp_path, env={"STATE_STORE": "sqlite:///" + str(tmp_path / "d.db")}
    )
    assert default.returncode == 0 and "()" not in default.stdout
    cleared = run_cli("memory", "clear", "--yes", cwd=tmp_path, env=env)
    assert cleared.returncode == 0 and cleared.stdout.strip() == "cleared 0 records from sqlite (s.db)"
