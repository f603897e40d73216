"""Property-based tests: whatever arrives, every answer is JSON, never a 5xx of ours, and every body
we deliver is valid for its format, pings nobody and evaluates nothing.

Bodies are random bytes, random JSON, and bundled samples mutated field by field with hostile
text; headers are random too. Deliveries go to a loopback server that records what it receives.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import crosscheck
from tests.bodies import SLACK_MENTION, json_paths, slack_markup_texts
from tests.chatserver import SUCCESS, ChatServer, Reply
from translators import formats, pipeline, sources
from translators import settings as app_settings
from translators.samples import all_samples

SAMPLES = all_samples()
ROUTES = [*sorted(sources.registry()), "auto", "unknown-source"]
ALLOWED = {200, 400, 401, 404, 413, 422, 502}

HOSTILE = st.sampled_from(
    [
        "<!channel>",
        "<@U123|x>",
        "<!subteam^S1>",
        "{{ 7 * 191 }}",
        "{% for x in range(3) %}{% endfor %}",
        '"}]},{"type":"x',
        "\\",
        "&amp;<>",
        "\u2028\u2029\x00\x1f",
        "🚀" * 50,
        "javascript:alert(1)",
        "https://ok.example/" + "a" * 3100,
        "\ud800",  # a lone surrogate: cannot be encoded, logged or stored as it is
        "a\udfffb\ud83d",
    ]
)
#: Times that once broke arithmetic or storage: naive beside aware, and the ends of the calendar.
TIMES = st.sampled_from(
    [
        "2024-03-01T10:00:00",
        "2024-03-01T10:05:00Z",
        "2024-03-01T10:05:00+05:30",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00",
        "1970-01-01T00:00:00Z",
    ]
)
TIME_FIELDS = frozenset(
    {
        "start_time",
        "finish_time",
        "sent_at",
        "uploaded_at",
        "created",
        "started",
        "finished",
        "timestamp",
        "createdDate",
        "startedDate",
        "finishedDate",
    }
)
TEXT = st.one_of(st.text(max_size=60), HOSTILE, st.builds(lambda a, b: a + b, st.text(max_size=20), HOSTILE))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
HEADERS = st.dictionaries(
    st.sampled_from(["Bitrise-Event-Type", "Content-Type", "X-Webhook-Token", "User-Agent", "X-Other"]),
    st.one_of(st.sampled_from(["build/triggered", "build/finished", "app/other", ""]), st.text(max_size=20)),
    max_size=3,
)


@st.composite
def mutated_sample(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    sample = draw(st.sampled_from(SAMPLES))
    payload = json.loads(sample.body())
    for _ in range(draw(st.integers(1, 4))):
        spots = json_paths(payload)[1:]  # not the payload itself
        if not spots:
            break
        spot = draw(st.sampled_from(spots))
        parent = payload
        for key in spot[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["text", "value", "delete", "time"]))
        if action == "time":
            parent[spot[-1]] = draw(TIMES)
        elif action == "delete" and isinstance(parent, dict):
            del parent[spot[-1]]
        elif action == "text" or action == "delete":
            parent[spot[-1]] = draw(TEXT)
        else:
            parent[spot[-1]] = draw(JSON_VALUES)
    if draw(st.booleans()):  # every time field of the payload: naive, aware and extreme ones mixed
        for spot in json_paths(payload):
            if spot and spot[-1] in TIME_FIELDS:
                parent = payload
                for key in spot[:-1]:
                    parent = parent[key]
                parent[spot[-1]] = draw(TIMES)
    if draw(st.integers(0, 5)) == 0:  # a lone surrogate in every string
        payload = with_surrogates(payload)
    route = draw(st.sampled_from([sample.source, "auto"]))
    return route, json.dumps(payload).encode(), dict(sample.headers)


def with_surrogates(node: Any) -> Any:
    if isinstance(node, str):
        return node + "\ud800"
    if isinstance(node, dict):
        return {k: with_surrogates(v) for k, v in node.items()}
    if isinstance(node, list):
        return [with_surrogates(v) for v in node]
    return node


BODIES = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bitrise", b, {})),
    st.tuples(st.sampled_from(ROUTES), JSON_VALUES.map(lambda v: json.dumps(v).encode()), HEADERS),
    mutated_sample(),
)


@pytest.fixture(scope="module")
def destinations() -> Any:
    server = ChatServer()
    env = {"DELIVERY_DEADLINE_SECONDS": "2"}
    for name, fmt in (("slack", "slack"), ("teams", "teams"), ("legacy", "teams-messagecard")):
        server.default(f"/p/{name}", Reply(*SUCCESS[fmt]))
        env[f"CHANNEL_{name.upper()}_URL"] = server.url(f"/p/{name}")
        env[f"CHANNEL_{name.upper()}_FORMAT"] = fmt
    yield server, env
    server.close()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=BODIES, extra_headers=HEADERS, dry_run=st.booleans())
def test_any_request_gets_a_json_answer_and_valid_safe_deliveries(
    destinations: Any, case: tuple[str, bytes, dict[str, str]], extra_headers: dict[str, str], dry_run: bool
) -> None:
    server, env = destinations
    route, body, headers = case
    before = len(server.received)
    answer = pipeline.handle(
        pipeline.Request(
            route,
            "slack+teams+legacy",
            body,
            {**extra_headers, **headers},
            (("dry_run", "1"),) if dry_run else (),
        ),
        app_settings.load(env),
    )
    assert answer.status in ALLOWED, answer.body
    assert isinstance(json.loads(answer.json()), dict)
    delivered = server.received[before:]
    if dry_run:
        assert delivered == []
        bodies = [(c["format"], c["body"]) for c in answer.body.get("channels", [])]
    else:
        fmt_by_path = {"/p/slack": "slack", "/p/teams": "teams", "/p/legacy": "teams-messagecard"}
        bodies = [(fmt_by_path[r.path], r.json()) for r in delivered]
    for fmt_name, sent in bodies:
        fmt = formats.get(fmt_name)
        assert fmt is not None
        fmt.validate(sent)
        assert crosscheck.check(fmt_name, sent) == []
        raw = json.dumps(sent, ensure_ascii=False)
        assert "1337" not in raw, "payload text evaluated as a template"
        if fmt_name == "slack":
            for text in slack_markup_texts(sent):
                assert not SLACK_MENTION.search(text), text[:200]
