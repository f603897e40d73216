"""The state store contract (translators/state), the same tests over SQLite and Table Storage (Azurite).

Racing tests open several store objects on the same storage, as separate instances of the app
would, so that only the storage's own conditional writes can keep them apart.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from translators import settings, state
from translators.state import CLAIM_STALE_AFTER, UNKNOWN_RESEND_AFTER, StateStore, StoreUnavailable

#: Recent: the SQLite store prunes claims older than 30 days when a process first opens it.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
#: Characters Table Storage forbids in keys, plus a control character and non-ASCII text.
HOSTILE = "bitrise:a/b\\c#d?e\x01f:ünïcode:build/finished:2"


def open_store(env: dict[str, str]) -> StateStore:
    loaded = settings.load(env)
    assert loaded.errors == {}, loaded.errors
    return state.open_store(loaded.app)


def fresh(env: dict[str, str]) -> StateStore:
    """A new store object on the same storage, as another app instance would open it."""
    if env["STATE_STORE"] == "tables":
        from translators.state.tables import TableStore

        return TableStore(state.table_target(settings.load(env).app), env["STATE_TABLE"])
    from translators.state.sqlite import SqliteStore

    return SqliteStore(Path(env["STATE_STORE"].removeprefix("sqlite://")))


@pytest.fixture
def store(state_env: dict[str, str]) -> StateStore:
    return open_store(state_env)


def test_open_store_picks_the_backend(state_env: dict[str, str]) -> None:
    store = open_store(state_env)
    assert store.kind == state_env["STATE_STORE"].split(":")[0]
    assert open_store(state_env) is store, "one store per configuration and process"


def test_outcomes_remember_the_last_build(store: StateStore) -> None:
    assert store.previous_outcome("k", "e1") is None
    store.record_outcome("k", "failure", "e1", T0)
    assert store.previous_outcome("k", "e2") == "failure"
    store.record_outcome("k", "success", "e2", T0 + timedelta(minutes=1))
    assert store.previous_outcome("k", "e3") == "success"
    assert store.previous_outcome("other", "e3") is None


def test_a_retried_event_is_judged_against_the_build_before_it(store: StateStore) -> None:
    store.record_outcome("k", "failure", "e1", T0)
    store.record_outcome("k", "success", "e2", T0 + timedelta(minutes=1))
    # e2 again (a retry): it is already on record, and what came before it was e1's failure.
    assert store.previous_outcome("k", "e2") == "failure"
    store.record_outcome("k", "success", "e2", T0 + timedelta(minutes=1))
    assert store.previous_outcome("k", "e2") == "failure", "recording a retry again changes nothing"
    assert store.previous_outcome("k", "e3") == "success"


def test_an_older_build_arriving_late_does_not_replace_a_newer_one(store: StateStore) -> None:
    store.record_outcome("k", "success", "new", T0)
    store.record_outcome("k", "failure", "old", T0 - timedelta(hours=1))
    assert store.previous_outcome("k", None) == "success"


def test_events_without_identity_always_replace(store: StateStore) -> None:
    store.record_outcome("k", "failure", None, T0)
    store.record_outcome("k", "success", None, T0)
    assert store.previous_outcome("k", None) == "success"


def test_hostile_keys_are_stored_safely(store: StateStore) -> None:
    store.record_outcome(HOSTILE, "failure", HOSTILE, T0)
    assert store.previous_outcome(HOSTILE, None) == "failure"
    claim = store.claim(HOSTILE, "slack", T0)
    assert claim.held
    assert store.claim(HOSTILE, "slack", T0).held is False


def test_claim_confirm_release(store: StateStore) -> None:
    first = store.claim("e", "slack", T0)
    assert first.held and first.token
    busy = store.claim("e", "slack", T0)
    assert not busy.held and not busy.delivered, "held by someone else, not yet delivered"
    assert store.claim("e", "teams", T0).held, "claims are per channel"
    store.release("e", "slack", "not-our-token")
    assert not store.claim("e", "slack", T0).held, "only the holder can release"
    store.release("e", "slack", first.token)
    second = store.claim("e", "slack", T0)
    assert second.held and second.token != first.token, "a released claim can be taken again"
    store.confirm("e", "slack", second.token, T0)
    done = store.claim("e", "slack", T0 + timedelta(days=1))
    assert not done.held and done.delivered, "a confirmed delivery is never made again, however old"
    store.release("e", "slack", second.token)
    assert store.claim("e", "slack", T0).delivered, "release after confirm keeps the delivery"


def test_an_unknown_outcome_is_held_then_sent_once_more(state_env: dict[str, str], store: StateStore) -> None:
    sent = store.claim("e", "slack", T0)
    assert sent.token
    store.mark_unknown("e", "slack", "not-our-token", T0)
    assert not store.claim("e", "slack", T0).unknown, "only the holder marks its delivery unknown"
    store.mark_unknown("e", "slack", sent.token, T0)
    held = store.claim("e", "slack", T0 + UNKNOWN_RESEND_AFTER - timedelta(seconds=1))
    assert (held.held, held.delivered, held.unknown) == (False, False, True)
    later = T0 + UNKNOWN_RESEND_AFTER + timedelta(seconds=1)
    results = race(lambda s, _: s.claim("e", "slack", later).held, state_env, 4)
    assert results.count(True) == 1, "one retry sends it again, once"
    store.confirm("e", "slack", "whoever", later)
    assert store.claim("e", "slack", later + UNKNOWN_RESEND_AFTER * 2).delivered


def test_old_claims_and_outcomes_are_pruned(state_env: dict[str, str]) -> None:
    old = datetime.now(UTC) - state.KEEP_CLAIMS - timedelta(days=1)
    first = fresh(state_env)
    assert first.claim("old", "slack", old).held
    first.confirm("old", "slack", "t", old)
    assert first.claim("new", "slack", T0).held
    first.close()
    if state_env["STATE_STORE"] == "tables":  # pruned by each process once a day, when it first connects
        from translators.state.tables import TableStore

        table = fresh(state_env)
        assert isinstance(table, TableStore)
        table._pruned_at = None
    else:  # pruned when a process first opens the file
        table = fresh(state_env)
    assert table.claim("old", "slack", datetime.now(UTC)).held, "a confirmed delivery past its keep is gone"
    assert not table.claim("new", "slack", T0).held


def test_a_stale_claim_is_taken_over_once(state_env: dict[str, str], store: StateStore) -> None:
    crashed = store.claim("e", "slack", T0)
    assert crashed.held
    assert not store.claim("e", "slack", T0 + CLAIM_STALE_AFTER - timedelta(seconds=1)).held
    later = T0 + CLAIM_STALE_AFTER + timedelta(seconds=1)
    results = race(lambda s, _: s.claim("e", "slack", later).held, state_env, 4)
    assert results.count(True) == 1, results
    store.release("e", "slack", crashed.token or "")  # the crashed instance wakes up: not its claim now
    assert not store.claim("e", "slack", later).held


def test_racing_claims_have_one_winner(state_env: dict[str, str]) -> None:
    results = race(lambda s, _: s.claim("race", "slack", T0).held, state_env, 8)
    assert results.count(True) == 1, results


def test_racing_outcomes_all_land_in_order(state_env: dict[str, str]) -> None:
    # Six instances record six builds at once: whatever the interleaving, the newest build stays.
    def record(s: StateStore, i: int) -> None:
        s.record_outcome("k", "success" if i == 5 else "failure", f"e{i}", T0 + timedelta(seconds=i))

    race(record, state_env, 6)
    assert fresh(state_env).previous_outcome("k", None) == "success"


def race[T](op: Callable[[StateStore, int], T], env: dict[str, str], n: int) -> list[T]:
    """Run ``op`` on ``n`` separate store objects at the same moment, one thread each."""
    stores = [fresh(env) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(s: StateStore, i: int) -> None:
        barrier.wait()
        try:
            results.append(op(s, i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in stores:
        s.close()
    assert errors == []
    return results


# -- unavailable stores -------------------------------------------------------------------------


def test_unwritable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = open_store({"STATE_STORE": f"sqlite:///{blocker / 'state.db'}"})
    with pytest.raises(StoreUnavailable):
        store.previous_outcome("k", None)
    with pytest.raises(StoreUnavailable):
        store.claim("e", "slack", T0)


def test_unreachable_table_storage_is_unavailable_quickly_and_without_secrets() -> None:
    from tests.azurite import ACCOUNT_KEY, connection_string, free_port

    key = base64.b64encode(b"a key that must never be shown 0123456789").decode()
    conn = connection_string(free_port()).replace(ACCOUNT_KEY, key)  # nothing listens on that port
    store = open_store({"STATE_STORE": "tables", "STATE_STORAGE_CONNECTION": conn})
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable) as err:
        store.claim("e", "slack", T0)
    assert time.perf_counter() - started < 5
    assert key not in str(err.value) and "AccountKey" not in str(err.value)
    # The failure's class and what it means: never the host, port or path it quoted.
    assert str(err.value) == "ServiceRequestError (storage not reachable)"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"STATE_STORE": "redis://localhost"}, "STATE_STORE is not valid"),
        ({"STATE_STORE": "sqlite:"}, "sqlite:///path"),
        ({"STATE_STORE": "tables", "STATE_STORAGE_CONNECTION": "x", "STATE_TABLE": "x"}, "STATE_TABLE"),
    ],
)
def test_bad_settings_are_configuration_errors_naming_the_setting(env: dict[str, str], problem: str) -> None:
    assert problem in " ".join(settings.load(env).errors.values())


def test_tables_without_a_connection_is_unavailable_naming_the_settings() -> None:
    with pytest.raises(StoreUnavailable) as err:
        state.open_store(settings.load({"STATE_STORE": "tables"}).app)
    assert "STATE_STORAGE_CONNECTION" in str(err.value) and "AzureWebJobsStorage" in str(err.value)


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({}, "sqlite"),
        ({"AzureWebJobsStorage": ""}, "sqlite"),
        ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, "sqlite"),
        ({"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k"}, "tables"),
        (
            {"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=a", "STATE_STORE": "sqlite"},
            "sqlite",
        ),
        ({"STATE_STORE": "sqlite:///tmp/x.db"}, "sqlite"),
    ],
)
def test_default_backend(env: dict[str, str], kind: str) -> None:
    assert state.backend(settings.load(env).app) == kind


def test_sqlite_paths() -> None:
    assert state._sqlite_path("sqlite") == state.DEFAULT_SQLITE_PATH
    assert state._sqlite_path("sqlite:///srv/state/x.db") == Path("/srv/state/x.db")
    assert state._sqlite_path("sqlite://rel/x.db") == Path("rel/x.db")


def test_table_storage_is_imported_only_when_used() -> None:
    """azure-data-tables costs about 110 ms of import: a cold start without it must not pay."""
    code = "import sys, translators.pipeline; print(sorted(m for m in sys.modules if m.startswith('azure')))"
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "STATE_STORE")}
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_a_builds_message_is_claimed_once_posted_advanced_and_replaced(store: StateStore) -> None:
    from translators.state import MESSAGE_POST_STALE_AFTER

    at = state.now()
    assert store.message("bitrise:b1", "builds") is None
    token = store.claim_message("bitrise:b1", "builds", 0, at)
    assert token is not None
    assert store.claim_message("bitrise:b1", "builds", 1, at) is None, "one post per build and channel"
    posting = store.message("bitrise:b1", "builds")
    assert posting is not None and posting.ts is None
    store.message_posted("bitrise:b1", "builds", token, "100.1", 0, at)
    assert store.message("bitrise:b1", "builds") == state.Message("100.1", 0, posting.claimed_at)
    assert store.claim_message("bitrise:b1", "builds", 1, at + MESSAGE_POST_STALE_AFTER * 2) is None
    assert store.advance_message("bitrise:b1", "builds", 1, at)
    assert not store.advance_message("bitrise:b1", "builds", 0, at), "a late 'started' never wins"
    assert store.advance_message("bitrise:b1", "builds", 1, at), "the same stage again may update"
    store.replace_message("bitrise:b1", "builds", "999.9", "100.2", at)  # not the message on record
    assert store.message("bitrise:b1", "builds").ts == "100.1"  # type: ignore[union-attr]
    store.replace_message("bitrise:b1", "builds", "100.1", "100.2", at)
    assert store.message("bitrise:b1", "builds").ts == "100.2"  # type: ignore[union-attr]
    assert store.message("bitrise:b1", "other") is None


def test_a_failed_post_lets_go_and_an_abandoned_one_is_taken_over(store: StateStore) -> None:
    from translators.state import MESSAGE_POST_STALE_AFTER

    at = state.now()
    token = store.claim_message("bitrise:b2", "builds", 0, at)
    assert token is not None
    store.release_message("bitrise:b2", "builds", "not-ours")
    assert store.message("bitrise:b2", "builds") is not None
    store.release_message("bitrise:b2", "builds", token)
    assert store.message("bitrise:b2", "builds") is None
    dead = store.claim_message("bitrise:b2", "builds", 0, at)
    assert dead is not None and store.claim_message("bitrise:b2", "builds", 0, at) is None
    later = at + MESSAGE_POST_STALE_AFTER + timedelta(seconds=1)
    taken = store.claim_message("bitrise:b2", "builds", 1, later)
    assert taken is not None and taken != dead
    store.message_posted("bitrise:b2", "builds", dead, "1.1", 0, later)  # the dead instance wakes up
    assert store.message("bitrise:b2", "builds").ts is None  # type: ignore[union-attr]
    store.message_posted("bitrise:b2", "builds", taken, "2.2", 1, later)
    assert store.message("bitrise:b2", "builds").ts == "2.2"  # type: ignore[union-attr]
    assert not store.advance_message("bitrise:b2", "builds", 0, later)


# ---------------------------------------------------------------------------------------------
# SQLite: one operation at a time, across threads and the processes of serve --workers


def _hold_turns(turn: Any, log: Path, who: str, times: int) -> None:
    for _ in range(times):
        with turn():
            with log.open("a") as fh:
                fh.write(f"{who}+\n")
            time.sleep(0.005)  # long enough for the others to try to get in
            with log.open("a") as fh:
                fh.write(f"{who}-\n")


# pytest runs threads of its own; the forked children here only take turns and exit.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_sqlite_operations_take_turns_across_threads_and_forked_processes(tmp_path: Path) -> None:
    from translators.state.sqlite import Turn

    turn = Turn(tmp_path / "state.db")
    log = tmp_path / "turns.log"
    _hold_turns(turn, log, "parent", 1)  # the parent holds its lock file before it forks
    children = []
    for n in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                _hold_turns(turn, log, f"child{n}", 10)
            finally:
                os._exit(0)
        children.append(pid)
    threads = [threading.Thread(target=_hold_turns, args=(turn, log, f"thread{n}", 10)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0

    lines = log.read_text().split()
    assert len(lines) == 2 * (1 + 4 * 10)
    # Every turn is whole: an enter is always followed by the same holder's exit.
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    assert all(a.endswith("+") and b == a[:-1] + "-" for a, b in pairs), pairs
    assert {a[:-1] for a, _ in pairs} == {"parent", "child0", "child1", "thread0", "thread1"}


def test_closing_sqlite_stores_closes_their_lock_files(tmp_path: Path) -> None:
    from translators.state.sqlite import SqliteStore

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for n in range(20):
        store = SqliteStore(tmp_path / f"s{n}.db")
        store.record_outcome("k", "success", None, T0)
        store.close()
    assert open_files() <= before + 1  # no descriptor left per store
    assert store.previous_outcome("k", None) == "success"  # a closed store opens again when used
    store.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_worker_opens_its_own_sqlite_connection(tmp_path: Path) -> None:
    from translators.state.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "state.db")
    store.record_outcome("parent", "success", None, T0)
    with store.connection() as parents:
        pass
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            with store.connection() as own:
                code = 0 if own is not parents else 2
            store.record_outcome("child", "failure", None, T0)
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert store.previous_outcome("child", None) == "failure"
    with store.connection() as still:
        assert still is parents  # the parent's connection was left alone by the child
    store.close()
