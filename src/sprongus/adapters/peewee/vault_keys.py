"""The vault_key table: master-key check values and wrapped value-HMAC keys (ports/vault_keys.py)."""

from __future__ import annotations

from collections.abc import Callable

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.adapters.peewee.models import BoundModels, VaultKeyRow
from sprongus.domain.scope import OwnerType, Scope
from sprongus.ports.vault_keys import StoredDataKey, VaultKeyRecord

VAULT_KEY_LOCK_ID = 0x5350524B  # serializes master-key recording on Postgres ("SPRK")


class PeeweeVaultKeyStore:
    def __init__(self, models: BoundModels) -> None:
        self._m = models.vault_key
        self._secret = models.secret
        self._db = models.db

    def records(self) -> list[VaultKeyRecord]:
        with storage_errors():
            rows = list(self._m.select().order_by(self._m.created_at, self._m.key_id))
        return [_record(row) for row in rows]

    def add(self, record: VaultKeyRecord) -> None:
        with storage_errors(), self._db.atomic():
            self._m.insert(kind=record.kind, key_id=record.key_id, blob=record.blob,
                           master_key_id=record.master_key_id, created_at=record.created_at).on_conflict_ignore(
            ).execute()

    def add_master(self, record: VaultKeyRecord, accept: Callable[[list[VaultKeyRecord]], bool]) -> bool:
        dialect = dialect_of(self._db)
        with storage_errors(), dialect.write_transaction(self._db):
            dialect.serialize(self._db, VAULT_KEY_LOCK_ID)  # two first writers with two different keys: one wins
            records = [_record(row) for row in self._m.select().order_by(self._m.created_at, self._m.key_id)]
            if any(r.kind == record.kind and r.key_id == record.key_id for r in records):
                return True
            if not accept(records):
                return False
            self._m.insert(kind=record.kind, key_id=record.key_id, blob=record.blob,
                           master_key_id=record.master_key_id, created_at=record.created_at).execute()
            return True

    def rewrap(self, record: VaultKeyRecord) -> None:
        m = self._m
        with storage_errors(), self._db.atomic():
            m.update(blob=record.blob, master_key_id=record.master_key_id).where(
                (m.kind == record.kind) & (m.key_id == record.key_id)).execute()

    def data_keys(self, limit: int, master_key_id: str | None = None) -> list[StoredDataKey]:
        sql = dialect_of(self._db).data_keys_sql(self._db)
        with storage_errors(), self._db.atomic():
            rows = self._db.execute_sql(sql, [master_key_id, limit]).fetchall()  # type: ignore[no-untyped-call]
        keys = []
        blob = self._secret.dek_wrapped
        for owner_type, owner_id, key_name, version, dek_wrapped, master_key_id in rows:
            try:
                scope = Scope(OwnerType(owner_type), owner_id)
                keys.append(StoredDataKey(scope, key_name, int(version), blob.python_value(dek_wrapped) or b"",
                                          master_key_id))
            except (ValueError, TypeError):
                continue  # a row that does not decode tests no key; `keys verify` reports it
        return keys


def _record(row: VaultKeyRow) -> VaultKeyRecord:
    return VaultKeyRecord(row.kind, row.key_id, row.blob, row.master_key_id, row.created_at)
