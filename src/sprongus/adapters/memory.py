"""In-memory adapters: the test harness and the `test` profile. Same contract as the real adapters."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sprongus.adapters.memory_versions import InMemoryVersions
from sprongus.domain.audit_log import (
    GENESIS,
    AuditCheckpoint,
    chain_fields,
    chain_hash,
    checkpoint_due,
    storable,
)
from sprongus.domain.audit_rows import AuditFilter, StoredAuditEvent
from sprongus.domain.audit_verify import AuditTrailReport, walk
from sprongus.domain.errors import AuditUnavailable, Conflict
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditEvent, SecretRecord
from sprongus.domain.scope import Scope
from sprongus.ports.audit import CheckpointSigner

_Key = tuple[Scope, str]


class InMemorySecretRepository(InMemoryVersions):
    """The rows, plus an undo journal so a failed transaction leaves them as they were."""

    def __init__(self) -> None:
        self.rows: dict[Scope, dict[str, SecretRecord]] = {}
        self._journal: list[tuple[_Key, SecretRecord | None]] | None = None
        super().__init__()

    def get(self, scope: Scope, key: str) -> SecretRecord | None:
        record = self.rows.get(scope, {}).get(key)
        return None if record is None or record.deleted_at is not None else record

    def get_any(self, scope: Scope, key: str) -> SecretRecord | None:
        return self.rows.get(scope, {}).get(key)

    def get_many(self, scope: Scope, keys: list[str]) -> list[SecretRecord]:
        rows = self.rows.get(scope, {})
        return [rows[k] for k in sorted(set(keys)) if k in rows and rows[k].deleted_at is None]

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        current = self.get_any(record.scope, record.key)
        if (None if current is None else current.version) != expected_version:
            raise Conflict(f"secret {record.key} changed concurrently",
                           current_version=None if current is None else current.version)
        self._remember(record.scope, record.key, current)
        # Records are frozen and the service builds a fresh meta dict for each one: no copy needed.
        self.rows.setdefault(record.scope, {})[record.key] = record

    def mark_deleted(self, scope: Scope, key: str, at: datetime | None) -> bool:
        current = self.get_any(scope, key)
        if current is None or (current.deleted_at is None) == (at is None):
            return False
        self._remember(scope, key, current)
        self.rows[scope][key] = replace(current, deleted_at=at)
        return True

    def _drop_current(self, scope: Scope, key: str) -> SecretRecord | None:
        current = self.get_any(scope, key)
        if current is not None:
            self._remember(scope, key, current)
            del self.rows[scope][key]
        return current

    def deleted_before(self, cutoff: datetime, limit: int, skip: int = 0) -> list[SecretRecord]:
        found = [r for rows in self.rows.values() for r in rows.values()
                 if r.deleted_at is not None and r.deleted_at < cutoff]
        return sorted(found, key=lambda r: (r.deleted_at or cutoff, r.id))[skip:skip + limit]

    def list_page(self, scope: Scope, prefix: str, after_key: str | None, limit: int,
                  deleted: bool = False) -> list[SecretRecord]:
        rows = self.rows.get(scope, {})
        names = sorted(k for k in rows if k.startswith(prefix) and (after_key is None or k > after_key)
                       and (rows[k].deleted_at is not None) == deleted)
        return [rows[k] for k in names[:limit]]

    def scan(self, after_id: str | None, limit: int, not_on_master_key: str | None = None) -> list[SecretRecord]:
        found = [r for rows in self.rows.values() for r in rows.values()
                 if (after_id is None or r.id > after_id)
                 and (not_on_master_key is None or r.master_key_id != not_on_master_key)]
        return sorted(found, key=lambda r: r.id)[:limit]

    def _remember(self, scope: Scope, key: str, previous: SecretRecord | None) -> None:
        if self._journal is not None:
            self._journal.append(((scope, key), previous))

    def begin(self) -> None:
        self._journal = []
        self._begin_versions()

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        self._rollback_versions()
        for (scope, key), previous in reversed(self._journal or []):
            if previous is None:
                self.rows.get(scope, {}).pop(key, None)
            else:
                self.rows.setdefault(scope, {})[key] = previous
        self._journal = None


class InMemoryUnitOfWork:
    """Serializes transactions with one lock: the simplest isolation that is obviously right."""

    serializes_writes = True

    def __init__(self, repository: InMemorySecretRepository | None = None) -> None:
        self.repository = repository or InMemorySecretRepository()
        self._lock = threading.RLock()

    def transaction(self, caller: Principal, readonly: bool = False) -> _Transaction:
        return _Transaction(self.repository, self._lock)

    def current(self, caller: Principal, scope: Scope, key: str) -> SecretRecord | None:
        with self.transaction(caller, readonly=True) as repo:
            return repo.get(scope, key)

    def count_by_master_key(self, caller: Principal) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            records = [r for rows in self.repository.rows.values() for r in rows.values()]
            for record in [*records, *self.repository.kept.values()]:
                counts[record.master_key_id] = counts.get(record.master_key_id, 0) + 1
        return counts


class _Transaction:
    """A class, not a generator context manager: this sits on the hot path of every call."""

    __slots__ = ("_lock", "_repo")

    def __init__(self, repository: InMemorySecretRepository, lock: threading.RLock) -> None:
        self._repo = repository
        self._lock = lock

    def __enter__(self) -> InMemorySecretRepository:
        self._lock.acquire()
        self._repo.begin()
        return self._repo

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                self._repo.commit()
            else:
                self._repo.rollback()
        finally:
            self._lock.release()


class InMemoryAuditSink:
    """Keeps events in a list (`events`), chained and checkpointed like the SQL trail (`rows`, `checkpoints`). Set
    `available = False` to simulate a broken audit store."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.rows: list[StoredAuditEvent] = []
        self.checkpoints: list[AuditCheckpoint] = []
        self.available = True
        self._signer: CheckpointSigner | None = None
        self._lock = threading.Lock()

    def use_signer(self, signer: CheckpointSigner) -> None:
        self._signer = signer

    def record(self, event: AuditEvent) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        if not self.available:
            raise AuditUnavailable("audit store unavailable")
        if not events:
            return
        with self._lock:  # no other event lands between a batch's events
            self.events.extend(events)
            for event in events:
                self.rows.append(_chained(len(self.rows) + 1, event, self.rows[-1].hash if self.rows else GENESIS))
            self._checkpoint(max(e.time for e in events))

    def _checkpoint(self, now: datetime) -> None:
        head = self.rows[-1]
        if not checkpoint_due(self.checkpoints[-1] if self.checkpoints else None, head.seq, now):
            return
        checkpoint = AuditCheckpoint(head.seq, len(self.rows), head.hash, now)
        if self._signer is not None:
            try:
                checkpoint = self._signer.sign(checkpoint)
            except Exception:  # the event is still recorded; the next one tries again
                return
        self.checkpoints.append(checkpoint)

    def page(self, where: AuditFilter, after: int | None, limit: int,
              newest_first: bool) -> list[StoredAuditEvent]:
        with self._lock:
            rows = list(reversed(self.rows) if newest_first else self.rows)
        if after is not None:
            rows = [r for r in rows if (r.seq < after if newest_first else r.seq > after)]
        return [r for r in rows if where.matches(r)][:limit]

    def newest_checkpoint(self) -> AuditCheckpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def verify_chain(self) -> AuditTrailReport:
        with self._lock:
            rows, checkpoints = list(self.rows), list(self.checkpoints)
        signer = self._signer
        return walk(rows, checkpoints, signer.check if signer else None, signer.signing_key() if signer else None)


def _chained(seq: int, event: AuditEvent, prev: str) -> StoredAuditEvent:
    detail = storable(json.loads(json.dumps(event.detail, default=str)))
    actor, scope, key_name, request_id, client_address = (storable(v) for v in (
        event.actor, event.scope, event.key_name, event.request_id, event.client_address))
    fields = chain_fields(event.time, actor, event.action.value, scope, key_name, event.version,
                          event.outcome.value, request_id, client_address, detail)
    return StoredAuditEvent(seq, event.time, actor, event.action.value, scope, key_name, event.version,
                            event.outcome.value, request_id, client_address, detail, prev,
                            chain_hash(prev, fields))


class ManualClock:
    """A deterministic clock for tests: time moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
