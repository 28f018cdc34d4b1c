"""SecretRepository and UnitOfWork on peewee, for SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import peewee

from sprongus.adapters.peewee.db import is_postgres
from sprongus.adapters.peewee.models import BoundModels, SecretKV
from sprongus.domain.errors import Conflict, StorageError
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import OwnerType, Scope

_COLUMNS = ("id", "ciphertext", "dek_wrapped", "nonce", "alg", "master_key_id", "version", "created_at",
            "updated_at", "last_rotated_at", "meta", "hmac", "checksum")


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (byte order, ASCII prefixes)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class PeeweeSecretRepository:
    def __init__(self, models: BoundModels, lock_rows: bool = False) -> None:
        self._m = models.secret
        # Postgres writers read with FOR UPDATE: a concurrent writer of the same row waits for this transaction
        # instead of losing its compare-and-set (SQLite's IMMEDIATE transactions already serialize writers).
        self._lock_rows = lock_rows

    def _place(self, scope: Scope) -> Any:
        m = self._m
        owner = m.owner_id.is_null() if scope.owner_id is None else (m.owner_id == scope.owner_id)
        return (m.owner_type == scope.owner_type.value) & owner

    def get(self, scope: Scope, key: str) -> SecretRecord | None:
        query = self._m.select().where(self._place(scope) & (self._m.key_name == key))
        row = (query.for_update() if self._lock_rows else query).first()
        return None if row is None else _record(row)

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        m = self._m
        values = {name: getattr(record, name) for name in _COLUMNS}
        if expected_version is None:
            try:
                with m._meta.database.atomic():  # a savepoint: a duplicate must not poison the outer transaction
                    m.insert(owner_type=record.scope.owner_type.value, owner_id=record.scope.owner_id,
                             key_name=record.key, **values).execute()
            except peewee.IntegrityError:
                raise Conflict(f"secret {record.key} was created concurrently") from None
            return
        del values["id"]
        changed = (m.update(**values)
                   .where(self._place(record.scope) & (m.key_name == record.key) & (m.version == expected_version))
                   .execute())
        if changed != 1:
            raise Conflict(f"secret {record.key} changed concurrently")

    def delete(self, scope: Scope, key: str) -> bool:
        return bool(self._m.delete().where(self._place(scope) & (self._m.key_name == key)).execute())

    def list_page(self, scope: Scope, prefix: str, after_key: str | None, limit: int) -> list[SecretRecord]:
        m = self._m
        cond = self._place(scope)
        if prefix:
            cond &= (m.key_name >= prefix) & (m.key_name < prefix_upper_bound(prefix))
        if after_key is not None:
            cond &= m.key_name > after_key
        return [_record(r) for r in m.select().where(cond).order_by(m.key_name).limit(limit)]

    def scan(self, after_id: str | None, limit: int, not_on_master_key: str | None = None) -> list[SecretRecord]:
        m = self._m
        query = m.select()
        if after_id is not None:
            query = query.where(m.id > after_id)
        if not_on_master_key is not None:
            query = query.where(m.master_key_id != not_on_master_key)
        return [_record(r) for r in query.order_by(m.id).limit(limit)]


def _record(row: SecretKV) -> SecretRecord:
    scope = Scope(OwnerType(row.owner_type), row.owner_id)
    return SecretRecord(
        id=row.id, scope=scope, key=row.key_name, ciphertext=row.ciphertext, dek_wrapped=row.dek_wrapped,
        nonce=row.nonce, alg=row.alg, master_key_id=row.master_key_id, version=row.version,
        created_at=row.created_at, updated_at=row.updated_at, last_rotated_at=row.last_rotated_at,
        meta=dict(row.meta), hmac=row.hmac, checksum=row.checksum)


class PeeweeUnitOfWork:
    """One database transaction per unit of work; on Postgres it first tells row-level security who calls."""

    def __init__(self, models: BoundModels) -> None:
        self.models = models
        self.db = models.db
        self._repo = PeeweeSecretRepository(models)
        self._writer_repo = PeeweeSecretRepository(models, lock_rows=is_postgres(self.db))

    @contextmanager
    def transaction(self, caller: Principal, readonly: bool = False) -> Iterator[PeeweeSecretRepository]:
        with storage_errors(), self._begin(caller, readonly) as repo:
            yield repo

    @contextmanager
    def _begin(self, caller: Principal, readonly: bool) -> Iterator[PeeweeSecretRepository]:
        if is_postgres(self.db):
            with self.db.atomic():
                set_caller(self.db, caller)
                yield self._repo if readonly else self._writer_repo
        else:
            # IMMEDIATE takes the write lock up front: a deferred read-then-write transaction can fail with
            # "database is locked" without waiting, when another writer got there first.
            with self.db.atomic("DEFERRED" if readonly else "IMMEDIATE"):
                yield self._repo

    def count_by_master_key(self, caller: Principal) -> dict[str, int]:
        m = self.models.secret
        with self.transaction(caller, readonly=True):
            rows: Any = m.select(m.master_key_id, peewee.fn.COUNT(m.id)).group_by(m.master_key_id).tuples()
            return {str(key_id): int(n) for key_id, n in rows}


@contextmanager
def storage_errors() -> Iterator[None]:
    """Driver failures become the domain's StorageError, with the driver's first line (never a value)."""
    try:
        yield
    except peewee.DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"database error: {first}") from exc
    except peewee.InterfaceError as exc:
        raise StorageError(f"database error: {type(exc).__name__}") from exc


def set_caller(db: peewee.Database, caller: Principal) -> None:
    """Transaction-local settings read by the RLS policies (never a plain SET: it would outlive the transaction)."""
    admin = "on" if caller.owner or Permission.ADMIN in caller.permissions else "off"
    db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT set_config('sprongus.subject', %s, true), set_config('sprongus.projects', %s, true), "
        "set_config('sprongus.admin', %s, true)",
        (caller.subject, ",".join(sorted(caller.projects)), admin))
