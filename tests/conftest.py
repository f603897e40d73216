from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chatserver import SUCCESS, ChatServer, Reply
from translators import pipeline, samples

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def channels(chat: ChatServer, request: pytest.FixtureRequest) -> dict[str, str]:
    """Three channels (slack, teams, legacy) pointing at the loopback chat server, with unique paths.

    The paths look like real webhook secrets so that tests can check they never leak.
    """
    tag = f"{abs(hash(request.node.nodeid)):x}"
    env = {}
    for name, fmt in (("slack", "slack"), ("teams", "teams"), ("legacy", "teams-messagecard")):
        path = f"/hook/{name}/T0SECRET{tag}/B0SECRET/xoxSECRETtoken{tag}"
        chat.default(path, Reply(*SUCCESS[fmt]))
        env[f"CHANNEL_{name.upper()}_URL"] = chat.url(path)
        env[f"CHANNEL_{name.upper()}_FORMAT"] = fmt
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
    return pipeline.handle(pipeline.Request(source, channels, raw, headers or {}, query or {}), env)


def sample(sample_id: str) -> samples.Sample:
    return samples.get(sample_id)
