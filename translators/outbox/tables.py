"""The outbox as an Azure Table in the storage account memory uses (every instance shares it).

One partition per channel and one row per entry, whose key sorts by creation: a partition read in
order is the channel's queue. Leases and every change after one are updates that carry the ETag
they read (``IfNotModified``), so two drainers can never both take or settle an entry.

A table string property holds at most 64 KiB, so a body is stored in chunks (``body_0``...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, UpdateMode

from translators.outbox import Entry, Stats, Status, dumps
from translators.state import digest, utc
from translators.state.tables import _SAFE_KEY, TableAccess

#: Characters of a JSON text per table property: a property holds 64 KiB (32K UTF-16 units), and a
#: character outside the BMP (an emoji) takes two units.
CHUNK = 15_000
_FIELDS = ("status", "format", "template", "event_id", "event", "title", "last_error", "dead_reason")


def _partition(channel: str) -> str:
    return channel if _SAFE_KEY.match(channel) else digest(channel)


def _chunks(prefix: str, text: str) -> dict[str, str]:
    return {
        f"{prefix}_{i}": text[start : start + CHUNK] for i, start in enumerate(range(0, len(text), CHUNK))
    }


def _joined(entity: TableEntity, prefix: str) -> str | None:
    parts = []
    i = 0
    while f"{prefix}_{i}" in entity:
        parts.append(entity[f"{prefix}_{i}"])
        i += 1
    return "".join(parts) if parts else None


def _entity(entry: Entry) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": _partition(entry.channel),
        "RowKey": entry.id,
        "channel": entry.channel,
        "created_at": utc(entry.created_at),
        "next_attempt_at": utc(entry.next_attempt_at),
        "attempts": entry.attempts,
        "http_attempts": entry.http_attempts,
        **_chunks("body", dumps(entry.body)),
    }
    if entry.minimal is not None:
        entity |= _chunks("minimal", dumps(entry.minimal))
    if entry.thread is not None:
        entity["thread"] = dumps(entry.thread)
    for name in _FIELDS:
        value = getattr(entry, name)
        if value is not None:
            entity[name] = value
    return entity


def _entry(entity: TableEntity) -> Entry:
    body = _joined(entity, "body") or "{}"
    minimal = _joined(entity, "minimal")
    lease = entity.get("lease_until")
    return Entry(
        id=entity["RowKey"],
        channel=entity["channel"],
        status=entity.get("status", "queued"),
        format=entity["format"],
        template=entity["template"],
        body=json.loads(body),
        minimal=json.loads(minimal) if minimal else None,
        event_id=entity.get("event_id"),
        event=entity.get("event"),
        title=entity.get("title"),
        created_at=utc(entity["created_at"]),
        next_attempt_at=utc(entity["next_attempt_at"]),
        attempts=int(entity.get("attempts") or 0),
        http_attempts=int(entity.get("http_attempts") or 0),
        last_error=entity.get("last_error"),
        dead_reason=entity.get("dead_reason"),
        lease_until=utc(lease) if isinstance(lease, datetime) else None,
        thread=json.loads(entity["thread"]) if entity.get("thread") else None,
        extra={"etag": entity.metadata.get("etag"), "lease_token": entity.get("lease_token")},
    )


class TableOutbox(TableAccess):
    kind = "tables"
    setting = "OUTBOX_TABLE"

    def add(self, entry: Entry) -> None:
        with self._guard() as table:
            table.create_entity(_entity(entry))

    def has_queued(self, channel: str) -> bool:
        with self._guard() as table:
            found = table.query_entities(
                "PartitionKey eq @p and status eq 'queued'",
                parameters={"p": _partition(channel)},
                select=["RowKey"],
                results_per_page=1,
            )
            return next(iter(found), None) is not None

    def _queued(self, table: TableClient) -> list[Entry]:
        return [_entry(e) for e in table.query_entities("status eq 'queued'")]

    def heads(self) -> list[Entry]:
        with self._guard() as table:
            first: dict[str, Entry] = {}
            for entry in self._queued(table):
                if entry.channel not in first or entry.id < first[entry.channel].id:
                    first[entry.channel] = entry
        return sorted(first.values(), key=lambda e: e.id)

    def _update(self, entry: Entry, changes: dict[str, Any], *, mode: UpdateMode = UpdateMode.MERGE) -> bool:
        """Apply ``changes`` if the entity is still as read; False when someone changed it since."""
        with self._guard() as table:
            try:
                table.update_entity(
                    {"PartitionKey": _partition(entry.channel), "RowKey": entry.id, **changes},
                    mode=mode,
                    etag=entry.extra.get("etag"),
                    match_condition=MatchConditions.IfNotModified,
                )
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                return False

    def _current(self, entry: Entry) -> Entry | None:
        with self._guard() as table:
            try:
                return _entry(table.get_entity(_partition(entry.channel), entry.id))
            except ResourceNotFoundError:
                return None

    def lease(self, entry: Entry, token: str, until: datetime, at: datetime) -> bool:
        current = self._current(entry)
        if current is None or current.status != "queued":
            return False
        if current.lease_until is not None and current.lease_until > at:
            return False
        return self._update(current, {"lease_token": token, "lease_until": utc(until)})

    def _held(self, entry: Entry, token: str) -> Entry | None:
        current = self._current(entry)
        if current is None or current.extra.get("lease_token") != token:
            return None  # removed, or taken over after our lease ran out: not ours to settle
        return current

    def remove(self, entry: Entry, token: str) -> None:
        current = self._held(entry, token)
        if current is None:
            return
        with self._guard() as table:
            try:
                table.delete_entity(
                    _partition(entry.channel),
                    entry.id,
                    etag=current.extra.get("etag"),
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return

    def reschedule(
        self, entry: Entry, token: str, at: datetime, error: str | None, http_attempts: int = 0
    ) -> None:
        current = self._held(entry, token)
        if current is not None:
            changes = {
                "next_attempt_at": utc(at),
                "attempts": current.attempts + 1,
                "http_attempts": current.http_attempts + http_attempts,
                "last_error": error or "",
                "lease_token": "",
                "lease_until": utc(at).replace(year=1970, month=1, day=1),
            }
            self._update(current, changes)

    def bury(self, entry: Entry, token: str | None, reason: str, http_attempts: int = 0) -> None:
        current = self._held(entry, token) if token else self._current(entry)
        if current is not None:
            changes = {
                "status": "dead",
                "dead_reason": reason,
                "attempts": current.attempts + (1 if token else 0),
                "http_attempts": current.http_attempts + (http_attempts if token else 0),
                "lease_token": "",
            }
            self._update(current, changes)

    def _all(self, table: TableClient, status: Status | None = None) -> list[Entry]:
        query = "status eq @s" if status else "PartitionKey ne ''"
        found = table.query_entities(query, parameters={"s": status} if status else None)
        return sorted((_entry(e) for e in found), key=lambda e: e.id)

    def entries(self, status: Status | None = None) -> list[Entry]:
        with self._guard() as table:
            return self._all(table, status)

    def _by_ids(self, ids: Sequence[str] | None, status: Status | None) -> list[Entry]:
        wanted = set(ids) if ids is not None else None
        return [e for e in self.entries(status) if wanted is None or e.id in wanted]

    def replay(self, ids: Sequence[str] | None, at: datetime) -> int:
        count = 0
        for entry in self._by_ids(ids, "dead"):
            changes = {
                "status": "queued",
                "attempts": 0,
                "http_attempts": 0,
                "dead_reason": "",
                "next_attempt_at": utc(at),
            }
            count += self._update(entry, changes)
        return count

    def drop(self, ids: Sequence[str]) -> int:
        count = 0
        with self._guard() as table:
            for entry in self._by_ids(ids, None):
                try:
                    table.delete_entity(_partition(entry.channel), entry.id)
                    count += 1
                except ResourceNotFoundError:
                    pass
        return count

    def stats(self) -> Stats:
        everything = self.entries()
        queued = [e for e in everything if e.status == "queued"]
        oldest = min((e.created_at for e in queued), default=None)
        return Stats(len(queued), len(everything) - len(queued), oldest)
