"""No payload, setting or destination makes us answer 500, send a message twice, or drop a real one.

Each test here is a case an attack run against ``serve`` and the function once broke.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from tests.chatserver import ChatServer, Dripping, Reply
from tests.conftest import Handler, path_of, post, sample
from tests.localserve import half_sent, start_serve
from translators import host, pipeline, server, settings, sources
from translators.model import Notification
from translators.sources import applivery

BITRISE = json.loads(sample("bitrise/build-failed").body())
FINISHED = {"Bitrise-Event-Type": "build/finished"}


def calls(server: ChatServer, env: dict[str, str], channel: str) -> int:
    return len(server.at(path_of(env, channel)))


# -- 1. no 500 from any body ------------------------------------------------------------------


def surrogate_everywhere(node: Any) -> Any:
    if isinstance(node, str):
        return node + "\ud800"
    if isinstance(node, dict):
        return {k: surrogate_everywhere(v) for k, v in node.items()}
    if isinstance(node, list):
        return [surrogate_everywhere(v) for v in node]
    return node


@pytest.mark.parametrize(
    "sample_id", ["bitrise/build-failed", "appcenter/distribute", "applivery/bug", "appflow/package-success"]
)
def test_lone_surrogates_in_every_text_are_delivered_not_500(
    sample_id: str, channels: dict[str, str], chat: ChatServer
) -> None:
    s = sample(sample_id)
    before = len(chat.received)
    body = json.dumps(surrogate_everywhere(json.loads(s.body()))).encode()
    assert b"\\ud800" in body
    answer = post(channels, s.source, "slack+teams+legacy", body, s.headers)
    # An enum spelled with a surrogate is a payload the platform would not send (422), and an
    # unknown Applivery action is acknowledged (200): whatever the answer, never a 500.
    assert answer.status in (200, 422), answer.body
    json.loads(answer.json().decode("utf-8"))
    for got in chat.received[before:]:
        assert "\ufffd" in got.body.decode("utf-8"), "the surrogates became U+FFFD"
    if sample_id == "bitrise/build-failed":  # all its text is free text: it is delivered
        assert answer.status == 200 and len(chat.received) - before == 3


def test_a_surrogate_that_reaches_the_functions_entry_point_is_still_a_json_answer(
    channels: dict[str, str], monkeypatch: pytest.MonkeyPatch, functions: dict[str, Handler]
) -> None:
    for key, value in channels.items():
        monkeypatch.setenv(key, value)
    handler = functions["translate"]
    unknown_action = {**json.loads(sample("applivery/bug").body()), "action": "mdm_\ud800"}
    req = func.HttpRequest(
        "POST",
        "http://localhost/api/applivery/slack",
        body=json.dumps(unknown_action).encode(),
        route_params={"source": "applivery\ud800", "channel": "slack"},
    )
    resp = handler(req)
    assert resp.status_code == 404 and json.loads(resp.get_body())["request_id"]
    req = func.HttpRequest(
        "POST",
        "http://localhost/api/applivery/slack",
        body=json.dumps(unknown_action).encode(),
        route_params={"source": "applivery", "channel": "slack"},
    )
    resp = handler(req)
    answer = json.loads(resp.get_body().decode("utf-8"))
    assert resp.status_code == 200 and answer["event"] == "mdm_\ufffd"


def test_anything_raised_outside_the_pipeline_is_a_json_500_with_a_request_id(
    monkeypatch: pytest.MonkeyPatch, functions: dict[str, Handler]
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(settings, "from_environ", broken)
    for name in ("translate", "health"):
        req = func.HttpRequest(
            "POST", "http://localhost/api/x/y", body=b"{}", route_params={"source": "x", "channel": "y"}
        )
        resp = functions[name](req)
        body = json.loads(resp.get_body())
        assert resp.status_code == 500 and body["error"] == "internal_error" and len(body["request_id"]) == 12


@pytest.mark.parametrize(
    ("start", "finish"),
    [
        ("2024-03-01T10:00:00", "2024-03-01T10:05:00Z"),  # naive beside aware
        ("2024-03-01T10:00:00+05:30", "2024-03-01T05:00:00"),
        ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"),  # the ends of the calendar
        ("9999-12-31T23:59:59", "9999-12-31T23:59:59-05:00"),
    ],
)
def test_timestamps_naive_aware_or_extreme_are_delivered_and_remembered(
    start: str, finish: str, channels: dict[str, str]
) -> None:
    build = {
        **json.loads(sample("appcenter/build-failed").body()),
        "start_time": start,
        "finish_time": finish,
    }
    first = post(channels, "appcenter", "slack", build)
    assert first.status == 200, first.body
    assert "memory" not in first.body, "the outcome was recorded"
    again = post(channels, "appcenter", "slack", {**build, "build_id": "9999"})
    assert again.status == 200 and again.body["previous_outcome"] == "failure"


# -- 2. settings never crash anything ------------------------------------------------------------


def test_a_malformed_channel_url_breaks_that_channel_alone(tmp_path: Path, chat: ChatServer) -> None:
    chat.default("/hook/good", Reply(200, "ok"))
    served = start_serve(
        tmp_path,
        {
            "CHANNEL_BAD_URL": "http://[::1/x",
            "CHANNEL_GOOD_URL": chat.url("/hook/good"),
            "CHANNEL_GOOD_FORMAT": "slack",
        },
    )
    try:
        assert "BROKEN channel 'bad'" in served.banner()
        health = served.get("/api/health")
        assert health.status == 200 and health.json()["status"] == "degraded"
        assert "bad" in health.json()["channel_errors"]
        good = served.post("/api/bitrise/good", BITRISE, FINISHED)
        assert good.status == 200 and good.json()["status"] == "delivered"
        bad = served.post("/api/bitrise/bad", BITRISE, FINISHED)
        assert bad.status == 503 and bad.json()["channels"][0]["status"] == "misconfigured"
        both = served.post("/api/bitrise/bad+good", {**BITRISE, "build_slug": "other"}, FINISHED)
        assert both.status == 200 and [c["status"] for c in both.json()["channels"]] == [
            "misconfigured",
            "delivered",
        ]
    finally:
        served.stop()


# -- 3. dry_run is strict ----------------------------------------------------------------------

DRY_RUNS: list[tuple[str, str]] = [
    ("dry_run=1", "dry"),
    ("dry_run=true", "dry"),
    ("dry_run=TRUE", "dry"),
    ("dry_run=Yes", "dry"),
    ("dry_run=on", "dry"),
    ("dry_run=1&dry_run=1", "dry"),
    ("dry_run=0", "real"),
    ("dry_run=false", "real"),
    ("dry_run=no", "real"),
    ("", "real"),
    ("other=1", "real"),
    ("dry_run", "refused"),
    ("dry_run=", "refused"),
    ("dry_run=y", "refused"),
    ("dry_run=2", "refused"),
    ("dry_run=maybe", "refused"),
    ("dry-run=1", "refused"),
    ("DRY_RUN=1", "refused"),
    ("Dry_Run=1", "refused"),
    ("dryrun=1", "refused"),
    ("dry_run=0&dry_run=1", "refused"),
    ("dry_run=1&dry_run=0", "refused"),
    # Look-alikes a person reads as dry_run: an attack run found each of them posting for real.
    ("dry%20run=1", "refused"),
    ("dry.run=1", "refused"),
    ("%20dry_run=1", "refused"),
    ("dry_run%20=1", "refused"),
    ("dry_run%00=1", "refused"),
    ("dry%E2%80%8B_run=1", "refused"),  # a zero-width space
    ("%EF%BD%84%EF%BD%92%EF%BD%99_run=1", "refused"),  # fullwidth "dry"
    ("dry_runs=1", "refused"),
    ("dry_run[]=1", "refused"),
    ("dry_run.x=1", "refused"),
    ("amp;dry_run=1", "refused"),  # a URL copied out of HTML: ?a=1&amp;dry_run=1
    ("dryness=1", "real"),
]


@pytest.mark.parametrize(("query", "expected"), DRY_RUNS, ids=[q or "(none)" for q, _ in DRY_RUNS])
def test_only_exact_dry_run_spellings_are_dry_runs_and_typos_send_nothing(
    query: str,
    expected: str,
    channels: dict[str, str],
    chat: ChatServer,
    monkeypatch: pytest.MonkeyPatch,
    functions: dict[str, Handler],
) -> None:
    for key, value in channels.items():
        monkeypatch.setenv(key, value)
    req = func.HttpRequest(
        "POST",
        f"http://localhost/api/bitrise/slack?{query}",
        body=json.dumps(BITRISE).encode(),
        headers=FINISHED,
        route_params={"source": "bitrise", "channel": "slack"},
    )
    resp = functions["translate"](req)
    answer = json.loads(resp.get_body())
    sent = calls(chat, channels, "slack")
    if expected == "dry":
        assert resp.status_code == 200 and answer["status"] == "dry_run" and sent == 0
    elif expected == "real":
        assert resp.status_code == 200 and answer["status"] == "delivered" and sent == 1
    else:
        assert resp.status_code == 400 and answer["error"] == "invalid_dry_run" and sent == 0
        assert "dry_run=1" in answer["message"], "the answer names the accepted spellings"


# -- 4. once per channel through slow destinations -----------------------------------------------


@pytest.fixture
def slow_env(channels: dict[str, str]) -> dict[str, str]:
    return {**channels, "DELIVERY_DEADLINE_SECONDS": "2"}


def test_an_answer_slower_than_a_read_timeout_but_within_the_deadline_is_one_copy(
    slow_env: dict[str, str], chat: ChatServer
) -> None:
    chat.default(path_of(slow_env, "slack"), Reply(200, "ok", delay=1.5))
    answers = [
        post(slow_env, "bitrise", "slack", BITRISE, FINISHED) for _ in range(3)
    ]  # the source retries twice
    assert [a.body["channels"][0]["status"] for a in answers] == ["delivered", "skipped", "skipped"]
    assert calls(chat, slow_env, "slack") == 1


def test_an_answer_past_the_deadline_is_unknown_remembered_and_not_sent_again(
    slow_env: dict[str, str], chat: ChatServer
) -> None:
    chat.default(path_of(slow_env, "slack"), Reply(200, "ok", delay=3.5))
    started = time.monotonic()
    first = post(slow_env, "bitrise", "slack", BITRISE, FINISHED)
    # The destination answers at 3.5 s: the 2 s deadline ends the call first, with room for a busy machine.
    assert time.monotonic() - started < 3.4, "the deadline holds"
    assert first.status == 200 and first.body["status"] == "unknown", first.body
    assert "not known whether it arrived" in first.body["channels"][0]["error"]
    retries = [post(slow_env, "bitrise", "slack", BITRISE, FINISHED) for _ in range(2)]
    assert [r.body["channels"][0]["status"] for r in retries] == ["unknown", "unknown"]
    assert all(r.body["channels"][0]["reason"] == "unknown_outcome" for r in retries)
    assert calls(chat, slow_env, "slack") == 1


@pytest.mark.parametrize(
    ("fast", "slow", "status"),
    [
        (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\nok", "delivered"),
        (b"", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "unknown"),
    ],
    ids=["status-line-then-drip", "drip-from-the-first-byte"],
)
def test_a_dripping_destination_gets_one_copy_also_when_the_source_retries(
    fast: bytes, slow: bytes, status: str, slow_env: dict[str, str]
) -> None:
    drip = Dripping(fast, slow)
    env = {**slow_env, "CHANNEL_SLACK_URL": drip.url("/hook/T0SECRET/drip")}
    try:
        answers = [post(env, "bitrise", "slack", BITRISE, FINISHED) for _ in range(3)]
    finally:
        drip.close()
    outcomes = [a.body["channels"][0]["status"] for a in answers]
    assert outcomes == [status, "skipped" if status == "delivered" else "unknown", outcomes[1]]
    assert drip.requests == 1


# -- 5. identities that tell real events apart -------------------------------------------------


def test_two_app_center_apps_of_one_name_are_two_events(channels: dict[str, str], chat: ChatServer) -> None:
    build = json.loads(sample("appcenter/build-failed").body())
    link = "https://appcenter.ms/{who}/apps/MyApp/build/branches/main/builds/34"
    one = {**build, "app_name": "MyApp", "build_link": link.format(who="users/dana")}
    two = {**build, "app_name": "MyApp", "build_link": link.format(who="orgs/acme")}
    assert post(channels, "appcenter", "slack", one).body["status"] == "delivered"
    assert post(channels, "appcenter", "slack", two).body["status"] == "delivered"
    assert post(channels, "appcenter", "slack", two).body["status"] == "skipped", "a retry is still one"
    release = json.loads(sample("appcenter/distribute").body())
    install = "https://install.appcenter.ms/{who}/apps/myapp/releases/12"
    r1 = {**release, "app_id": None, "install_link": install.format(who="users/dana")}
    r2 = {**release, "app_id": None, "install_link": install.format(who="orgs/acme")}
    assert post(channels, "appcenter", "teams", r1).body["status"] == "delivered"
    assert post(channels, "appcenter", "teams", r2).body["status"] == "delivered"
    assert calls(chat, channels, "slack") == 2 and calls(chat, channels, "teams") == 2


def test_two_teams_certificates_for_one_app_are_two_events_and_next_years_is_new(
    channels: dict[str, str], chat: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = json.loads(sample("applivery/certificate-5-days").body())
    other_team = {**cert, "team": {"name": "Other", "identifier": "ZZZ999"}}
    other_org = {**cert, "organization": {**cert["organization"], "id": "another-workspace"}}
    for payload in (cert, other_team, other_org):
        assert post(channels, "applivery", "slack", payload).body["status"] == "delivered"
    assert post(channels, "applivery", "slack", cert).body["status"] == "skipped"
    from datetime import timedelta

    next_year = applivery.today() + timedelta(days=365)
    monkeypatch.setattr(applivery, "today", lambda: next_year)
    assert post(channels, "applivery", "slack", cert).body["status"] == "delivered"
    assert calls(chat, channels, "slack") == 4


def test_bundled_samples_have_distinct_event_identities() -> None:
    ids: dict[str, str] = {}
    for s in __import__("translators.samples", fromlist=["all_samples"]).all_samples():
        source = sources.get(s.source)
        assert source is not None
        n = source.translate(json.loads(s.body()), {k.lower(): v for k, v in s.headers.items()})
        if isinstance(n, Notification):
            assert n.event_id and n.event_id not in ids, (s.id, ids.get(n.event_id or ""))
            ids[n.event_id] = s.id


# -- 6. a rejected body still reaches the channel -----------------------------------------------


@pytest.mark.parametrize(
    ("channel", "refusal"),
    [
        ("slack", Reply(400, "invalid_blocks")),
        ("teams", Reply(400, "Bad Request")),
        ("legacy", Reply(400, "Summary or Text is required.")),
    ],
)
def test_a_refused_body_is_followed_by_the_minimal_message_once(
    channel: str, refusal: Reply, channels: dict[str, str], chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    chat.script(path_of(channels, channel), refusal)
    caplog.set_level(logging.WARNING, logger="translators")
    answer = post(channels, "bitrise", channel, BITRISE, FINISHED)
    (result,) = answer.body["channels"]
    assert answer.status == 200 and result["status"] == "delivered", answer.body
    assert result["fallback"] == f"rejected: {refusal.body}" and result["template"] == "(built-in minimal)"
    received = chat.at(path_of(channels, channel))
    assert len(received) == 2 and received[0].body != received[1].body
    assert any("default.json.j2" in r.getMessage() and "minimal" in r.getMessage() for r in caplog.records)


def test_a_refused_minimal_message_is_not_tried_a_third_time(
    channels: dict[str, str], chat: ChatServer
) -> None:
    chat.script(path_of(channels, "slack"), Reply(400, "invalid_blocks"), Reply(400, "invalid_blocks"))
    answer = post(channels, "bitrise", "slack", BITRISE, FINISHED)
    assert answer.status == 502 and answer.body["channels"][0]["status"] == "failed"
    assert calls(chat, channels, "slack") == 2


# -- 7. a stop loses nothing ------------------------------------------------------------------


def test_sigterm_during_a_fan_out_finishes_and_confirms_every_delivery(
    tmp_path: Path, chat: ChatServer
) -> None:
    chat.default("/hook/fast", Reply(200, "ok"))
    chat.default("/hook/slow", Reply(202, "", delay=2.0))
    env = {
        "CHANNEL_FAST_URL": chat.url("/hook/fast"),
        "CHANNEL_FAST_FORMAT": "slack",
        "CHANNEL_SLOW_URL": chat.url("/hook/slow"),
        "CHANNEL_SLOW_FORMAT": "teams",
        "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
    }
    served = start_serve(tmp_path / "one", env)
    body = {**BITRISE, "build_slug": "sigterm-test"}
    answers: list[Any] = []
    thread = threading.Thread(
        target=lambda: answers.append(served.post("/api/bitrise/fast+slow", body, FINISHED))
    )
    thread.start()
    time.sleep(0.7)  # the fast channel is delivered, the slow one is waiting for its answer
    served.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=20)
    served.proc.wait(timeout=20)
    assert answers and answers[0].status == 200, answers
    assert [c["status"] for c in answers[0].json()["channels"]] == ["delivered", "delivered"]
    again = start_serve(tmp_path / "two", env)
    try:
        retry = again.post("/api/bitrise/fast+slow", body, FINISHED).json()
    finally:
        again.stop()
    assert [c.get("reason") for c in retry["channels"]] == ["duplicate", "duplicate"], "both were confirmed"
    assert len(chat.at("/hook/fast")) == 1 and len(chat.at("/hook/slow")) == 1


# -- 8. the local server stays responsive -------------------------------------------------------


@pytest.fixture
def local(
    monkeypatch: pytest.MonkeyPatch, chat: ChatServer, tmp_path: Path, registered: list[Any]
) -> Iterator[int]:
    """The local server in this process (its port), a destination that hangs, one that answers at once.

    Served as ``serve`` serves, but a connection idle for a second (one whose request stalled
    half-way too) is closed, to keep the test short.
    """
    chat.default("/hook/hang", Reply(200, "ok", delay=20))
    chat.default("/hook/fine", Reply(200, "ok"))
    env = {
        "CHANNEL_HANG_URL": chat.url("/hook/hang"),
        "CHANNEL_HANG_FORMAT": "slack",
        "CHANNEL_FINE_URL": chat.url("/hook/fine"),
        "CHANNEL_FINE_FORMAT": "slack",
        "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
        "DELIVERY_DEADLINE_SECONDS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    host.raise_open_files_limit()  # this process holds both ends of the connections below
    app, _ = server.create_app(registered)
    sock = host.listen("127.0.0.1", 0)
    httpd = host.serve_in_thread(app, sock, channel_timeout=IDLE_SECONDS, cleanup_interval=1)
    try:
        yield sock.getsockname()[1]
    finally:
        host.stop_in_thread(httpd)


IDLE_SECONDS = 1


def request(port: int, method: str, path: str, body: bytes = b"", timeout: float = 30) -> tuple[int, float]:
    """(status, seconds); status 0 when the connection failed (the server stopped meanwhile)."""
    import http.client

    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=FINISHED)
        status = conn.getresponse().status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, time.monotonic() - started


def test_a_hanging_destination_takes_neither_health_nor_other_channels(local: int) -> None:
    port = local
    hanging = []
    for i in range(10):  # more calls than function threads, all waiting on the hanging destination
        body = json.dumps({**BITRISE, "build_slug": f"hang-{i}"}).encode()
        t = threading.Thread(
            target=lambda b=body: hanging.append(request(port, "POST", "/api/bitrise/hang", b))
        )
        t.start()
    time.sleep(3)  # every one of them has reached the destination or given up waiting for a turn
    status, seconds = request(port, "GET", "/api/health")
    assert status == 200 and seconds < 1.0
    fine = json.dumps({**BITRISE, "build_slug": "fine"}).encode()
    status, seconds = request(port, "POST", "/api/bitrise/fine", fine)
    assert status == 200 and seconds < 1.0, "another channel is not held up"
    gave_up = [r for r in hanging if r[0] == 200 and r[1] < 2.5]
    assert len(gave_up) >= 4, "beyond the destination's limit, calls are queued instead of waiting"


def test_half_sent_requests_are_dropped_after_a_while_and_block_nothing(local: int) -> None:
    port = local
    stalled = half_sent(port, 500)
    try:
        status, seconds = request(port, "GET", "/api/health")
        assert status == 200 and seconds < 1.0
        fine = json.dumps({**BITRISE, "build_slug": "fine-while-stalled"}).encode()
        status, seconds = request(port, "POST", "/api/bitrise/fine", fine)
        assert status == 200 and seconds < 1.0, "a webhook is not held up either"
        time.sleep(IDLE_SECONDS + 2.5)
        closed = 0
        for sock in stalled:  # each was closed by the server: reading gives the end of the stream
            sock.settimeout(2)
            try:
                closed += sock.recv(1024) == b""
            except OSError:
                closed += 1
        assert closed == len(stalled)
    finally:
        for sock in stalled:
            sock.close()


# -- 9. a slow store is bounded ----------------------------------------------------------------


def test_a_frozen_table_storage_does_not_line_requests_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.azurite import connection_string
    from translators.state import StoreUnavailable, tables
    from translators.state.connection import Target

    frozen = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    monkeypatch.setitem(tables.CLIENT_OPTIONS, "read_timeout", 1)
    monkeypatch.setitem(tables.CLIENT_OPTIONS, "retry_total", 0)
    target = Target("connection_string", "test", connection=connection_string(frozen.getsockname()[1]))
    store = tables.TableStore(target, "frozen")
    took: list[float] = []

    def claim() -> None:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.claim("e", "slack", __import__("translators.state", fromlist=["now"]).now())
        took.append(time.monotonic() - started)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        frozen.close()
    assert len(took) == 4 and max(took) < 3, took


def test_health_is_degraded_naming_the_failure_class_when_memory_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    answer = pipeline.health(settings.load({"STATE_STORE": f"sqlite:///{blocker / 'state.db'}"}))
    assert answer.status == 200 and answer.body["status"] == "degraded"
    assert answer.body["memory"] == {"backend": "sqlite", "available": False}
    (problem,) = answer.body["problems"]
    assert problem.startswith("memory unavailable: ") and str(tmp_path) not in problem


@pytest.mark.parametrize(
    "raw",
    [
        b'{"build_slug": "815697039aa6c07c", "build_status": 2, "build_status": 1, "app_slug": "a"}',
        b'{"build_slug": "815697039aa6c07c", "build_status": 2,'
        b' "git": {"src_branch": "a", "src_branch": "b"}}',
    ],
)
def test_a_duplicate_json_key_is_refused_naming_the_key(
    raw: bytes, channels: dict[str, str], chat: ChatServer
) -> None:
    answer = post(channels, "bitrise", "slack", raw, FINISHED)
    assert answer.status == 400 and answer.body["error"] == "duplicate_key", answer.body
    key = "build_status" if b'"build_status": 1' in raw else "src_branch"
    assert f"'{key}' appears twice" in answer.body["message"]
    assert calls(chat, channels, "slack") == 0
