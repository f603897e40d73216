"""Fault tests of the outbox (bounded, loopback only): outages, a killed server, a storage restart.

Times are shortened by settings (the production defaults wait 10 s to 15 min between attempts).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.azurite import RestartableAzurite
from tests.chatserver import ChatServer, Received, Reply
from tests.conftest import path_of, post
from tests.localserve import start_serve
from translators import drainer as drainers
from translators import outbox, settings
from translators.pacing import PACER

FINISHED = {"Bitrise-Event-Type": "build/finished"}
FAST = {
    "DELIVERY_MAX_ATTEMPTS": "1",
    "DELIVERY_DEADLINE_SECONDS": "2",
    "OUTBOX_MIN_DELAY_SECONDS": "0.2",
    "OUTBOX_MAX_DELAY_SECONDS": "0.5",
}


def build(number: int) -> dict[str, Any]:
    return {
        "build_slug": f"fault-{number}",
        "build_number": number,
        "app_slug": "app-fault",
        "build_status": 2,
        "git": {"provider": "github", "src_branch": "main"},
    }


class Destination:
    """A channel's destination that is down (503) until told otherwise, recording what it took."""

    def __init__(self, chat: ChatServer, path: str) -> None:
        self.up = threading.Event()
        self.taken: list[int] = []
        self.refused = 0
        self._lock = threading.Lock()
        chat.respond(path, self.answer)

    def answer(self, got: Received) -> Reply:
        number = int(re.search(r"Build #(\d+)", got.body.decode())[1])  # type: ignore[index]
        with self._lock:
            if not self.up.is_set():
                self.refused += 1
                return Reply(503, "down")
            self.taken.append(number)
        return Reply(200, "ok")

    def wait_for(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self.taken) < count and time.monotonic() < deadline:
            time.sleep(0.05)


def test_an_outage_of_the_only_destination_loses_none_of_100_events_and_sends_none_twice(
    channels: dict[str, str], state_env: dict[str, str], chat: ChatServer
) -> None:
    PACER.reset()
    env = {**channels, **state_env, **FAST, "CHANNEL_SLACK_RATE": "50"}
    destination = Destination(chat, path_of(env, "slack"))
    stop = threading.Event()
    draining = threading.Thread(
        target=drainers.Drainer(lambda: settings.load(env)).run, args=(stop,), daemon=True
    )
    draining.start()
    try:
        answers = []
        for n in range(1, 101):  # events arrive while the destination is down ...
            answers.append(post(env, "bitrise", "slack", build(n), FINISHED))
            if n == 60:
                destination.up.set()  # ... and it recovers while they are still arriving
        assert all(a.status == 200 for a in answers), [a.body for a in answers if a.status != 200][:2]
        assert {a.body["status"] for a in answers} <= {"queued", "delivered"}
        destination.wait_for(100, seconds=60)
    finally:
        stop.set()
        draining.join(timeout=10)
    assert destination.taken == list(range(1, 101)), "all 100, once each, in order"
    assert destination.refused >= 1
    assert outbox.open_outbox(settings.load(env).app).stats().queued == 0


def test_serve_killed_with_entries_queued_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, chat: ChatServer
) -> None:
    destination = Destination(chat, "/hook/killed")
    env = {
        "CHANNEL_OPS_URL": chat.url("/hook/killed"),
        "CHANNEL_OPS_FORMAT": "slack",
        "CHANNEL_OPS_RATE": "50",
        "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
        **FAST,
    }
    first = start_serve(tmp_path / "first", env)
    for n in range(1, 21):
        answer = first.post("/api/bitrise/ops", build(n), FINISHED)
        assert answer.status == 200 and answer.json()["status"] == "queued"
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    destination.up.set()
    second = start_serve(tmp_path / "second", env)
    try:
        destination.wait_for(20, seconds=30)
        assert second.get("/api/health").json()["outbox"]["queued"] == 0
    finally:
        second.stop()
    assert destination.taken == list(range(1, 21))


def test_table_storage_stopped_and_restarted_while_draining_loses_nothing(
    tmp_path: Path, channels: dict[str, str], chat: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = RestartableAzurite(tmp_path / "azurite")
    monkeypatch.setattr(drainers, "LEASE", __import__("datetime").timedelta(seconds=2))
    from translators import memory, state

    monkeypatch.setattr(memory, "COOL_DOWN_SECONDS", 0.5)
    PACER.reset()
    env = {**channels, **storage.server.env(), **FAST, "CHANNEL_SLACK_RATE": "10"}
    destination = Destination(chat, path_of(env, "slack"))
    try:
        for n in range(1, 31):
            assert post(env, "bitrise", "slack", build(n), FINISHED).body["status"] == "queued"
        destination.up.set()
        stop = threading.Event()
        draining = threading.Thread(
            target=drainers.Drainer(lambda: settings.load(env)).run, args=(stop,), daemon=True
        )
        draining.start()
        destination.wait_for(8, seconds=20)
        storage.stop()  # mid-way
        time.sleep(1.5)
        storage.start()
        destination.wait_for(30, seconds=60)
        stop.set()
        draining.join(timeout=10)
        assert destination.taken == list(range(1, 31)), "nothing lost, nothing twice"
    finally:
        state.close_all()
        outbox.close_all()
        storage.stop()
