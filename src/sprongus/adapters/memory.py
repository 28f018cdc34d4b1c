"""In-memory adapters: the test harness and the `test` profile. Same contract as the real adapters."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sprongus.domain.errors import AuditUnavailable, Conflict
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditEvent, SecretRecord
from sprongus.domain.scope import Scope

_Key = tuple[Scope, str]


class InMemorySecretRepository:
    """The rows, plus an undo journal so a failed transaction leaves them as they were."""

    def __init__(self) -> None:
        self.rows: dict[Scope, dict[str, SecretRecord]] = {}
        self._journal: list[tuple[_Key, SecretRecord | None]] | None = None

    def get(self, scope: Scope, key: str) -> SecretRecord | None:
        return self.rows.get(scope, {}).get(key)

    def get_many(self, scope: Scope, keys: list[str]) -> list[SecretRecord]:
        rows = self.rows.get(scope, {})
        return [rows[k] for k in sorted(set(keys)) if k in rows]

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        current = self.get(record.scope, record.key)
        if (None if current is None else current.version) != expected_version:
            raise Conflict(f"secret {record.key} changed concurrently",
                           current_version=None if current is None else current.version)
        self._remember(record.scope, record.key, current)
        # Records are frozen and the service builds a fresh meta dict for each one: no copy needed.
        self.rows.setdefault(record.scope, {})[record.key] = record

    def delete(self, scope: Scope, key: str) -> bool:
        current = self.get(scope, key)
        if current is None:
            return False
        self._remember(scope, key, current)
        del self.rows[scope][key]
        return True

    def list_page(self, scope: Scope, prefix: str, after_key: str | None, limit: int) -> list[SecretRecord]:
        rows = self.rows.get(scope, {})
        names = sorted(k for k in rows if k.startswith(prefix) and (after_key is None or k > after_key))
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

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        for (scope, key), previous in reversed(self._journal or []):
            if previous is None:
                self.rows.get(scope, {}).pop(key, None)
            else:
                self.rows.setdefault(scope, {})[key] = previous
        self._journal = None


class InMemoryUnitOfWork:
    """Serializes transactions with one lock: the simplest isolation that is obviously right."""

    def __init__(self, repository: InMemorySecretRepository | None = None) -> None:
        self.repository = repository or InMemorySecretRepository()
        self._lock = threading.RLock()

    def transaction(self, caller: Principal, readonly: bool = False) -> _Transaction:
        return _Transaction(self.repository, self._lock)

    def count_by_master_key(self, caller: Principal) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for rows in self.repository.rows.values():
                for record in rows.values():
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
    """Keeps events in a list. Set `available = False` to simulate a broken audit store."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.available = True
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        if not self.available:
            raise AuditUnavailable("audit store unavailable")
        with self._lock:
            self.events.append(event)

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        if not self.available:
            raise AuditUnavailable("audit store unavailable")
        with self._lock:  # one extend under the lock: no other event lands between a batch's events
            self.events.extend(events)


class ManualClock:
    """A deterministic clock for tests: time moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
