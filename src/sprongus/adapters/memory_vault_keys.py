"""The vault's key records in memory, beside the in-memory secrets they describe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from sprongus.adapters.memory import InMemoryUnitOfWork
from sprongus.domain.principal import Principal
from sprongus.ports.vault_keys import StoredDataKey, VaultKeyRecord


class InMemoryVaultKeyStore:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow
        self._records: dict[tuple[str, str], VaultKeyRecord] = {}
        self._lock = threading.Lock()
        self._recording = threading.Lock()

    def records(self) -> list[VaultKeyRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: (r.created_at, r.key_id))

    def add(self, record: VaultKeyRecord) -> None:
        with self._lock:
            self._records.setdefault((record.kind, record.key_id), record)

    def add_master(self, record: VaultKeyRecord, accept: Callable[[list[VaultKeyRecord]], bool]) -> bool:
        with self._recording:
            if (record.kind, record.key_id) in self._records:
                return True
            if not accept(self.records()):
                return False
            self.add(record)
            return True

    def rewrap(self, record: VaultKeyRecord) -> None:
        with self._lock:
            old = self._records.get((record.kind, record.key_id))
            if old is not None:
                self._records[(record.kind, record.key_id)] = replace(old, blob=record.blob,
                                                                      master_key_id=record.master_key_id)

    def data_keys(self, limit: int, master_key_id: str | None = None) -> list[StoredDataKey]:
        keys = []
        with self._uow.transaction(Principal.local_owner("vault-keys"), readonly=True) as repo:
            for rows in repo.rows.values():
                for r in rows.values():
                    if master_key_id is not None and r.master_key_id != master_key_id:
                        continue
                    keys.append(StoredDataKey(r.scope, r.key, r.version, r.dek_wrapped, r.master_key_id))
        return keys[:limit]
