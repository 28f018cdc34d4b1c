"""A durable audit trail: append-only rows, each chained to the previous one by a SHA-256 hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sprongus.adapters.peewee.db import outage_of, storage_errors
from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.adapters.peewee.models import BoundModels
from sprongus.domain.errors import AuditUnavailable
from sprongus.domain.records import AuditChainReport, AuditEvent
from sprongus.domain.text import utf8_encodable

GENESIS = "sha256:" + "0" * 64
AUDIT_LOCK_ID = 0x53505241  # serializes chain appends on Postgres ("SPRA")
# Rows per INSERT of a batch: 12 parameters each, well below SQLite's oldest default limit of 999 per statement.
INSERT_ROWS = 80


def chain_hash(prev_hash: str, fields: list[Any]) -> str:
    body = json.dumps([prev_hash, *fields], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def _fields(time: Any, actor: str, action: str, scope: str | None, key_name: str | None, version: int | None,
            outcome: str, request_id: str | None, client_address: str | None, detail: Any) -> list[Any]:
    return [time.astimezone(UTC).isoformat(), actor, action, scope, key_name, version, outcome, request_id,
            client_address, detail]


def storable(value: Any) -> Any:
    """Postgres TEXT and JSONB refuse NUL and lone surrogates, and a request path or forwarded address may carry
    them: the denied request's audit row failed, and the answer with it (503). Escaped on both dialects, so the
    chain hashes exactly what is stored."""
    if isinstance(value, str):
        if "\x00" in value or not utf8_encodable(value):
            return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value



class PeeweeAuditSink:
    """Joins the caller's open transaction, so an action and its audit row commit or roll back together."""

    def __init__(self, models: BoundModels) -> None:
        self._m = models.audit
        self._db = models.db
        columns = ("time", "actor", "action", "scope", "key_name", "version", "outcome", "request_id",
                   "client_address", "detail", "prev_hash", "hash")
        self._row_marks = "(" + ", ".join([self._db.param] * len(columns)) + ")"
        self._insert = f"INSERT INTO audit_event ({', '.join(columns)}) VALUES {self._row_marks}"  # noqa: S608

    def record(self, event: AuditEvent) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """One transaction (the caller's, or its own): every row of a batch is chained and committed, or none."""
        if not events:
            return
        try:
            self._append(events)
        except Exception as exc:
            outage = outage_of(exc)  # a full disk or a database outage: say so, so the caller knows to retry
            raise AuditUnavailable("audit event could not be recorded" + (f" ({outage})" if outage else "")
                                   + "; action refused") from exc

    def _append(self, events: Sequence[AuditEvent]) -> None:
        db = self._db
        if db.in_transaction():  # the caller's transaction: the rows commit or roll back with the action
            self._append_locked(events)
            return
        with dialect_of(db).write_transaction(db):
            self._append_locked(events)

    def _append_locked(self, events: Sequence[AuditEvent]) -> None:
        db = self._db
        dialect_of(db).serialize(db, AUDIT_LOCK_ID)  # one chain: appends happen one at a time
        last = db.execute_sql("SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone()  # type: ignore[no-untyped-call]
        prev = last[0] if last is not None else GENESIS
        rows: list[list[Any]] = []
        shared: dict[int, tuple[Any, Any]] = {}
        for event in events:  # each row chains to the one before it, within the batch too (seq keeps this order)
            row = self._row(event, prev, shared)
            prev = row[-1]
            rows.append(row)
        for start in range(0, len(rows), INSERT_ROWS):
            chunk = rows[start:start + INSERT_ROWS]
            db.execute_sql(self._insert_rows(len(chunk)), [v for row in chunk for v in row])  # type: ignore[no-untyped-call]

    def _row(self, event: AuditEvent, prev: str, shared: dict[int, tuple[Any, Any]]) -> list[Any]:
        """`shared`: the rows of a batch reveal share one detail dict; it is serialized once, not per row (the
        events, and so their dicts, live until the batch is written, so an id names one dict)."""
        m = self._m
        if id(event.detail) not in shared:
            detail = storable(json.loads(json.dumps(event.detail, default=str)))
            shared[id(event.detail)] = (detail, m.detail.db_value(detail))
        detail, stored_detail = shared[id(event.detail)]
        actor, scope, key_name, request_id, client_address = (storable(v) for v in (
            event.actor, event.scope, event.key_name, event.request_id, event.client_address))
        fields = _fields(event.time, actor, event.action.value, scope, key_name, event.version,
                         event.outcome.value, request_id, client_address, detail)
        return [m.time.db_value(event.time), actor, event.action.value, scope, key_name,
                event.version, event.outcome.value, request_id, client_address,
                stored_detail, prev, chain_hash(prev, fields)]

    def _insert_rows(self, count: int) -> str:
        return self._insert + "".join([", " + self._row_marks] * (count - 1))

    def verify_chain(self, batch: int = 1000) -> AuditChainReport:
        """Recompute the chain: an edited, deleted (but the last) or reordered row shows up as a problem."""
        m = self._m
        problems: list[str] = []
        prev, after, checked = GENESIS, 0, 0
        while True:
            with storage_errors():  # a database outage is StorageUnavailable, not an unexpected error
                rows = list(m.select().where(m.seq > after).order_by(m.seq).limit(batch))
            for row in rows:
                checked += 1
                fields = _fields(row.time, row.actor, row.action, row.scope, row.key_name, row.version,
                                 row.outcome, row.request_id, row.client_address, row.detail)
                if row.prev_hash != prev:
                    problems.append(f"audit row {row.seq}: does not follow the previous row (deleted or reordered)")
                if row.hash != chain_hash(row.prev_hash, fields):
                    problems.append(f"audit row {row.seq}: contents do not match its hash (edited)")
                prev, after = row.hash, row.seq
            if len(rows) < batch:
                return AuditChainReport(checked, problems)
