"""The outbox end to end: queued in the request, drained later, in order, paced, once; dead letters."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from tests.chatserver import ChatServer, Received, Reply
from tests.conftest import Handler, path_of, post
from tests.localserve import run_cli
from translators import outbox, settings
from translators.drainer import Drainer
from translators.pacing import PACER

FINISHED = {"Bitrise-Event-Type": "build/finished"}


def build(number: int, status: int = 2) -> dict[str, Any]:
    return {
        "build_slug": f"outbox-{number}",
        "build_number": number,
        "app_slug": "app-outbox",
        "build_status": status,
        "build_triggered_workflow": "primary",
        "git": {"provider": "github", "src_branch": "main"},
    }


@pytest.fixture
def env(channels: dict[str, str], state_env: dict[str, str]) -> dict[str, str]:
    """Fast backoff and one attempt per request, so that tests about queueing do not wait."""
    PACER.reset()
    return {
        **channels,
        **state_env,
        "DELIVERY_MAX_ATTEMPTS": "1",
        "DELIVERY_DEADLINE_SECONDS": "2",
        "OUTBOX_MIN_DELAY_SECONDS": "0.05",
        "OUTBOX_MAX_DELAY_SECONDS": "0.2",
    }


def box(env: dict[str, str]) -> outbox.OutboxStore:
    return outbox.open_outbox(settings.load(env).app)


def drain(env: dict[str, str], seconds: float = 20.0) -> None:
    """Drain until the outbox holds nothing queued (or ``seconds`` pass)."""
    drainer = Drainer(lambda: settings.load(env))
    deadline = time.monotonic() + seconds
    while box(env).stats().queued and time.monotonic() < deadline:
        if not drainer.drain_once().sent:
            time.sleep(0.02)
    assert box(env).stats().queued == 0, box(env).entries()


def numbers(received: list[Received]) -> list[int]:
    """Build numbers of the messages that got through, in arrival order."""
    found = []
    for got in received:
        text = got.body.decode()
        match = re.search(r"Build #(\d+)", text)
        assert match, text[:200]
        found.append(int(match[1]))
    return found


def test_a_failed_delivery_is_queued_answered_200_and_delivered_once_later(
    env: dict[str, str], chat: ChatServer
) -> None:
    slack = path_of(env, "slack")
    chat.script(slack, Reply(503, "down"))
    answer = post(env, "bitrise", "slack+teams", build(1), FINISHED)
    assert answer.status == 200 and answer.body["status"] == "queued", answer.body
    queued, teams = answer.body["channels"]
    assert (queued["status"], queued["reason"], queued["http_status"], teams["status"]) == (
        "queued",
        "retrying",
        503,
        "delivered",
    )
    assert queued["next_attempt_at"].endswith("Z")
    drain(env)
    first, second = (r.body for r in chat.at(slack))
    assert first == second, "the same body, again"
    retry = post(env, "bitrise", "slack+teams", build(1), FINISHED)
    assert [c.get("reason") for c in retry.body["channels"]] == ["duplicate", "duplicate"]
    assert len(chat.at(slack)) == 2


def test_new_events_queue_behind_waiting_ones_and_arrive_in_order(
    env: dict[str, str], chat: ChatServer
) -> None:
    slack = path_of(env, "slack")
    chat.script(slack, Reply(503, "down"))
    reasons = [
        post(env, "bitrise", "slack", build(n), FINISHED).body["channels"][0].get("reason") for n in (1, 2, 3)
    ]
    assert reasons == ["retrying", "behind_queue", "behind_queue"], "started never overtakes finished"
    drain(env)
    assert numbers(chat.at(slack))[1:] == [1, 2, 3]


def test_retry_after_is_honoured_even_past_the_max_delay(env: dict[str, str], chat: ChatServer) -> None:
    chat.script(path_of(env, "slack"), Reply(429, "rate_limited", {"Retry-After": "30"}))
    answer = post(env, "bitrise", "slack", build(1), FINISHED)
    (result,) = answer.body["channels"]
    assert result["status"] == "queued" and result["retry_after"] == 30
    (entry,) = box(env).entries("queued")
    assert 29 <= (entry.next_attempt_at - entry.created_at).total_seconds() <= 31


def test_a_refusal_in_the_drainer_is_a_dead_letter_after_the_minimal_message(
    env: dict[str, str], chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack = path_of(env, "slack")
    chat.script(slack, Reply(503, "down"), Reply(400, "invalid_blocks"), Reply(404, "no_service"))
    post(env, "bitrise", "slack", build(1), FINISHED)
    caplog.set_level(logging.INFO, logger="translators")
    time.sleep(0.3)  # due
    Drainer(lambda: settings.load(env)).drain_once()
    (dead,) = box(env).entries("dead")
    assert dead.dead_reason == "refused: no_service" and dead.attempts == 2
    bodies = [r.json() for r in chat.at(slack)]
    assert len(bodies) == 3 and bodies[2] != bodies[1], "the minimal message was tried once"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbox.")]
    assert any(line.startswith("outbox.dead ") and '"reason":"refused: no_service"' in line for line in lines)


def test_a_removed_channel_dead_letters_its_entries_and_old_entries_die(
    env: dict[str, str], chat: ChatServer
) -> None:
    chat.script(path_of(env, "slack"), Reply(503, "down"))
    chat.script(path_of(env, "teams"), Reply(503, "down"))
    post(env, "bitrise", "slack+teams", build(1), FINISHED)
    gone = {k: v for k, v in env.items() if not k.startswith("CHANNEL_SLACK_")} | {
        "OUTBOX_MAX_AGE_SECONDS": "0.01"
    }
    time.sleep(0.1)
    chat.script(path_of(env, "teams"), Reply(503, "still down"))
    Drainer(lambda: settings.load(gone)).drain_once()
    reasons = sorted((e.channel, e.dead_reason or "") for e in box(env).entries("dead"))
    assert reasons[0] == ("slack", "channel 'slack' is no longer configured")
    assert reasons[1][0] == "teams" and reasons[1][1].startswith(
        "not delivered within OUTBOX_MAX_AGE_SECONDS"
    )


def test_a_burst_arrives_in_order_without_tripping_the_destination(
    env: dict[str, str], chat: ChatServer
) -> None:
    slack = path_of(env, "slack")
    window: list[float] = []
    answered: list[tuple[int, int]] = []  # (build number, status) in arrival order

    def limited(got: Received) -> Reply:  # 429 above 10 messages in any second
        moment = time.monotonic()
        while window and moment - window[0] > 1.0:
            window.pop(0)
        status = 429 if len(window) >= 10 else 200
        if status == 200:
            window.append(moment)
        answered.append((numbers([got])[0], status))
        return Reply(429, "rate_limited", {"Retry-After": "1"}) if status == 429 else Reply(200, "ok")

    chat.respond(slack, limited)
    paced = {**env, "CHANNEL_SLACK_RATE": "8", "OUTBOX_MIN_DELAY_SECONDS": "1"}
    answers = [post(paced, "bitrise", "slack", build(n), FINISHED).body["status"] for n in range(1, 31)]
    assert set(answers) <= {"delivered", "queued"} and answers.count("delivered") >= 8
    drain(paced, seconds=30)
    delivered = [n for n, status in answered if status == 200]
    assert delivered == list(range(1, 31)), "30 messages, once each, in arrival order"
    refused = [n for n, status in answered if status == 429]
    assert len(refused) <= 2, f"{len(refused)} 429s: the pace keeps within the destination's limit"


def test_the_outbox_never_holds_a_url(env: dict[str, str], chat: ChatServer) -> None:
    chat.script(path_of(env, "slack"), Reply(503, "down"))
    post(env, "bitrise", "slack", build(1), FINISHED)
    (entry,) = box(env).entries()
    stored = json.dumps(entry.body) + json.dumps(entry.minimal) + json.dumps(entry.public())
    assert "SECRET" not in stored and "127.0.0.1" not in stored


def test_health_counts_what_the_outbox_holds(env: dict[str, str], chat: ChatServer) -> None:
    from translators import pipeline

    chat.script(path_of(env, "slack"), Reply(503, "down"))
    post(env, "bitrise", "slack", build(1), FINISHED)
    health = pipeline.health(settings.load(env)).body
    assert health["outbox"]["queued"] == 1 and health["outbox"]["dead"] == 0
    assert health["outbox"]["oldest_age_seconds"] >= 0 and health["status"] == "ok"
    entry = box(env).entries()[0]
    box(env).bury(entry, None, "refused: gone")
    health = pipeline.health(settings.load(env)).body
    assert health["status"] == "degraded" and "dead letter" in " ".join(health["problems"])


def test_the_admin_function_lists_and_replays(
    env: dict[str, str], chat: ChatServer, functions: dict[str, Handler], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chat.script(path_of(env, "slack"), Reply(503, "down"))
    post(env, "bitrise", "slack", build(1), FINISHED)
    entry = box(env).entries()[0]
    box(env).bury(entry, None, "refused: gone")

    def call(method: str, action: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        req = func.HttpRequest(
            method,
            f"http://localhost/api/outbox/{action}",
            body=json.dumps(body).encode() if body is not None else b"",
            params=params or {},
            route_params={"action": action},
        )
        resp = functions["outbox"](req)
        return resp.status_code, json.loads(resp.get_body())

    status, listed = call("GET", "", params={"dead": "1"})
    assert status == 200 and [e["id"] for e in listed["entries"]] == [entry.id]
    assert listed["entries"][0]["dead_reason"] == "refused: gone" and "SECRET" not in json.dumps(listed)
    assert call("POST", "replay", {"ids": [entry.id]}) == (200, {"replayed": 1})
    assert call("POST", "replay", {"ids": ["nope"]})[0] == 404
    assert call("POST", "replay", {})[0] == 400
    drain(env)
    assert len(chat.at(path_of(env, "slack"))) == 2


def test_the_cli_lists_replays_and_drops_dead_letters(
    channels: dict[str, str], chat: ChatServer, tmp_path: Path
) -> None:
    PACER.reset()
    env = {
        **channels,
        "DELIVERY_MAX_ATTEMPTS": "1",
        "OUTBOX_MIN_DELAY_SECONDS": "0.05",
        "OUTBOX_MAX_DELAY_SECONDS": "0.2",
    }
    slack = path_of(env, "slack")
    chat.script(slack, Reply(503, "down"), Reply(403, "invalid_token"))
    post(env, "bitrise", "slack", build(7), FINISHED)
    post(env, "bitrise", "slack", build(8), FINISHED)
    time.sleep(0.3)  # due
    Drainer(lambda: settings.load(env)).drain_once()  # 7 is refused: a dead letter; 8 is next
    cli_env = dict(env)
    listed = run_cli("outbox", "list", "--dead", cwd=tmp_path, env=cli_env)
    assert listed.returncode == 0 and "1 queued, 1 dead" in listed.stdout and "invalid_token" in listed.stdout
    assert "SECRET" not in listed.stdout and "127.0.0.1" not in listed.stdout
    as_json = json.loads(run_cli("outbox", "list", "--dead", "--json", cwd=tmp_path, env=cli_env).stdout)
    (dead_id,) = [e["id"] for e in as_json["entries"]]
    replayed = run_cli("outbox", "replay", dead_id, cwd=tmp_path, env=cli_env)
    assert replayed.returncode == 0 and json.loads(replayed.stdout) == {"replayed": 1}
    assert run_cli("outbox", "replay", cwd=tmp_path, env=cli_env).returncode == 2
    drain(env)
    assert numbers(chat.at(slack)) == [7, 7, 7, 8], "the replayed letter was delivered, then the next"
    post(env, "bitrise", "slack", build(9), FINISHED)
    chat.script(slack, Reply(503, "down"))
    post(env, "bitrise", "slack", build(10), FINISHED)
    queued = box(env).entries("queued")
    dropped = run_cli("outbox", "drop", *(e.id for e in queued), cwd=tmp_path, env=cli_env)
    assert dropped.returncode == 0 and json.loads(dropped.stdout)["dropped"] == len(queued)


def test_every_change_is_one_structured_log_line(
    env: dict[str, str], chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="translators")
    chat.script(path_of(env, "slack"), Reply(503, "down"), Reply(503, "still down"))
    post(env, "bitrise", "slack", build(1), FINISHED)
    drain(env)
    changes = [r.getMessage().split(" ", 1) for r in caplog.records if r.getMessage().startswith("outbox.")]
    assert [name for name, _ in changes] == ["outbox.queued", "outbox.retry", "outbox.delivered"]
    for _, fields in changes:
        data = json.loads(fields)
        assert data["channel"] == "slack" and data["id"] and "SECRET" not in fields


def test_the_drainer_paces_a_channel_at_its_whole_rate_whatever_the_number_of_workers(
    env: dict[str, str], chat: ChatServer
) -> None:
    import threading
    from itertools import combinations, pairwise

    from translators.pacing import Pacer, burst

    pacer = Pacer()
    pacer.share = 0.5  # one of serve --workers 2: its requests pace at half the rate
    while pacer.take("slack", 1.0, whole=True) == 0.0:
        pass  # the burst is spent
    assert 0.9 < pacer.take("slack", 1.0, whole=True) <= 1.0, "the drainer waits a second at 1/s"
    assert 1.9 < pacer.take("slack", 1.0) <= 2.0, "a worker's requests wait two: their half"
    # The drainer asks for the whole rate: queued Slack deliveries come about a second apart.
    paced = env | {"CHANNEL_SLACK_RATE": "1"}
    path = path_of(paced, "slack")
    chat.script(path, Reply(503, "busy"))
    for number in range(1, 6):  # the first is refused (503) and queued; the others queue behind it
        post(paced, "bitrise", "slack", build(number), FINISHED)
    PACER.reset()
    PACER.share = 0.5
    try:
        stop = threading.Event()
        worker = threading.Thread(target=Drainer(lambda: settings.load(paced)).run, args=(stop, 6.0))
        worker.start()
        worker.join(10)
    finally:
        PACER.share = 1.0
        PACER.reset()
    times = [r.at for r in chat.at(path)][1:]
    assert len(times) == 5, len(times)
    after_burst = times[int(burst(1.0)) - 1 :]
    gaps = [b - a for a, b in pairwise(after_burst)]
    # The whole rate, not the worker's half: about a second apart on average (a half would be two).
    assert len(gaps) >= 2 and 0.8 < sum(gaps) / len(gaps) < 1.5, gaps
    # A token bucket lets a delivery that came late (a busy machine) be followed sooner, but never
    # more than the bucket holds: no window carries more than its seconds' worth plus a burst.
    for i, j in combinations(range(len(after_burst)), 2):
        assert j - i <= (after_burst[j] - after_burst[i]) * 1.0 + burst(1.0), gaps


# -- counts: tries of a delivery, and the HTTP attempts they made -----------------------------------


def _outbox_lines(caplog: pytest.LogCaptureFixture, change: str) -> list[dict[str, Any]]:
    prefix = f"outbox.{change} "
    return [
        json.loads(r.getMessage()[len(prefix) :]) for r in caplog.records if r.getMessage().startswith(prefix)
    ]


def test_tries_and_http_attempts_agree_in_the_outbox_its_log_and_its_listing(
    env: dict[str, str], chat: ChatServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Each try makes up to DELIVERY_MAX_ATTEMPTS POSTs: `tries` counts tries, `attempts` the POSTs."""
    env = {**env, "DELIVERY_MAX_ATTEMPTS": "2"}
    slack = path_of(env, "slack")
    chat.script(slack, Reply(503, "down"), Reply(503, "down"), Reply(503, "down"), Reply(503, "down"))
    caplog.set_level(logging.INFO, logger="translators")
    answer = post(env, "bitrise", "slack", build(1), FINISHED)
    (queued,) = answer.body["channels"]
    assert queued["status"] == "queued" and len(chat.at(slack)) == 2
    (before,) = box(env).entries("queued")
    time.sleep(0.3)  # due
    Drainer(lambda: settings.load(env)).drain_once()  # two more POSTs, both 503
    (after,) = box(env).entries("queued")
    assert len(chat.at(slack)) == 4
    assert (after.attempts, after.http_attempts) == (before.attempts + 1, before.http_attempts + 2)
    (retry,) = _outbox_lines(caplog, "retry")
    assert (retry["tries"], retry["attempts"]) == (after.attempts, after.http_attempts)

    listed = json.loads(run_cli("outbox", "list", "--json", cwd=tmp_path, env=env).stdout)
    (row,) = listed["entries"]
    assert (row["tries"], row["attempts"]) == (after.attempts, after.http_attempts)
    table = run_cli("outbox", "list", cwd=tmp_path, env=env).stdout.splitlines()
    assert table[1].split()[:5] == ["ID", "CHANNEL", "EVENT", "TRIES", "ATTEMPTS"]
    assert table[2].split()[3:5] == [str(after.attempts), str(after.http_attempts)]

    time.sleep(0.3)
    drain(env)  # the next POST goes through
    (delivered,) = _outbox_lines(caplog, "delivered")
    assert (delivered["tries"], delivered["attempts"]) == (after.attempts + 1, after.http_attempts + 1)


def test_a_paced_burst_is_logged_delivered_after_one_try_of_one_attempt(
    env: dict[str, str], chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A paced entry was never tried in its request: delivered on its first pass, it made one POST."""
    env = {**env, "CHANNEL_SLACK_RATE": "1"}
    caplog.set_level(logging.INFO, logger="translators")
    reasons = [
        post(env, "bitrise", "slack", build(n), FINISHED).body["channels"][0].get("reason")
        for n in range(1, 5)
    ]
    assert "paced" in reasons, reasons
    drain(env)
    lines = _outbox_lines(caplog, "delivered")
    assert lines and all((line["tries"], line["attempts"]) == (1, 1) for line in lines), lines


def test_the_requests_http_attempts_are_counted_by_the_entry_it_queues(
    env: dict[str, str], chat: ChatServer
) -> None:
    env = {**env, "DELIVERY_MAX_ATTEMPTS": "2"}
    chat.script(path_of(env, "slack"), Reply(503, "down"), Reply(503, "down"))
    (queued,) = post(env, "bitrise", "slack", build(1), FINISHED).body["channels"]
    (entry,) = box(env).entries("queued")
    assert (entry.attempts, entry.http_attempts) == (1, queued["attempts"]) == (1, 2)
