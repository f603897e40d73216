"""The outbox store contract (translators/outbox), the same tests over SQLite and Table Storage (Azurite)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from translators import outbox, settings
from translators.outbox import Entry, OutboxStore

T0 = datetime.now(UTC).replace(microsecond=0)


def entry(channel: str = "slack", at: datetime = T0, **changes: object) -> Entry:
    values: dict[str, object] = {
        "id": outbox.new_id(at),
        "channel": channel,
        "format": "slack",
        "template": "slack/default.json.j2",
        "body": {"text": f"hello {uuid.uuid4().hex[:6]}", "blocks": []},
        "minimal": {"text": "minimal"},
        "event_id": f"bitrise:{uuid.uuid4().hex[:8]}",
        "event": "build.failed",
        "title": "Build #1 failed",
        "created_at": at,
        "next_attempt_at": at,
    }
    values |= changes
    return Entry(**values)  # type: ignore[arg-type]


@pytest.fixture
def box(state_env: dict[str, str]) -> OutboxStore:
    loaded = settings.load(state_env)
    assert loaded.errors == {}
    return outbox.open_outbox(loaded.app)


def fresh(state_env: dict[str, str]) -> OutboxStore:
    """Another instance's view of the same outbox."""
    loaded = settings.load(state_env).app
    if loaded.state_store == "tables":
        from translators.outbox.tables import TableOutbox
        from translators.state import table_target

        return TableOutbox(table_target(loaded), loaded.outbox_table)
    from pathlib import Path

    from translators.outbox.sqlite import SqliteOutbox
    from translators.state.sqlite import SqliteStore

    return SqliteOutbox(SqliteStore(Path(loaded.state_store.removeprefix("sqlite://"))))


def test_entries_keep_what_they_were_given(box: OutboxStore) -> None:
    big = entry(body={"text": "x", "blocks": [{"type": "section", "text": "é🚀" * 40_000}]})
    box.add(big)
    (got,) = box.entries("queued")
    assert got.body == big.body and got.minimal == big.minimal, "a body of any size comes back whole"
    assert (got.id, got.channel, got.event_id, got.event, got.title) == (
        big.id,
        big.channel,
        big.event_id,
        big.event,
        big.title,
    )
    assert got.created_at == big.created_at and got.attempts == 0 and got.status == "queued"
    assert "url" not in str(got.public()).lower()


def test_heads_are_each_channels_oldest_entry(box: OutboxStore) -> None:
    first, second = entry("slack", T0), entry("slack", T0 + timedelta(seconds=1))
    teams = entry("teams", T0 + timedelta(seconds=2))
    for e in (second, teams, first):  # added out of order: the id (creation time) decides
        box.add(e)
    assert [h.id for h in box.heads()] == [first.id, teams.id]
    assert box.has_queued("slack") and box.has_queued("teams") and not box.has_queued("legacy")


def test_a_lease_is_exclusive_and_settling_needs_it(box: OutboxStore) -> None:
    e = entry()
    box.add(e)
    (head,) = box.heads()
    assert box.lease(head, "a", T0 + timedelta(seconds=60), T0)
    assert not box.lease(head, "b", T0 + timedelta(seconds=60), T0 + timedelta(seconds=1)), "held by a"
    box.remove(head, "b")
    assert box.entries("queued"), "only the lease holder removes it"
    (held,) = box.heads()
    assert held.lease_until is not None
    assert box.lease(held, "c", T0 + timedelta(seconds=200), T0 + timedelta(seconds=61)), (
        "a lapsed lease is taken"
    )
    box.remove(box.heads()[0], "c")
    assert box.entries() == [] and not box.has_queued("slack")


def test_reschedule_bury_replay_drop(box: OutboxStore) -> None:
    later = T0 + timedelta(minutes=5)
    a, b = entry(at=T0), entry(at=T0 + timedelta(seconds=1))
    box.add(a)
    box.add(b)
    head = box.heads()[0]
    assert box.lease(head, "t", T0 + timedelta(minutes=1), T0)
    box.reschedule(head, "t", later, "503 Service Unavailable")
    (again,) = [e for e in box.entries() if e.id == a.id]
    assert (again.attempts, again.last_error, again.next_attempt_at) == (1, "503 Service Unavailable", later)
    assert again.lease_until is None or again.lease_until < T0, "the lease was given up"
    head = box.heads()[0]
    assert box.lease(head, "t2", T0 + timedelta(minutes=1), T0)
    box.bury(head, "t2", "refused: invalid_token")
    dead = box.entries("dead")
    assert [(d.id, d.dead_reason, d.attempts) for d in dead] == [(a.id, "refused: invalid_token", 2)]
    assert [h.id for h in box.heads()] == [b.id], "a dead letter does not hold its channel up"
    stats = box.stats()
    assert (stats.queued, stats.dead, stats.oldest) == (1, 1, b.created_at)
    assert box.replay([a.id], later) == 1
    (replayed,) = [e for e in box.entries("queued") if e.id == a.id]
    assert (replayed.attempts, replayed.next_attempt_at) == (0, later)
    assert [h.id for h in box.heads()] == [a.id], "a replayed letter takes its place again"
    assert box.drop([a.id, b.id, "nope"]) == 2 and box.entries() == []


def test_replay_all_dead_letters(box: OutboxStore) -> None:
    for e in (entry("slack"), entry("teams")):
        box.add(e)
        box.bury(e, None, "channel 'x' is no longer configured")
    assert box.stats().dead == 2
    assert box.replay(None, T0) == 2 and box.stats().queued == 2


def test_two_drainers_never_lease_one_entry_twice(state_env: dict[str, str], box: OutboxStore) -> None:
    box.add(entry())
    views = [fresh(state_env) for _ in range(6)]
    barrier = threading.Barrier(len(views))
    won: list[bool] = []

    def take(view: OutboxStore, i: int) -> None:
        (head,) = view.heads()
        barrier.wait()
        won.append(view.lease(head, f"token-{i}", T0 + timedelta(minutes=1), T0))

    threads = [threading.Thread(target=take, args=(v, i)) for i, v in enumerate(views)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for view in views:
        view.close()
    assert won.count(True) == 1, won


def test_backoff_doubles_with_jitter_within_bounds_and_honours_retry_after() -> None:
    delays = [outbox.backoff(n, 10, 900) for n in (1, 2, 3, 4, 20)]
    assert 8 <= delays[0] <= 12 and 16 <= delays[1] <= 24 and 32 <= delays[2] <= 48 and 64 <= delays[3] <= 96
    assert delays[4] == pytest.approx(900, rel=0.001) or delays[4] <= 900
    assert outbox.backoff(1, 10, 900, retry_after=120) >= 120
    assert outbox.backoff(1, 10, 900, retry_after=3600) == 3600, "a longer Retry-After is still honoured"
    assert len({outbox.backoff(3, 10, 900) for _ in range(20)}) > 1, "jitter spreads the retries"
