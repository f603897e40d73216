"""See and act on the outbox: list, replay and drop entries. Shared by the CLI and the admin function.

Listings show id, channel, event, tries and their HTTP attempts, last error, next attempt and age;
never a body's URL (entries hold none) and never a channel URL. Every change is one structured log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from translators import pipeline
from translators.outbox import log_change, open_outbox
from translators.settings import Settings
from translators.state import StoreUnavailable, now


def _unavailable(exc: StoreUnavailable) -> pipeline.Answer:
    return pipeline.Answer(
        503, {"error": "outbox_unavailable", "message": f"the outbox cannot be used: {exc}"}
    )


def listing(settings: Settings, *, dead: bool = False) -> pipeline.Answer:
    """Queued entries (or dead letters), oldest first, with the outbox's counts."""
    try:
        outbox = open_outbox(settings.app)
        entries = outbox.entries("dead" if dead else "queued")
        stats = outbox.stats()
    except StoreUnavailable as exc:
        return _unavailable(exc)
    moment = now()
    return pipeline.Answer(
        200, {"outbox": stats.public(moment), "entries": [e.public(moment) for e in entries]}
    )


def replay(settings: Settings, ids: Sequence[str] | None) -> pipeline.Answer:
    """Dead letters back in the queue, due now: those named, or all of them (``ids`` None)."""
    try:
        outbox = open_outbox(settings.app)
        dead = {e.id: e for e in outbox.entries("dead")}
        count = outbox.replay(ids, now())
    except StoreUnavailable as exc:
        return _unavailable(exc)
    for entry in dead.values():
        if ids is None or entry.id in ids:
            log_change("replayed", entry)
    body: dict[str, Any] = {"replayed": count}
    missing = sorted(set(ids or ()) - set(dead))
    if missing:
        body["not_dead_letters"] = missing
    return pipeline.Answer(200 if not missing else 404, body)


def drop(settings: Settings, ids: Sequence[str]) -> pipeline.Answer:
    """Remove entries (queued or dead) for good."""
    try:
        outbox = open_outbox(settings.app)
        known = {e.id: e for e in outbox.entries()}
        count = outbox.drop(ids)
    except StoreUnavailable as exc:
        return _unavailable(exc)
    for entry_id in ids:
        if entry_id in known:
            log_change("dropped", known[entry_id])
    missing = sorted(set(ids) - set(known))
    body: dict[str, Any] = {"dropped": count}
    if missing:
        body["unknown"] = missing
    return pipeline.Answer(200 if not missing else 404, body)


USAGE = (
    'GET /api/outbox (?dead=1 for dead letters); POST /api/outbox/replay with {"ids": [...]} or '
    '{"dead": true}; POST /api/outbox/drop with {"ids": [...]}'
)


def http(
    method: str, action: str, params: Mapping[str, str], body: bytes, settings: Settings
) -> pipeline.Answer:
    """The admin function (``/api/outbox/{action?}``, master key on Azure): list, replay, drop."""
    if method == "GET" and action in ("", "list"):
        return listing(settings, dead=params.get("dead", "").lower() in ("1", "true", "yes", "on"))
    try:
        asked = json.loads(body or b"{}")
    except ValueError:
        asked = None
    if not isinstance(asked, dict):
        return pipeline.Answer(400, {"error": "invalid_body", "message": f"expected a JSON object: {USAGE}"})
    ids = [str(i) for i in asked.get("ids") or []]
    if method == "POST" and action == "replay" and (ids or asked.get("dead") is True):
        return replay(settings, None if asked.get("dead") is True else ids)
    if method == "POST" and action == "drop" and ids:
        return drop(settings, ids)
    return pipeline.Answer(400, {"error": "bad_request", "message": USAGE})
