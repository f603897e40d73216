"""A newcomer's first hour: every surprise they met, pinned (check, broken channels, CLI edges)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from werkzeug.test import Client

from tests.chatserver import SUCCESS, ChatServer, Reply
from tests.localserve import ROOT, clean_env, run_cli, start_serve
from translators import samples
from translators.server import Inbox, LocalFunctionApp

FAILED = samples.get("bitrise/build-failed")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- check is the truth ------------------------------------------------------------------------


def test_check_finds_a_broken_template_in_a_channels_own_folder_and_names_the_channel(tmp_path: Path) -> None:
    folder = tmp_path / "ops-templates"
    write(folder, "slack/bitrise/build.failed.json.j2", '{"text": "{{ n.title }"}\n')
    env = {
        "CHANNEL_OPS_URL": "https://hooks.slack.com/services/T1/B2/abc",
        "CHANNEL_OPS_TEMPLATES": str(folder),
    }
    result = run_cli("check", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout
    assert "== channel ops" in result.stdout
    section = result.stdout.split("== channel ops", 1)[1]
    assert "ops-templates/slack/bitrise/build.failed.json.j2, line 1" in section
    bodies = (len(samples.all_samples()) + len(samples.mapped_samples())) * 3
    assert f"OK: all {bodies} bodies rendered and valid" in result.stdout.split("== channel ops", 1)[0], (
        "built-in is fine"
    )


def test_check_warns_about_a_template_at_a_path_no_lookup_uses(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    body = (ROOT / "templates" / "slack" / "default.json.j2").read_text()
    write(folder, "slack/build.failed.json.j2", body)  # the source folder is missing
    write(folder, "slack/bitrise/build.faild.json.j2", body)  # a typo in the event
    env = {"TEMPLATES_DIR": str(folder)}
    result = run_cli("check", cwd=tmp_path, env=env)
    assert result.returncode == 0, "a warning, not a failure"
    lines = [line for line in result.stdout.splitlines() if line.startswith("WARN")]
    assert len(lines) == 2
    assert "slack/build.failed.json.j2: no lookup uses this name" in lines[1]
    assert "did you mean slack/<source>/build.failed.json.j2" in lines[1]
    assert "did you mean slack/bitrise/build.failed.json.j2?" in lines[0]
    strict = run_cli("check", "--strict", cwd=tmp_path, env=env)
    assert strict.returncode == 1


# -- clean edges -------------------------------------------------------------------------------


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "translators", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {port} is in use; try `make run PORT={port + 1}`"


def test_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "translators", "samples", "--json"],
        cwd=tmp_path,
        env=clean_env({"PYTHONUNBUFFERED": "0"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # as `| head` does
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "BrokenPipe" not in err and proc.returncode == 0


def test_every_answer_of_the_local_server_carries_a_request_id() -> None:
    client = Client(LocalFunctionApp([], "api", Inbox()))
    for method, path in (("GET", "/nothing"), ("PUT", "/inbox"), ("POST", "/inbox/discord")):
        answer = client.open(path, method=method)
        assert answer.status_code in (404, 405), (method, path)
        assert len(answer.get_json()["request_id"]) == 12, (method, path)


def test_send_force_sends_again_and_memory_clear_resets(chat: ChatServer, tmp_path: Path) -> None:
    path = f"/hook/{uuid.uuid4().hex}"
    chat.default(path, Reply(*SUCCESS["slack"]))
    env = {
        "CHANNEL_S_URL": chat.url(path),
        "CHANNEL_S_FORMAT": "slack",
        "STATE_STORE": f"sqlite://{tmp_path / 's.db'}",
    }
    assert run_cli("send", "bitrise", "s", "bitrise/build-failed", cwd=tmp_path, env=env).returncode == 0
    again = run_cli("send", "bitrise", "s", "bitrise/build-failed", cwd=tmp_path, env=env)
    assert json.loads(again.stdout)["status"] == "skipped" and "--force sends it again" in again.stderr
    forced = run_cli("send", "bitrise", "s", "bitrise/build-failed", "--force", cwd=tmp_path, env=env)
    assert json.loads(forced.stdout)["status"] == "delivered" and len(chat.at(path)) == 2
    refused = run_cli("memory", "clear", cwd=tmp_path, env=env, stdin=b"no\n")
    assert refused.returncode != 0, "nothing is cleared without a confirmation"
    cleared = run_cli("memory", "clear", "--yes", cwd=tmp_path, env=env)
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    assert (
        json.loads(run_cli("send", "bitrise", "s", "bitrise/build-failed", cwd=tmp_path, env=env).stdout)[
            "status"
        ]
        == "delivered"
    )


def test_a_revoked_teams_workflow_says_what_to_do(chat: ChatServer, channels: dict[str, str]) -> None:
    from tests.conftest import path_of, post

    chat.script(path_of(channels, "teams"), Reply(404, ""))
    answer = post(channels, "bitrise", "teams", json.loads(FAILED.body()), FAILED.headers)
    (result,) = answer.body["channels"]
    assert answer.status == 502 and "create a new" in result["hint"] and "Workflows" in result["hint"]


def test_serve_prints_broken_channels_and_placeholders_with_the_reason(tmp_path: Path) -> None:
    served = start_serve(
        tmp_path,
        {
            "CHANNEL_SLACK_URL": "https://hooks.slack.com/services/replace-me",
            "CHANNEL_OK_URL": "https://hooks.slack.com/services/T1/B2/real",
            "DELIVERY_DEADLINE_SECONDS": "abc",
        },
    )
    try:
        banner = served.banner()
        health = served.get("/api/health").json()
    finally:
        served.stop()
    assert "BROKEN channel 'slack': CHANNEL_SLACK_URL is a placeholder" in banner
    assert "SETTING DELIVERY_DEADLINE_SECONDS is not valid" in banner
    assert health["status"] == "degraded" and "DELIVERY_DEADLINE_SECONDS" in health["setting_errors"]


def test_the_project_has_the_license_it_declares() -> None:
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_serve_prints_a_missing_template_folder_and_misspelled_settings(tmp_path: Path) -> None:
    """Issue 26: a missing folder breaks its channel in serve and health; a misspelling is a warning."""
    served = start_serve(
        tmp_path,
        {
            "CHANNEL_BUILDS_URL": "https://hooks.slack.com/services/T1/B2/real",
            "CHANNEL_BUILDS_TEMPLATES": "nope/",
            "CHANNEL_OK_URL": "https://hooks.slack.com/services/T1/B2/other",
            "CHANNEL_OK_EVENT": "build.failed",
        },
    )
    try:
        banner = served.banner()
        health = served.get("/api/health").json()
    finally:
        served.stop()
    assert "BROKEN channel 'builds': CHANNEL_BUILDS_TEMPLATES names no folder" in banner
    warning = "WARNING CHANNEL_OK_EVENT is not a setting the app knows, so it is ignored"
    assert f"{warning}: did you mean CHANNEL_OK_EVENTS?" in banner
    assert "CHANNEL_BUILDS_TEMPLATES names no folder" in health["channel_errors"]["builds"]
