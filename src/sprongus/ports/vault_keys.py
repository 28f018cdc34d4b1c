"""Where a vault keeps what it knows about its keys: master-key check values and the wrapped value-HMAC keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sprongus.domain.scope import Scope

MASTER, HMAC = "master", "hmac"


@dataclass(frozen=True)
class VaultKeyRecord:
    """kind MASTER: `blob` is a random check value wrapped by the master key `key_id` itself, so only that key
    opens it (the vault's fingerprint of the key). kind HMAC: `blob` is a value-HMAC key wrapped by the master
    key `master_key_id`."""

    kind: str
    key_id: str
    blob: bytes = field(repr=False)  # the wrapped check value or HMAC key: a repr shows which key, not the key
    master_key_id: str
    created_at: datetime


@dataclass(frozen=True)
class StoredDataKey:
    """One secret version's wrapped data key and its place: enough to test a master key against the vault."""

    scope: Scope
    key: str
    version: int
    dek_wrapped: bytes = field(repr=False)
    master_key_id: str


class VaultKeyStore(Protocol):
    def records(self) -> list[VaultKeyRecord]:
        """Every record, oldest first."""
        ...

    def add(self, record: VaultKeyRecord) -> None:
        """Insert; a record with the same kind and key id already there wins (another process was first)."""
        ...

    def add_master(self, record: VaultKeyRecord, accept: Callable[[list[VaultKeyRecord]], bool]) -> bool:
        """Record a master key, one process at a time: `accept` sees the records as they are under the lock (it
        may test the key against them) and decides. False when it refused; True when recorded or already there."""
        ...

    def rewrap(self, record: VaultKeyRecord) -> None:
        """Replace the blob and master key id of an existing HMAC record (after a master-key rotation)."""
        ...

    def data_keys(self, limit: int, master_key_id: str | None = None) -> list[StoredDataKey]:
        """Up to `limit` stored data keys of any tenant (wrapped by `master_key_id` when given): the vault holds
        secrets exactly when this is not empty."""
        ...
