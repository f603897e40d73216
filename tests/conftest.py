from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from tests.azurite import azurite, state_env  # noqa: F401 - fixtures shared by the state tests
from tests.chatserver import SUCCESS, ChatServer, Reply
from tests.fakeslack import FakeSlack
from translators import pipeline, samples, settings

ROOT = Path(__file__).resolve().parent.parent
Handler = Callable[[func.HttpRequest], func.HttpResponse]


@pytest.fixture(scope="session")
def registered() -> list[Any]:
    """The functions of function_app, as the worker indexes them (get_functions() runs once per app)."""
    import function_app

    return list(function_app.app.get_functions())


@pytest.fixture(scope="session")
def functions(registered: list[Any]) -> dict[str, Handler]:
    return {f.get_function_name(): f.get_user_function() for f in registered}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current templates",
    )


@pytest.fixture(scope="session")
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def _state_outside_the_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Memory (translators/state) never lands in the working tree's .state/ during tests.

    Code that reads os.environ (function_app, servers in subprocesses) gets a session-wide file;
    the ``channels`` fixture gives each test a store of its own, so that a sample delivered by
    one test is not a duplicate in the next.
    """
    from translators import state

    folder = tmp_path_factory.mktemp("state")
    ours = "STATE_STORE" not in os.environ
    os.environ.setdefault("STATE_STORE", f"sqlite:///{folder / 'session.db'}")
    default, state.DEFAULT_SQLITE_PATH = state.DEFAULT_SQLITE_PATH, folder / "default.db"
    yield
    state.DEFAULT_SQLITE_PATH = default
    if ours:
        os.environ.pop("STATE_STORE", None)
    state.close_all()


@pytest.fixture
def channels(chat: ChatServer, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Three channels (slack, teams, legacy) pointing at the loopback chat server, with unique paths.

    The paths look like real webhook secrets so that tests can check they never leak. The state
    store (translators/state) is a fresh SQLite file per test.
    """
    tag = f"{abs(hash(request.node.nodeid)):x}"
    env = {"STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}"}
    for name, fmt in (("slack", "slack"), ("teams", "teams"), ("legacy", "teams-messagecard")):
        path = f"/hook/{name}/T0SECRET{tag}/B0SECRET/xoxSECRETtoken{tag}"
        chat.default(path, Reply(*SUCCESS[fmt]))
        env[f"CHANNEL_{name.upper()}_URL"] = chat.url(path)
        env[f"CHANNEL_{name.upper()}_FORMAT"] = fmt
        env[f"CHANNEL_{name.upper()}_RATE"] = "500"  # tests post fast; pacing has tests of its own
    return env


def path_of(env: dict[str, str], channel: str) -> str:
    url = env[f"CHANNEL_{channel.upper()}_URL"]
    return url[url.index("/hook/") :]


def post(
    env: dict[str, str],
    source: str,
    channels: str,
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> pipeline.Answer:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    pairs = tuple((query or {}).items())
    return pipeline.handle(pipeline.Request(source, channels, raw, headers or {}, pairs), settings.load(env))


def sample(sample_id: str) -> samples.Sample:
    return samples.get(sample_id)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A loopback Slack Web API (tests/fakeslack.py) for Slack app channels."""
    server = FakeSlack()
    yield server
    server.close()


def drain(env: dict[str, str], seconds: float = 15) -> None:
    """Run the outbox's drainer until nothing is queued (or ``seconds`` pass)."""
    import time

    from translators import outbox
    from translators.drainer import Drainer

    drainer = Drainer(lambda: settings.load(env))
    deadline = time.monotonic() + seconds
    while outbox.open_outbox(settings.load(env).app).stats().queued and time.monotonic() < deadline:
        if not drainer.drain_once().sent:
            time.sleep(0.05)


@pytest.fixture
def slack_app_env(slack: FakeSlack, state_env: dict[str, str]) -> dict[str, str]:  # noqa: F811
    """A Slack app channel ``builds`` on the fake Slack, with one attempt per request and a fast
    outbox, so that tests about retries and order do not wait."""
    from tests.fakeslack import TOKEN
    from translators.pacing import PACER

    PACER.reset()
    return {
        **state_env,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.url,
        "CHANNEL_BUILDS_SLACK_CHANNEL": "C0BUILDS01",
        "CHANNEL_BUILDS_RATE": "500",
        "DELIVERY_MAX_ATTEMPTS": "1",
        "DELIVERY_DEADLINE_SECONDS": "2",
        "OUTBOX_MIN_DELAY_SECONDS": "0.05",
        "OUTBOX_MAX_DELAY_SECONDS": "0.2",
    }
