"""A durable audit trail: append-only rows, each chained to the previous one by a SHA-256 hash, and checkpoints of
the chain head (adapters/peewee/audit_checkpoints.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import peewee

from sprongus.adapters.peewee.audit_checkpoints import PeeweeCheckpoints
from sprongus.adapters.peewee.audit_group import GroupCommit
from sprongus.adapters.peewee.db import outage_of, storage_errors
from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.adapters.peewee.models import AuditEventRow, BoundModels
from sprongus.domain.audit_log import GENESIS, AuditCheckpoint, chain_hash, storable
from sprongus.domain.audit_log import chain_fields as _fields
from sprongus.domain.errors import AuditUnavailable, Unavailable
from sprongus.domain.records import AuditEvent
from sprongus.ports.audit import CheckpointSigner

if TYPE_CHECKING:
    from sprongus.domain.audit_rows import AuditFilter, StoredAuditEvent
    from sprongus.domain.audit_verify import AuditTrailReport

__all__ = ["AUDIT_LOCK_ID", "GENESIS", "INSERT_ROWS", "PeeweeAuditSink", "chain_hash", "storable"]

AUDIT_LOCK_ID = 0x53505241  # serializes chain appends on Postgres ("SPRA")
_HEAD = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
# Rows per INSERT of a batch: 12 parameters each, well below SQLite's oldest default limit of 999 per statement.
INSERT_ROWS = 80


class PeeweeAuditSink:
    """Joins the caller's open transaction, so an action and its audit row commit or roll back together."""

    def __init__(self, models: BoundModels) -> None:
        self._models = models
        self._db = models.db
        self._checkpoints = PeeweeCheckpoints(models)
        self._group = GroupCommit(self._append_groups, _is_outage)
        columns = ("time", "actor", "action", "scope", "key_name", "version", "outcome", "request_id",
                   "client_address", "detail", "prev_hash", "hash")
        self._row_marks = "(" + ", ".join([self._db.param] * len(columns)) + ")"
        self._insert = f"INSERT INTO audit_event ({', '.join(columns)}) VALUES {self._row_marks}"  # noqa: S608

    @property
    def _m(self) -> type[AuditEventRow]:  # bound on first use (models.py)
        return self._models.audit

    def use_signer(self, signer: CheckpointSigner) -> None:
        self._checkpoints.signer = signer

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
        if self._db.in_transaction():  # the caller's transaction: the rows commit or roll back with the action
            self._append_locked(events)
            return
        self._group.append(events)  # its own transaction, shared with concurrent appends of this process

    def _append_groups(self, groups: list[Sequence[AuditEvent]]) -> None:
        db = self._db
        with dialect_of(db).serialized_transaction(db, AUDIT_LOCK_ID, _HEAD) as last:
            self._append_locked([event for events in groups for event in events], last, own_transaction=True)

    def _append_locked(self, events: Sequence[AuditEvent], last: list[Any] | None = None,
                       own_transaction: bool = False) -> None:
        """`last`: the chain's head as read under the chain's lock (no row: an empty trail), or None to take the
        lock and read it here. `own_transaction`: the append's own (a group commit's), which commits right after:
        on Postgres the rows then go with its COMMIT, one round trip less under the chain's lock; an error of theirs
        still comes from inside the append. In a caller's transaction they are written at once, so that a refused
        row is the append's error (AuditUnavailable), not one of the caller's COMMIT."""
        db = self._db
        dialect = dialect_of(db)
        if last is None:  # one chain: appends happen one at a time
            last = dialect.serialized_read(db, AUDIT_LOCK_ID, _HEAD)
        head, prev = (last[0][0], last[0][1]) if last else (0, GENESIS)
        rows: list[list[Any]] = []
        shared: dict[int, tuple[Any, Any]] = {}
        for event in events:  # each row chains to the one before it, within the batch too (seq keeps this order)
            row = self._row(event, prev, shared)
            prev = row[-1]
            rows.append(row)
        for start in range(0, len(rows), INSERT_ROWS):
            chunk = rows[start:start + INSERT_ROWS]
            values = [v for row in chunk for v in row]
            if own_transaction:
                dialect.execute_later(db, self._insert_rows(len(chunk)), values)
            else:
                db.execute_sql(self._insert_rows(len(chunk)), values)  # type: ignore[no-untyped-call]
        # Same transaction: a checkpoint never covers an event that rolled back, nor misses one that committed.
        self._checkpoints.after_append(head + len(events), prev, max(e.time for e in events))

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

    # --- reading -----------------------------------------------------------------------------------------------

    def page(self, where: AuditFilter, after: int | None, limit: int, newest_first: bool) -> list[StoredAuditEvent]:
        m = self._m
        conditions = _conditions(m, where)
        if conditions is None:
            return []
        if after is not None:
            conditions.append(m.seq < after if newest_first else m.seq > after)
        query = m.select().order_by(m.seq.desc() if newest_first else m.seq).limit(limit)
        if conditions:
            query = query.where(*conditions)
        with storage_errors():  # a database outage is StorageUnavailable, not an unexpected error
            return list(_stored(query))

    def newest_checkpoint(self) -> AuditCheckpoint | None:
        return self._checkpoints.newest()

    def verify_chain(self, batch: int = 1000) -> AuditTrailReport:
        """Recompute the chain and check each checkpoint: an edited, deleted or reordered row, rows missing before
        a checkpoint and a forged checkpoint show up as problems."""
        from sprongus.domain.audit_verify import walk  # here: only `audit verify` and `keys verify` walk the trail

        signer = self._checkpoints.signer
        signing_key = signer.signing_key() if signer is not None else None
        # The trail as it stood when the walk began: rows appended while it runs (the API serving on) are left out,
        # with the checkpoints written with them, or its count passed the newest checkpoint it had read and it
        # reported a deletion. Appends take the chain's lock and commit in seq order, so every row up to the head
        # read here is there. A checkpoint past that head whose row does not exist is still walked: a cut tail.
        with storage_errors():
            head = self._m.select(peewee.fn.MAX(self._m.seq)).scalar() or 0
        return walk(self._rows(batch, head), self._checkpoints_to(batch, head), signer.check if signer else None,
                    signing_key)

    def _checkpoints_to(self, batch: int, head: int) -> Iterator[AuditCheckpoint]:
        m = self._m
        for checkpoint in self._checkpoints.pages(batch):
            if checkpoint.seq > head:
                with storage_errors():
                    appended_since = m.select(m.seq).where(m.seq == checkpoint.seq).exists()
                if appended_since:
                    continue
            yield checkpoint

    def _rows(self, batch: int, head: int) -> Iterator[StoredAuditEvent]:
        m, after = self._m, 0
        while True:
            with storage_errors():
                rows = list(m.select().where(m.seq > after, m.seq <= head).order_by(m.seq).limit(batch))
            for event in _stored(rows):
                yield event
                after = event.seq
            if len(rows) < batch:
                return


def _conditions(m: Any, where: AuditFilter) -> list[Any] | None:
    """The filter as WHERE terms; None when it admits nothing (a tenant asking for a scope it cannot see)."""
    terms: list[Any] = []
    if where.scopes is not None:
        if not where.scopes:
            return None
        terms.append(m.scope.in_(list(where.scopes)))
    for column, wanted in ((m.key_name, where.key), (m.actor, where.actor), (m.action, where.action)):
        if wanted is not None:
            terms.append(column == wanted)
    if where.since is not None:
        terms.append(m.time >= where.since)
    if where.until is not None:
        terms.append(m.time < where.until)
    if where.key_prefix:  # a plain, case-sensitive "starts with" (LIKE would treat `_` as a wildcard)
        terms.append(peewee.fn.substr(m.key_name, 1, len(where.key_prefix)) == where.key_prefix)
    return terms


def _stored(rows: Iterable[Any]) -> Iterator[StoredAuditEvent]:
    from sprongus.domain.audit_rows import StoredAuditEvent  # here: a command that only appends reads no event

    for row in rows:
        yield StoredAuditEvent(row.seq, row.time, row.actor, row.action, row.scope, row.key_name, row.version,
                               row.outcome, row.request_id, row.client_address, row.detail, row.prev_hash, row.hash)


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, Unavailable) or outage_of(exc) is not None
