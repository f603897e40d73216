"""The state store in Azure Table Storage: shared by every instance of a scaled-out Function App.

Uses `azure-data-tables <https://learn.microsoft.com/python/api/overview/azure/data-tables-readme>`_.
Conditional writes are the service's own: ``create_entity`` fails when the entity exists (a
claim), and updates carry the ETag they read with ``MatchConditions.IfNotModified`` (taking over
a stale claim, recording an outcome), so two instances can never both win. This module is
imported only when ``STATE_STORE`` is ``tables``, which keeps azure-core off a cold start that
does not need it.

Keys: PartitionKey and RowKey may not hold ``/ \\ # ?`` or control characters, and event ids
and app names can (``bitrise:<slug>:build/finished:1``), so keys are SHA-256 digests and the
readable values are stored as ordinary properties beside them.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from translators import logs
from translators.state import (
    CLAIM_STALE_AFTER,
    KEEP_CLAIMS,
    KEEP_OUTCOMES,
    MESSAGE_POST_STALE_AFTER,
    UNKNOWN_RESEND_AFTER,
    Claim,
    Message,
    Outcome,
    StoreUnavailable,
    as_outcome,
    digest,
    now,
    safe_reason,
    utc,
)
from translators.state.connection import Target, table_client

if TYPE_CHECKING:
    from azure.data.tables import TableEntity

#: Memory is an extra: a slow or absent store must not eat the delivery's deadline, so it gets
#: short timeouts and one retry (azure-core's defaults are 3 retries with 0.8 s backoff and 300 s
#: socket timeouts). translators/rules.py then leaves a failed store alone for a while.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 1,
    "retry_backoff_factor": 0.1,
    "retry_backoff_max": 1,
    "connection_timeout": 2,
    "read_timeout": 2,
}
#: How often a conditional write is retried when another instance changed the entity in between.
CONFLICT_ATTEMPTS = 5
#: How often old claims and outcomes are pruned (SQLite prunes when a process opens the file).
PRUNE_EVERY = timedelta(days=1)
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")

# azure-core logs every request and response header at INFO; the Functions host would ship them all.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
log = logs.logger("translators.state.tables")


class TableAccess:
    """One table of Table Storage, opened (and created) on first use; memory and the outbox share it.

    Every storage failure becomes a ``StoreUnavailable`` naming the failure's class only: the target
    may hold a connection string, which stays out of reprs, messages and logs.
    """

    #: The setting that names the table, for the error about a wrong name.
    setting = "STATE_TABLE"

    def __init__(self, target: Target, table: str) -> None:
        if not TABLE_NAME.match(table):
            raise StoreUnavailable(f"{self.setting} must be 3-63 letters and digits, starting with a letter")
        self.table = table
        self._target = target
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(table={self.table!r})"

    @contextmanager
    def _guard(self) -> Iterator[TableClient]:
        """The table client, with every storage failure turned into StoreUnavailable."""
        try:
            yield self._table()
        except StoreUnavailable:
            raise
        except (AzureError, ValueError, OSError) as exc:
            raise StoreUnavailable(safe_reason(exc)) from None

    def _table(self) -> TableClient:
        """The client, created (with the table) on first use.

        The lock is never held while talking to storage: with a store that does not answer, a
        lock around ``create_table`` would line every request up behind one timeout after another.
        Threads that race here each try; the first client to be ready is kept.
        """
        if self._client is not None:
            return self._client
        client = table_client(self._target, self.table, **CLIENT_OPTIONS)
        try:
            client.create_table()
        except ResourceExistsError:
            pass
        except BaseException:
            client.close()
            raise
        with self._lock:
            won = self._client is None
            if won:
                self._client = client  # kept only once the table is known to exist
            kept = self._client
        assert kept is not None
        if not won:
            client.close()
        self._opened(kept)
        return kept

    def _opened(self, table: TableClient) -> None:
        """Called once the client is ready, on first use (memory prunes old rows then)."""

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class TableStore(TableAccess):
    kind = "tables"

    def __init__(self, target: Target, table: str) -> None:
        super().__init__(target, table)
        self._pruned_at: datetime | None = None

    def _opened(self, table: TableClient) -> None:
        self._prune(table)

    def _prune(self, table: TableClient) -> None:
        """Delete claims and outcomes past their keep, once a day per process (as SQLite does on open).

        Without this, a claim would stay forever and the same event next year would be a duplicate.
        Best effort: a failure leaves the rows for the next pass.
        """
        moment = now()
        with self._lock:
            if self._pruned_at is not None and moment - self._pruned_at < PRUNE_EVERY:
                return
            self._pruned_at = moment
        filters = (
            ("PartitionKey ge 'claim-' and PartitionKey lt 'claim.' and claimed_at lt @cut", KEEP_CLAIMS),
            (
                "PartitionKey ge 'outcome-' and PartitionKey lt 'outcome.' and recorded_at lt @cut",
                KEEP_OUTCOMES,
            ),
            ("PartitionKey ge 'message-' and PartitionKey lt 'message.' and updated_at lt @cut", KEEP_CLAIMS),
        )
        try:
            for query, keep in filters:
                old = table.query_entities(
                    query, parameters={"cut": moment - keep}, select=["PartitionKey", "RowKey"]
                )
                for entity in old:
                    table.delete_entity(entity["PartitionKey"], entity["RowKey"])
        except (AzureError, ValueError, OSError) as exc:
            log.warning("pruning old memory failed (%s); it is tried again later", safe_reason(exc))

    # -- outcomes ---------------------------------------------------------------------------

    @staticmethod
    def _outcome_keys(key: str) -> tuple[str, str]:
        return f"outcome-{digest(key)}", "last"

    def previous_outcome(self, key: str, event_id: str | None) -> Outcome | None:
        pk, rk = self._outcome_keys(key)
        with self._guard() as table:
            try:
                entity = table.get_entity(pk, rk)
            except ResourceNotFoundError:
                return None
        if event_id is not None and entity.get("event_id") == event_id:
            return as_outcome(entity.get("previous"))
        return as_outcome(entity.get("outcome"))

    def record_outcome(self, key: str, outcome: Outcome, event_id: str | None, at: datetime) -> None:
        pk, rk = self._outcome_keys(key)
        at = utc(at)
        entity: dict[str, Any] = {
            "PartitionKey": pk,
            "RowKey": rk,
            "key": key,
            "outcome": outcome,
            "at": at,
            "recorded_at": now(),
        }
        if event_id is not None:
            entity["event_id"] = event_id
        with self._guard() as table:
            for _ in range(CONFLICT_ATTEMPTS):
                try:
                    current = table.get_entity(pk, rk)
                except ResourceNotFoundError:
                    try:
                        table.create_entity(entity)
                        return
                    except ResourceExistsError:
                        continue  # another instance recorded first: judge against theirs
                if event_id is not None and current.get("event_id") == event_id:
                    return  # this event is already the one on record (a retry)
                if isinstance(current.get("at"), datetime) and utc(current["at"]) > at:
                    return  # a newer build is on record; an old one arriving late does not replace it
                replacement = {**entity, "previous": current.get("outcome")}
                try:
                    table.update_entity(
                        replacement,
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue  # changed or removed since we read it: read again
        raise StoreUnavailable("the build outcome kept changing under concurrent writes")

    # -- claims -----------------------------------------------------------------------------

    @staticmethod
    def _claim_keys(event_id: str, channel: str) -> tuple[str, str]:
        row = channel if _SAFE_KEY.match(channel) else digest(channel)
        return f"claim-{digest(event_id)}", row

    def claim(self, event_id: str, channel: str, now: datetime) -> Claim:
        pk, rk = self._claim_keys(event_id, channel)
        token = uuid.uuid4().hex
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "event_id": event_id,
            "channel": channel,
            "token": token,
            "claimed_at": utc(now),
            "delivered": False,
        }
        with self._guard() as table:
            for _ in range(CONFLICT_ATTEMPTS):
                try:
                    table.create_entity(entity)
                    return Claim(token)
                except ResourceExistsError:
                    pass
                try:
                    current: TableEntity = table.get_entity(pk, rk)
                except ResourceNotFoundError:
                    continue  # released in between: try to create it again
                if current.get("delivered"):
                    return Claim(None, delivered=True)
                unknown_at = current.get("unknown_at")
                if isinstance(unknown_at, datetime):
                    if utc(unknown_at) >= utc(now) - UNKNOWN_RESEND_AFTER:
                        return Claim(None, unknown=True)
                else:
                    claimed_at = current.get("claimed_at")
                    if isinstance(claimed_at, datetime) and utc(claimed_at) >= utc(now) - CLAIM_STALE_AFTER:
                        return Claim(None, delivered=False)
                # Stale (its instance died mid-delivery) or unknown long enough to send again. Take
                # it over, unless someone else just did.
                try:
                    table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return Claim(token)
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
        return Claim(None, delivered=False)

    def confirm(self, event_id: str, channel: str, token: str, now: datetime) -> None:
        pk, rk = self._claim_keys(event_id, channel)
        # Unconditional merge: the delivery was made, whoever holds the claim now.
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "event_id": event_id,
            "channel": channel,
            "delivered": True,
            "delivered_at": utc(now),
        }
        with self._guard() as table:
            table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def mark_unknown(self, event_id: str, channel: str, token: str, now: datetime) -> None:
        pk, rk = self._claim_keys(event_id, channel)
        with self._guard() as table:
            for _ in range(CONFLICT_ATTEMPTS):
                try:
                    current = table.get_entity(pk, rk)
                except ResourceNotFoundError:
                    return
                if current.get("token") != token or current.get("delivered"):
                    return
                try:
                    table.update_entity(
                        {"PartitionKey": pk, "RowKey": rk, "unknown_at": utc(now)},
                        mode=UpdateMode.MERGE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except ResourceModifiedError:
                    continue

    def forget(self, event_id: str, channel: str) -> None:
        pk, rk = self._claim_keys(event_id, channel)
        with self._guard() as table:
            try:
                table.delete_entity(pk, rk)
            except ResourceNotFoundError:
                return

    def clear(self) -> int:
        count = 0
        with self._guard() as table:
            for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
                try:
                    table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                    count += 1
                except ResourceNotFoundError:
                    pass
        return count

    def release(self, event_id: str, channel: str, token: str) -> None:
        pk, rk = self._claim_keys(event_id, channel)
        with self._guard() as table:
            try:
                current = table.get_entity(pk, rk)
            except ResourceNotFoundError:
                return
            if current.get("token") != token or current.get("delivered"):
                return  # not ours any more (taken over), or delivered after all
            try:
                table.delete_entity(
                    pk, rk, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError:
                return  # changed since we read it, so it is no longer our claim to drop

    # -- messages (Slack app channels) -------------------------------------------------------

    @staticmethod
    def _message_keys(key: str, channel: str) -> tuple[str, str]:
        row = channel if _SAFE_KEY.match(channel) else digest(channel)
        return f"message-{digest(key)}", row

    def _message_entity(self, table: TableClient, key: str, channel: str) -> TableEntity | None:
        pk, rk = self._message_keys(key, channel)
        try:
            return table.get_entity(pk, rk)
        except ResourceNotFoundError:
            return None

    def message(self, key: str, channel: str) -> Message | None:
        with self._guard() as table:
            entity = self._message_entity(table, key, channel)
        if entity is None:
            return None
        return Message(entity.get("ts") or None, int(entity.get("stage") or 0), utc(entity["claimed_at"]))

    def claim_message(self, key: str, channel: str, stage: int, now: datetime) -> str | None:
        pk, rk = self._message_keys(key, channel)
        token = uuid.uuid4().hex
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "key": key,
            "channel": channel,
            "stage": stage,
            "token": token,
            "claimed_at": utc(now),
            "updated_at": utc(now),
        }
        with self._guard() as table:
            for _ in range(CONFLICT_ATTEMPTS):
                try:
                    table.create_entity(entity)
                    return token
                except ResourceExistsError:
                    pass
                current = self._message_entity(table, key, channel)
                if current is None:
                    continue
                claimed = current.get("claimed_at")
                fresh = isinstance(claimed, datetime) and utc(claimed) >= utc(now) - MESSAGE_POST_STALE_AFTER
                if current.get("ts") or fresh:
                    return None
                try:  # a post left unfinished: take it over, unless someone else just did
                    table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return token
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
        return None

    def _merge_if(self, key: str, channel: str, ok: Any, changes: dict[str, Any]) -> bool:
        """Merge ``changes`` into the message entity if ``ok(entity)``, with its ETag; whether it did."""
        pk, rk = self._message_keys(key, channel)
        with self._guard() as table:
            for _ in range(CONFLICT_ATTEMPTS):
                current = self._message_entity(table, key, channel)
                if current is None or not ok(current):
                    return False
                try:
                    table.update_entity(
                        {"PartitionKey": pk, "RowKey": rk, **changes},
                        mode=UpdateMode.MERGE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return True
                except ResourceModifiedError:
                    continue
        raise StoreUnavailable("the message record kept changing under concurrent writes")

    def message_posted(self, key: str, channel: str, token: str, ts: str, stage: int, now: datetime) -> None:
        self._merge_if(
            key,
            channel,
            lambda e: e.get("token") == token,
            {"ts": ts, "stage": stage, "token": "", "updated_at": utc(now)},
        )

    def release_message(self, key: str, channel: str, token: str) -> None:
        pk, rk = self._message_keys(key, channel)
        with self._guard() as table:
            current = self._message_entity(table, key, channel)
            if current is None or current.get("token") != token or current.get("ts"):
                return
            try:
                table.delete_entity(
                    pk, rk, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return

    def advance_message(self, key: str, channel: str, stage: int, now: datetime) -> bool:
        return self._merge_if(
            key,
            channel,
            lambda e: bool(e.get("ts")) and int(e.get("stage") or 0) <= stage,
            {"stage": stage, "updated_at": utc(now)},
        )

    def replace_message(self, key: str, channel: str, old_ts: str, new_ts: str, now: datetime) -> None:
        self._merge_if(key, channel, lambda e: e.get("ts") == old_ts, {"ts": new_ts, "updated_at": utc(now)})
