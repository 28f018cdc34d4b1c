from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope


class SecretRepository(Protocol):
    """The secret_kv table seen from inside one transaction."""

    def get(self, scope: Scope, key: str) -> SecretRecord | None: ...

    def get_many(self, scope: Scope, keys: list[str]) -> list[SecretRecord]:
        """The rows of these keys that exist, in one statement, ordered by key name (absent keys are left out)."""
        ...

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        """Insert (expected_version None) or compare-and-set update; raises Conflict if the row moved."""
        ...

    def delete(self, scope: Scope, key: str) -> bool: ...

    def list_page(self, scope: Scope, prefix: str, after_key: str | None, limit: int) -> list[SecretRecord]:
        """Rows of one scope ordered by key name, strictly after `after_key` (keyset pagination)."""
        ...

    def scan(self, after_id: str | None, limit: int, not_on_master_key: str | None = None) -> list[SecretRecord]:
        """All rows the caller may see ordered by id, optionally only those wrapped by another master key."""
        ...


class UnitOfWork(Protocol):
    """Opens transactions on behalf of a caller: commit on success, roll back on any exception."""

    def transaction(self, caller: Principal, readonly: bool = False) -> AbstractContextManager[SecretRepository]:
        """`readonly` lets an engine skip write locks; writing inside one is a programming error."""
        ...

    def count_by_master_key(self, caller: Principal) -> dict[str, int]: ...
