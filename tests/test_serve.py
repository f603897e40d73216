"""``python -m translators serve``: the function app's own HTTP functions over real HTTP.

The server runs as a subprocess on a port the OS picks; the tests talk HTTP to it and read its
log. Deliveries go to the server's own inbox or to a loopback ChatServer the tests start.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from werkzeug.test import Client

from bench.throughput import children as worker_processes
from tests import bodies
from tests.chatserver import SUCCESS, ChatServer, Reply
from tests.localserve import Served, half_sent, run_cli, start_serve
from translators import host, samples
from translators.server import (
    MAX_REQUEST_BYTES,
    HttpFunction,
    Inbox,
    LocalFunctionApp,
    RouteError,
    rule_strings,
)

ALL = "slack+teams+teams-messagecard"
FAILED = samples.get("bitrise/build-failed")
DISTRIBUTE = samples.get("appcenter/distribute")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start servers for one test; every one is terminated afterwards, whatever happened."""
    started: list[Served] = []

    def start(
        env: dict[str, str] | None = None, args: tuple[str, ...] = (), cwd: Path | None = None
    ) -> Served:
        served = start_serve(tmp_path / f"serve{len(started)}", env, args, cwd)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def inbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on the embedded defaults (no channel configured), shared by the module's tests."""
    served = start_serve(tmp_path_factory.mktemp("inbox"))
    yield served
    served.stop()


def newer(served: Served, after: int) -> list[dict[str, Any]]:
    listing = served.get("/inbox").json()
    return [m for m in listing["messages"] if m["id"] > after]


def last_id(served: Served) -> int:
    messages = served.get("/inbox").json()["messages"]
    return messages[0]["id"] if messages else 0


# ---------------------------------------------------------------------------------------------
# Embedded defaults: channels that deliver to the server's own inbox


def test_default_channels_are_the_inbox(inbox_server: Served) -> None:
    health = inbox_server.get("/api/health").json()
    assert {c["name"]: c["format"] for c in health["channels"]} == {
        "slack": "slack",
        "teams": "teams",
        "teams-messagecard": "teams-messagecard",
    }
    banner = inbox_server.banner()
    assert "the local inbox" in banner
    # The ready-to-paste line posts a bundled sample to the three channels of this very server.
    assert (
        f"--data-binary @{FAILED.path}" in banner
        and f"{inbox_server.base}/api/bitrise/{ALL}" in banner
        and "-H 'Bitrise-Event-Type: build/finished'" in banner
    )


def test_posted_sample_is_delivered_and_kept_newest_first(inbox_server: Served) -> None:
    before = last_id(inbox_server)
    dry = inbox_server.post(f"/api/bitrise/{ALL}?dry_run=1", FAILED.body(), FAILED.headers).json()
    expected = {c["channel"]: c["body"] for c in dry["channels"]}

    answer = inbox_server.post(f"/api/bitrise/{ALL}", FAILED.body(), FAILED.headers)
    assert answer.status == 200, answer.raw
    body = answer.json()
    assert body["status"] == "delivered" and body["event"] == "build.failed"
    assert {c["channel"]: c["http_status"] for c in body["channels"]} == {
        "slack": 200,
        "teams": 202,
        "teams-messagecard": 200,
    }

    arrived = newer(inbox_server, before)
    assert sorted(m["channel"] for m in arrived) == ["slack", "teams", "teams-messagecard"]
    for message in arrived:
        assert message["format"] == message["channel"]
        # What the inbox kept is exactly the rendered body the channel was to receive.
        assert message["body"] == expected[message["channel"]]
        assert "Build #41 failed" in json.dumps(message["body"], ensure_ascii=False)
    # Each listed with the line its chat client would notify with.
    by_channel = {m["channel"]: m for m in arrived}
    assert by_channel["slack"]["text"] == expected["slack"]["attachments"][0]["fallback"]
    assert by_channel["teams"]["text"] == expected["teams"]["attachments"][0]["content"]["fallbackText"]
    assert by_channel["teams-messagecard"]["text"] == expected["teams-messagecard"]["summary"]

    answer = inbox_server.post("/api/appcenter/slack", DISTRIBUTE.body())
    assert answer.status == 200, answer.raw
    messages = inbox_server.get("/inbox").json()["messages"]
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids, reverse=True), "newest first"
    assert messages[0]["channel"] == "slack" and bodies.title("slack", messages[0]["body"])
    assert "1.7.0" in json.dumps(messages[0]["body"]) and messages[0]["id"] > max(m["id"] for m in arrived)
    times = [m["received_at"] for m in messages]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize(
    ("fmt", "path"), [(f, f) for f in SUCCESS] + [("teams-messagecard", "teams_messagecard")]
)
def test_inbox_answers_like_the_real_destination(inbox_server: Served, fmt: str, path: str) -> None:
    status, text = SUCCESS[fmt]
    before = last_id(inbox_server)
    answer = inbox_server.post(f"/inbox/{path}", {"text": "hello"})
    assert (answer.status, answer.raw.decode()) == (status, text)
    [kept] = newer(inbox_server, before)
    assert (kept["format"], kept["body"]) == (fmt, {"text": "hello"})


def test_inbox_refuses_what_a_destination_would(inbox_server: Served) -> None:
    before = last_id(inbox_server)
    assert inbox_server.post("/inbox/slack", b"not json").status == 400
    unknown = inbox_server.post("/inbox/discord", {"text": "x"})
    assert unknown.status == 404 and "slack" in unknown.json()["valid"]
    assert newer(inbox_server, before) == []


# ---------------------------------------------------------------------------------------------
# Bad input: every answer is JSON that names what was wrong


def test_bad_input_answers(inbox_server: Served) -> None:
    not_json = inbox_server.post("/api/bitrise/slack", b"{not json", FAILED.headers)
    assert not_json.status == 400 and not_json.json()["error"] == "invalid_body"

    invalid = inbox_server.post("/api/bitrise/slack", {"build_number": "x"}, FAILED.headers)
    assert invalid.status == 422 and any(e["path"] == "build_number" for e in invalid.json()["errors"])

    source = inbox_server.post("/api/jenkins/slack", FAILED.body())
    assert source.status == 404 and source.json()["error"] == "unknown_source"

    channel = inbox_server.post("/api/bitrise/nope", FAILED.body(), FAILED.headers)
    assert channel.status == 404 and channel.json()["valid"] == ["slack", "teams", "teams-messagecard"]

    nowhere = inbox_server.get("/api/bitrise")
    assert nowhere.status == 404 and nowhere.json()["error"] == "not_found"
    assert "POST /api/{source}/{channel}" in nowhere.json()["routes"]

    get_translate = inbox_server.get("/api/bitrise/slack")
    assert get_translate.status == 405 and get_translate.json()["allowed"] == ["POST"]
    assert get_translate.headers["allow"] == "POST"

    post_health = inbox_server.post("/api/health", {})
    assert post_health.status == 405 and "GET" in post_health.json()["allowed"]


def test_one_log_line_per_request_without_the_query_string(inbox_server: Served) -> None:
    marker = uuid.uuid4().hex
    answer = inbox_server.get(f"/api/health?code=SECRETCODE{marker}&token=TOKEN{marker}")
    assert answer.status == 200
    inbox_server.get(f"/api/missing-{marker}?token=TOKEN{marker}")
    inbox_server.post(f"/api/bitrise/slack?code=SECRETCODE{marker}", FAILED.body(), FAILED.headers)

    inbox_server.wait_for_log(rf"translators\.serve: GET /api/missing-{marker} 404 \d+ ms$")
    # A function call is logged once, by the pipeline, with every channel's outcome.
    inbox_server.wait_for_log(r'translators\.pipeline: request \{.*"channels":"slack".*"status":200')
    log = inbox_server.log()
    assert not re.search(r"translators\.serve: POST /api/bitrise/slack", log), "one line per request"
    assert len([line for line in log.splitlines() if f"/api/missing-{marker}" in line]) == 1
    assert marker not in log.replace(f"/api/missing-{marker}", ""), "a query string reached the log"


# ---------------------------------------------------------------------------------------------
# The HTTP server: keep-alive, many calls at once, limits, stopping


def test_connections_are_kept_alive(inbox_server: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", inbox_server.port, timeout=30)
    try:
        conn.request("GET", "/api/health")
        first = conn.getresponse()
        first.read()
        sock = conn.sock  # http.client drops the socket when the server says it closes it
        assert first.status == 200 and sock is not None, first.getheader("connection")
        conn.request("GET", "/inbox")
        second = conn.getresponse()
        second.read()
        assert second.status == 200 and conn.sock is sock, "the second request reused the connection"
    finally:
        conn.close()


def distinct(sample: samples.Sample, tag: str) -> bytes:
    """The sample as another build (its own event), so that memory does not skip it as a duplicate."""
    payload = json.loads(sample.body())
    payload["build_slug"] = f"{payload['build_slug']}-{tag}"
    return json.dumps(payload).encode()


def more_calls_than_threads(served: Served) -> None:
    """Each call holds a thread while its deliveries come back into this same server (its inbox port)."""
    tag = uuid.uuid4().hex[:8]
    before = last_id(served)
    calls = 3 * host.THREADS
    with ThreadPoolExecutor(calls) as pool:
        answers = list(
            pool.map(
                lambda i: served.post(
                    "/api/bitrise/slack+teams", distinct(FAILED, f"{tag}-{i}"), FAILED.headers
                ),
                range(calls),
            )
        )
    assert [a.status for a in answers] == [200] * calls, [a.raw[:200] for a in answers if a.status != 200]
    assert all(a.json()["status"] == "delivered" for a in answers)
    assert len(newer(served, before)) == 2 * calls


def test_more_calls_at_once_than_threads_all_deliver_to_the_inbox(inbox_server: Served) -> None:
    more_calls_than_threads(inbox_server)


def test_more_calls_at_once_than_threads_of_one_process_all_deliver(serve: Callable[..., Served]) -> None:
    more_calls_than_threads(serve(args=("--workers", "1")))


def test_an_oversized_body_is_refused_before_it_is_read(inbox_server: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", inbox_server.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/bitrise/slack")
        conn.putheader("Content-Length", str(MAX_REQUEST_BYTES + 1))
        conn.endheaders()  # and no body: the answer must not wait for it
        answer = conn.getresponse()
        assert answer.status == 413
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_answers_the_call_in_progress_then_exits(
    serve: Callable[..., Served], chat: ChatServer, tmp_path: Path, sig: signal.Signals
) -> None:
    slow = f"/hook/slow/{uuid.uuid4().hex}"
    chat.default(slow, Reply(200, "ok", delay=1.5))
    served = serve(
        {
            "CHANNEL_SLOW_URL": chat.url(slow),
            "CHANNEL_SLOW_FORMAT": "slack",
            "STATE_STORE": f"sqlite://{tmp_path / 'state.db'}",
        },
        ("--workers", "1"),  # one process: the keep-alive client below is on the busy one
    )
    idle = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)  # a keep-alive client
    idle.request("GET", "/api/health")
    idle.getresponse().read()
    answers: list[Any] = []
    call = threading.Thread(
        target=lambda: answers.append(served.post("/api/bitrise/slow", FAILED.body(), FAILED.headers))
    )
    call.start()
    deadline = time.monotonic() + 10
    while not chat.at(slow):  # the call is delivering: in progress
        assert time.monotonic() < deadline, "the delivery never started"
        time.sleep(0.02)
    served.proc.send_signal(sig)
    while True:  # new connections are refused soon after the signal
        try:
            served.get("/api/health")
        except ConnectionError:  # refused; or reset, when it was still queued as the socket closed
            break
        assert time.monotonic() < deadline, "still accepting connections after the signal"
        time.sleep(0.02)
    assert call.is_alive(), "the delivery takes 1.5 s: the call is still in progress"
    idle.request("GET", "/api/health")  # a call on a connection opened before: refused, and closed
    refused = idle.getresponse()
    assert refused.status == 503 and json.loads(refused.read())["error"] == "stopping"
    assert refused.getheader("connection") == "close"
    idle.close()

    call.join(10)
    [answer] = answers
    assert answer.status == 200 and answer.json()["status"] == "delivered", answer.raw
    assert served.proc.wait(10) == 0
    assert served.banner().rstrip().endswith("stopped")
    assert "Traceback" not in served.log() and "unanswered" not in served.log()


# ---------------------------------------------------------------------------------------------
# Configured channels work as on Azure


def test_configured_channels_deliver_and_no_inbox_channels_are_added(
    serve: Callable[..., Served], chat: ChatServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex
    slack_path, ops_path = f"/hook/slack/T0SECRET{tag}", f"/workflows/SECRET{tag}/invoke"
    chat.default(ops_path, Reply(*SUCCESS["teams"]))
    served = serve(
        {
            "CHANNEL_SLACK_URL": chat.url(slack_path),
            "CHANNEL_SLACK_FORMAT": "slack",
            "CHANNEL_OPS_URL": chat.url(ops_path),
            "CHANNEL_OPS_FORMAT": "teams",
            "STATE_STORE": f"sqlite://{tmp_path / 'state.db'}",
        }
    )
    health = served.get("/api/health").json()
    assert {c["name"]: c["format"] for c in health["channels"]} == {"slack": "slack", "ops": "teams"}

    answer = served.post("/api/bitrise/slack+ops", FAILED.body(), FAILED.headers)
    assert answer.status == 200, answer.raw
    assert f"SECRET{tag}" not in answer.raw.decode()
    [to_slack] = chat.at(slack_path)
    [to_ops] = chat.at(ops_path)
    assert "Build #41 failed" in bodies.title("slack", to_slack.json())
    assert to_ops.json()["attachments"][0]["content"]["type"] == "AdaptiveCard"
    assert served.get("/inbox").json()["count"] == 0
    assert served.post("/api/bitrise/teams-messagecard", FAILED.body(), FAILED.headers).status == 404

    chat.script(slack_path, Reply(404, "no_service"))
    failed = served.post("/api/appcenter/slack", DISTRIBUTE.body())
    assert failed.status == 502 and "no_service" in failed.json()["channels"][0]["error"]
    served.wait_for_log(r"POST /api/appcenter/slack 502 \d+ ms$")
    assert f"SECRET{tag}" not in served.log() + served.banner()


def test_local_settings_values_are_read_and_the_environment_wins(
    serve: Callable[..., Served], chat: ChatServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex
    from_file, overridden, from_env = (f"/hook/{n}/{tag}" for n in ("file", "overridden", "env"))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "FUNCTIONS_WORKER_RUNTIME": "python",
                    "CHANNEL_FILED_URL": chat.url(from_file),
                    "CHANNEL_FILED_FORMAT": "slack",
                    "CHANNEL_BOTH_URL": chat.url(overridden),
                    "CHANNEL_BOTH_FORMAT": "slack",
                    "DELIVERY_MAX_ATTEMPTS": 1,
                },
            }
        )
    )
    env = {"CHANNEL_BOTH_URL": chat.url(from_env), "STATE_STORE": f"sqlite://{tmp_path / 'state.db'}"}
    served = serve(env, cwd=app_dir)
    channels = {c["name"] for c in served.get("/api/health").json()["channels"]}
    assert channels == {"filed", "both"}, "file values used, and no inbox channels"

    answer = served.post("/api/bitrise/filed+both", FAILED.body(), FAILED.headers)
    assert answer.status == 200, answer.raw
    assert len(chat.at(from_file)) == 1 and len(chat.at(from_env)) == 1
    assert chat.at(overridden) == [], "the environment wins over local.settings.json"
    assert "environment kept for CHANNEL_BOTH_URL" in served.banner()

    # A non-string value (a number) is passed on as text, as Core Tools does.
    chat.script(from_file, Reply(503, "busy"), Reply(200, "ok"))
    retried = served.post("/api/appcenter/filed", DISTRIBUTE.body())
    (result,) = retried.json()["channels"]
    assert retried.status == 200 and result["status"] == "queued" and result["attempts"] == 1


def test_unusable_settings_file_stops_serve_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "local.settings.json"
    bad.write_text('{"Values": {"CHANNEL_X_URL": ')
    result = run_cli("serve", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "local.settings.json is not valid JSON" in result.stderr and "line 1" in result.stderr
    missing = run_cli("serve", "--port", "0", "--settings", "nowhere.json", cwd=tmp_path)
    assert missing.returncode == 2 and "no settings file at nowhere.json" in missing.stderr


# ---------------------------------------------------------------------------------------------
# Routing from route templates (in process, with stand-in functions: get_functions() is not called)


def test_rule_strings_from_azure_route_templates() -> None:
    assert rule_strings("api", "{source}/{channel}") == [("/api/<source>/<channel>", {})]
    assert rule_strings("", "health") == [("/health", {})]
    assert rule_strings("api", "files/{*rest}") == [("/api/files/<path:rest>", {})]
    assert rule_strings("api", "items/{id:int:min(1)?}") == [
        ("/api/items/<id>", {}),
        ("/api/items", {"id": ""}),
    ]
    assert rule_strings("api", "v/{name=x}") == [("/api/v/<name>", {}), ("/api/v", {"name": "x"})]
    with pytest.raises(RouteError):
        rule_strings("api", "{a?}/b")


def test_routes_come_from_the_registered_templates() -> None:
    seen: list[func.HttpRequest] = []

    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(req)
        payload = {
            "route": dict(req.route_params),
            "params": dict(req.params),
            "body": req.get_body().decode(),
        }
        return func.HttpResponse(json.dumps(payload), status_code=201, mimetype="application/json")

    app = LocalFunctionApp(
        [HttpFunction("echo", "things/{id:int}/{name}", ("PUT",), "req", echo)], "api", Inbox()
    )
    client = Client(app)
    response = client.put("/api/things/42/box?x=1&x=2", data=b"hi", headers={"X-Test": "yes"})
    assert response.status_code == 201 and response.mimetype == "application/json"
    assert response.get_json() == {"route": {"id": "42", "name": "box"}, "params": {"x": "1"}, "body": "hi"}
    assert seen[0].headers.get("x-test") == "yes" and seen[0].method == "PUT"
    # Constraints are Azure's to enforce: here the function gets the segment as it came.
    assert client.put("/api/things/abc/box").get_json()["route"] == {"id": "abc", "name": "box"}
    wrong = client.get("/api/things/42/box")
    assert wrong.status_code == 405 and wrong.get_json()["allowed"] == ["PUT"]
    assert client.get("/api/health").status_code == 404, "only registered routes are served"


def test_a_function_that_raises_is_answered_json_500() -> None:
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("boom")

    client = Client(LocalFunctionApp([HttpFunction("b", "b", None, "req", broken)], "api", Inbox()))
    response = client.delete("/api/b")
    assert response.status_code == 500 and response.get_json()["error"] == "internal_error"


def test_inbox_is_bounded_and_thread_safe() -> None:
    inbox = Inbox(size=50)

    def add(n: int) -> None:
        for i in range(100):
            inbox.add("slack", "slack", {"n": n, "i": i}, 10)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = inbox.newest_first()
    assert inbox.received == 800 and len(kept) == 50
    assert [m["id"] for m in kept] == list(range(800, 750, -1))


def test_a_stopping_server_refuses_calls_but_takes_deliveries() -> None:
    seen: list[int] = []

    def work(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(app.in_flight)
        # The host manages the connection: hop-by-hop headers from a function are not sent on.
        return func.HttpResponse("ok", headers={"Connection": "keep-alive", "X-Kept": "1"})

    app = LocalFunctionApp([HttpFunction("work", "work", ("GET",), "req", work)], "api", Inbox())
    client = Client(app)
    answer = client.get("/api/work", buffered=True)  # buffered: read to the end and closed, as a server does
    assert (
        answer.status_code == 200 and answer.headers["X-Kept"] == "1" and "Connection" not in answer.headers
    )
    assert seen == [1] and app.in_flight == 0, "counted while it runs, not after its answer is sent"

    app.stopping = True
    refused = client.get("/api/work", buffered=True)
    assert refused.status_code == 503 and refused.get_json()["error"] == "stopping"
    # No Content-Length: an HTTP/1.1 server then closes the connection after the answer.
    assert "Content-Length" not in refused.headers and seen == [1]
    assert client.post("/inbox/slack", json={"text": "late"}).status_code == 200
    assert app.inbox.received == 1 and app.in_flight == 0


# ---------------------------------------------------------------------------------------------
# serve --workers: several processes on one port


def worker_pids(served: Served) -> set[int]:
    return {int(pid) for pid in re.findall(r"\[(\d+)\] translators\.pipeline: request ", served.log())}


def test_workers_share_the_port_memory_and_inbox(serve: Callable[..., Served]) -> None:
    # Forking a process that runs threads can deadlock the child; Python says so when warnings show.
    served = serve({"PYTHONWARNINGS": "default::DeprecationWarning"}, ("--workers", "2"))
    assert "workers: 2 processes" in served.banner()
    before = last_id(served)
    for i in range(24):  # a connection each: the kernel spreads them over the workers
        body = distinct(FAILED, f"w{i}")
        assert served.post("/api/bitrise/slack", body, FAILED.headers).json()["status"] == "delivered"
    assert len(worker_pids(served)) == 2, "both workers answered"
    for _ in range(6):  # whichever worker answers, the inbox is the same
        arrived = newer(served, before)
        assert len(arrived) == 24 and len({json.dumps(m["body"]) for m in arrived}) == 24
    # Memory is shared: the same event sent to both workers at once is delivered once.
    twice = distinct(FAILED, "twice")
    answers: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(served.post("/api/bitrise/slack", twice, FAILED.headers))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(a.json()["channels"][0]["status"] for a in answers)
    assert statuses.count("delivered") == 1, statuses
    assert sum("twice" in json.dumps(m["body"]) for m in newer(served, before)) == 1
    assert "multi-threaded" not in served.log() and "Traceback" not in served.log()


def test_workers_stop_together_answering_what_is_in_progress(
    serve: Callable[..., Served], chat: ChatServer, tmp_path: Path
) -> None:
    slow = f"/hook/slow/{uuid.uuid4().hex}"
    chat.default(slow, Reply(200, "ok", delay=1.5))
    served = serve({"CHANNEL_SLOW_URL": chat.url(slow), "CHANNEL_SLOW_FORMAT": "slack"}, ("--workers", "2"))
    children = worker_processes(served.proc.pid)
    assert len(children) == 2
    answers: list[Any] = []
    call = threading.Thread(
        target=lambda: answers.append(served.post("/api/bitrise/slow", FAILED.body(), FAILED.headers))
    )
    call.start()
    deadline = time.monotonic() + 10
    while not chat.at(slow):
        assert time.monotonic() < deadline, "the delivery never started"
        time.sleep(0.02)
    served.proc.send_signal(signal.SIGINT)  # what Ctrl+C sends
    call.join(15)
    [answer] = answers
    assert answer.status == 200 and answer.json()["status"] == "delivered"
    assert served.proc.wait(15) == 0 and served.banner().rstrip().endswith("stopped")
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "no worker left behind"
    assert "Traceback" not in served.log()


def drainer_lock(arbiter: int) -> Path:
    import tempfile

    return Path(tempfile.gettempdir(), f"translators-{arbiter}-drainer.lock")


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for whoever adopted it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """A SIGKILL leaves the supervisor no time to stop its workers: they notice and stop themselves."""
    served = start_serve(tmp_path / "killed", None, ("--workers", "2"))
    children = worker_processes(served.proc.pid)
    try:
        assert len(children) == 2
        assert served.post("/api/bitrise/slack", distinct(FAILED, "orphan"), FAILED.headers).status == 200
        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in children):
            assert time.monotonic() < deadline, "workers kept serving after their supervisor died"
            time.sleep(0.05)
    finally:
        served.stop()
        for pid in children:  # adopted by init once orphaned: not found under the supervisor
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_that_dies_is_replaced_and_the_others_serve_meanwhile(tmp_path: Path) -> None:
    served = start_serve(tmp_path / "replaced", None, ("--workers", "2"))
    try:
        victim, survivor = worker_processes(served.proc.pid)
        os.kill(victim, signal.SIGKILL)
        answer = served.post("/api/bitrise/slack", distinct(FAILED, "replaced"), FAILED.headers)
        assert answer.status == 200 and answer.json()["status"] == "delivered", answer.raw
        deadline = time.monotonic() + 10
        while len(re.findall(r"Booting worker with pid", served.log())) < 3:
            assert time.monotonic() < deadline, served.log()[-2000:]
            time.sleep(0.05)
        workers = worker_processes(served.proc.pid)
        assert survivor in workers and victim not in workers and len(workers) == 2
    finally:
        served.stop()
    assert served.proc.returncode == 0


def test_workers_stop_at_once_whenever_the_signal_comes(tmp_path: Path) -> None:
    """Stopped right after its first answer, as a benchmark or a script does, several times over:
    often while gunicorn still forks the second worker, whose handlers are not yet in place."""
    for run in range(8):
        served = start_serve(tmp_path / f"s{run}", None, ("--workers", "2"), every_worker=False)
        try:
            dry = f"/api/bitrise/slack?dry_run=1&run={run}"
            assert served.post(dry, distinct(FAILED, f"stop{run}"), FAILED.headers).status == 200
            started = time.monotonic()
            served.proc.send_signal(signal.SIGTERM)
            assert served.proc.wait(10) == 0
            assert time.monotonic() - started < 5, "a worker that had exited was waited for"
            assert not drainer_lock(served.proc.pid).exists(), "the drainer's lock file was left behind"
        finally:
            served.stop()


def test_a_signature_header_with_an_underscore_is_warned_about_and_its_dash_form_read(
    serve: Callable[..., Served],
) -> None:
    """waitress drops headers whose names hold "_" (Appcircle's ac_signature): serve says so at start,
    and the 401 says why, rather than refusing every Appcircle delivery without a word."""
    start = samples.get("appcircle/build-start")
    served = serve({"APPCIRCLE_WEBHOOK_SECRET": "test"})
    assert "WARNING APPCIRCLE_WEBHOOK_SECRET is set, but this server drops the ac_signature header" in (
        served.banner()
    )
    signature = "8470172a1c60447abd7dce97227448da2b369b17d54d128306625979eca6476b"  # Appcircle's example
    dropped = served.post(f"/api/appcircle/{ALL}?dry_run=1", start.body(), {"ac_signature": signature})
    assert dropped.status == 401 and "nginx by default" in dropped.json()["message"]
    dashed = served.post(f"/api/appcircle/{ALL}?dry_run=1", start.body(), {"ac-signature": signature})
    assert dashed.status == 200 and dashed.json()["status"] == "dry_run", dashed.raw


def test_admin_actions_need_the_webhook_token_as_azure_needs_the_master_key(tmp_path: Path) -> None:
    token = "local-admin-token-7f3a9c"
    served = start_serve(tmp_path, {"WEBHOOK_TOKEN": token})
    try:
        for method, path in (
            ("GET", "/api/outbox"),
            ("POST", "/api/outbox/replay"),
            ("POST", "/api/outbox/drop"),
            ("DELETE", "/inbox"),
        ):
            refused = served.request(method, path, b"{}" if method == "POST" else None)
            assert refused.status == 401, (method, path, refused.status)
            assert token not in refused.raw.decode()
        assert served.request("GET", "/api/outbox", headers={"X-Webhook-Token": token}).status == 200
        assert served.request("DELETE", f"/inbox?token={token}").status == 200
        health = served.get("/api/health")
        assert health.status == 200 and token not in health.raw.decode(), "health stays open"
    finally:
        served.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_on_a_busy_port_exits_2_instead_of_sharing_it(tmp_path: Path, workers: str) -> None:
    import subprocess
    import sys

    from tests.localserve import clean_env

    first = start_serve(tmp_path, args=("--workers", "2"))
    try:
        second = subprocess.run(
            [sys.executable, "-m", "translators", "serve", "--port", str(first.port), "--workers", workers],
            cwd=tmp_path,
            env=clean_env({}),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert f"port {first.port} is in use" in second.stderr
        assert first.get("/api/health").status == 200, "the first server goes on alone"
    finally:
        first.stop()


def test_serving_on_every_address_without_a_token_says_so(tmp_path: Path) -> None:
    served = start_serve(tmp_path, {}, args=("--host", "0.0.0.0"))  # noqa: S104 - the case under test
    try:
        assert "WARNING listening on 0.0.0.0 with no WEBHOOK_TOKEN" in served.banner()
    finally:
        served.stop()
    quiet = start_serve(tmp_path / "loopback")
    try:
        assert "no WEBHOOK_TOKEN" not in quiet.banner(), "the default, 127.0.0.1, is this machine only"
    finally:
        quiet.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_health_and_a_webhook_answer_at_once_during_500_half_sent_requests(
    serve: Callable[..., Served], workers: str
) -> None:
    served = serve(args=("--workers", workers))
    stalled = half_sent(served.port, 500)
    try:
        started = time.monotonic()
        assert served.get("/api/health").status == 200
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        answer = served.post("/api/bitrise/slack", distinct(FAILED, f"stalled-{workers}"), FAILED.headers)
        assert answer.status == 200 and answer.json()["status"] == "delivered", answer.raw
        assert time.monotonic() - started < 1.0
    finally:
        for sock in stalled:
            sock.close()


def test_queued_slack_deliveries_come_at_its_rate_with_two_workers(
    serve: Callable[..., Served], chat: ChatServer
) -> None:
    """One worker drains the outbox, at the channel's whole rate (not its share of it)."""
    from itertools import pairwise

    from translators.pacing import burst

    path = f"/hook/paced/{uuid.uuid4().hex}"
    down = threading.Event()
    down.set()
    delivered: list[float] = []

    def answer(received: Any) -> Reply:
        if down.is_set():
            return Reply(503, "busy")
        delivered.append(time.monotonic())
        return Reply(200, "ok")

    chat.respond(path, answer)
    served = serve(
        {"CHANNEL_SLACK_URL": chat.url(path), "CHANNEL_SLACK_FORMAT": "slack", "CHANNEL_SLACK_RATE": "1"},
        ("--workers", "2"),
    )
    events = 6
    for number in range(events):  # the destination is down: each is kept in the outbox
        kept = served.post("/api/bitrise/slack", distinct(FAILED, f"paced-{number}"), FAILED.headers)
        assert kept.status == 200 and kept.json()["status"] == "queued", kept.raw
    down.clear()
    deadline = time.monotonic() + 30
    while len(delivered) < events:
        assert time.monotonic() < deadline, f"{len(delivered)} of {events} delivered"
        time.sleep(0.1)
    gaps = [b - a for a, b in pairwise(delivered[int(burst(1.0)) - 1 :])]
    assert len(gaps) >= 3 and all(0.8 < g < 1.5 for g in gaps), gaps


def test_the_documented_gunicorn_command_serves_the_same_app(tmp_path: Path, chat: ChatServer) -> None:
    """docs/local.md's self-hosting command, as written there, with settings in the environment."""
    import socket
    import subprocess
    import sys

    from tests.localserve import ROOT, clean_env

    documented = re.search(r"^gunicorn .+$", (ROOT / "docs/local.md").read_text(encoding="utf-8"), re.M)
    assert documented, "docs/local.md shows no gunicorn command"
    with socket.socket() as probe:  # a free port (gunicorn binds it itself)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = documented[0].replace("0.0.0.0:7071", f"127.0.0.1:{port}").replace("'", "").split()[1:]
    path = f"/hook/self/{uuid.uuid4().hex}"
    env = {"CHANNEL_SLACK_URL": chat.url(path), "CHANNEL_SLACK_FORMAT": "slack"}
    env["STATE_STORE"] = f"sqlite:///{tmp_path / 'state.db'}"
    env["APPCIRCLE_WEBHOOK_SECRET"] = "s3cret-value"  # whose ac_signature header waitress drops
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *argv], cwd=ROOT, env=clean_env(env), stdout=out, stderr=out
        )
    served = Served(proc, log, log, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if served.get("/api/health").status == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        answer = served.post("/api/bitrise/slack", distinct(FAILED, "self-hosted"), FAILED.headers)
        assert answer.status == 200 and answer.json()["status"] == "delivered", answer.raw
        assert len(chat.at(path)) == 1
        assert re.search(r"\[\d+\] translators.pipeline: request", log.read_text())
        assert "APPCIRCLE_WEBHOOK_SECRET is set, but this server drops the ac_signature" in log.read_text()
    finally:
        served.stop()
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not drainer_lock(proc.pid).exists()
