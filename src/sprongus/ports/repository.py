from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope


class SecretRepository(Protocol):
    """The secret tables seen from inside one transaction: secret_kv (current versions, soft-deleted ones
    flagged), secret_version (the versions before them) and the version numbers purged secrets used."""

    def get(self, scope: Scope, key: str) -> SecretRecord | None:
        """The current version of a live secret (a soft-deleted one is None)."""
        ...

    def get_any(self, scope: Scope, key: str) -> SecretRecord | None:
        """The current version, deleted or not: writers decide what a deleted secret means."""
        ...

    def get_many(self, scope: Scope, keys: list[str]) -> list[SecretRecord]:
        """The rows of these keys that exist, in one statement, ordered by key name (absent keys are left out)."""
        ...

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        """Insert (expected_version None) or compare-and-set update; raises Conflict if the row moved."""
        ...

    def mark_deleted(self, scope: Scope, key: str, at: datetime | None) -> bool:
        """Soft delete (`at`) or restore (None) without touching any version; False if nothing changed."""
        ...

    def purge(self, scope: Scope, key: str, at: datetime) -> list[int]:
        """Destroy the secret and every version it kept; the version numbers destroyed, newest first. The last
        number is remembered so a new secret of that name starts after it."""
        ...

    def last_purged_version(self, scope: Scope, key: str) -> int:
        """The newest version number a purged secret of that name had (0: none)."""
        ...

    def archive(self, record: SecretRecord) -> None:
        """Keep a version that is about to stop being current (secret_version)."""
        ...

    def prune(self, scope: Scope, key: str, below: int) -> list[int]:
        """Destroy the kept versions numbered below `below`; their numbers, newest first."""
        ...

    def versions(self, scope: Scope, key: str) -> list[SecretRecord]:
        """The kept versions before the current one, newest first."""
        ...

    def get_version(self, scope: Scope, key: str, version: int) -> SecretRecord | None:
        """One kept version before the current one."""
        ...

    def save_version(self, record: SecretRecord, expected_checksum: str) -> bool:
        """Re-seal or re-wrap a kept version in place (same number, same AAD); False if it changed or is gone."""
        ...

    def rewrap_many(self, rows: list[tuple[SecretRecord, str]], kept: bool) -> int:
        """Re-wrapped DEKs in one statement: each record's dek_wrapped, master_key_id, hmac and checksum replace its
        row's (the current one, or with `kept` the kept version of that number) where the row still has the
        checksum paired with it. The number of rows changed: the others were rewritten meanwhile."""
        ...

    def scan_versions(self, after: tuple[str, int] | None, limit: int,
                      not_on_master_key: str | None = None) -> list[SecretRecord]:
        """Every kept version the caller may see, ordered by (secret id, version)."""
        ...

    def deleted_before(self, cutoff: datetime, limit: int, skip: int = 0) -> list[SecretRecord]:
        """Soft-deleted secrets deleted before `cutoff`, oldest deletion first, after the first `skip` of them."""
        ...

    def list_page(self, scope: Scope, prefix: str, after_key: str | None, limit: int,
                  deleted: bool = False) -> list[SecretRecord]:
        """Rows of one scope ordered by key name, strictly after `after_key` (keyset pagination): the live ones,
        or with `deleted` the soft-deleted ones."""
        ...

    def scan(self, after_id: str | None, limit: int, not_on_master_key: str | None = None) -> list[SecretRecord]:
        """All current versions the caller may see (deleted secrets' too) ordered by id, optionally only those
        wrapped by another master key."""
        ...


class UnitOfWork(Protocol):
    """Opens transactions on behalf of a caller: commit on success, roll back on any exception."""

    # True when every write transaction excludes every other (SQLite's one writer, the in-memory lock), so a writer
    # does what it can (a KMS call) before it opens one; False when writers lock only the rows they change.
    serializes_writes: bool

    def transaction(self, caller: Principal, readonly: bool = False) -> AbstractContextManager[SecretRepository]:
        """`readonly` lets an engine skip write locks; writing inside one is a programming error."""
        ...

    def current(self, caller: Principal, scope: Scope, key: str) -> SecretRecord | None:
        """`transaction(caller, readonly=True)` then `get(scope, key)`: an engine may do it in one round trip."""
        ...

    def count_by_master_key(self, caller: Principal) -> dict[str, int]:
        """Current and kept versions per master key id."""
        ...
