"""SecretRepository and UnitOfWork on peewee, for SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import peewee

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.adapters.peewee.models import BoundModels
from sprongus.adapters.peewee.versions import SECRET_COLUMNS, VersionStatements
from sprongus.domain.errors import Conflict, IntegrityError, ValidationError
from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import OwnerType, Scope

COLUMNS = SECRET_COLUMNS
_UPDATED = ("ciphertext", "dek_wrapped", "nonce", "alg", "master_key_id", "version", "created_at", "updated_at",
            "last_rotated_at", "meta", "hmac", "checksum", "deleted_at", "version_by")
# What each column must decode to; a row with any other shape is a damaged record, not an exception (below).
_SHAPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "owner_type": (str,), "owner_id": (str, type(None)), "key_name": (str,), "ciphertext": (bytes,),
    "dek_wrapped": (bytes,), "nonce": (bytes,), "alg": (str,), "master_key_id": (str,), "version": (int,),
    "created_at": (datetime,), "updated_at": (datetime,), "last_rotated_at": (datetime, type(None)),
    "meta": (dict,), "hmac": (str, type(None)), "checksum": (str,), "deleted_at": (datetime, type(None)),
    "version_by": (str, type(None))}
# The columns pages are keyed on: a row whose id or name does not decode cannot be named or paged past (a made-up
# value would restart the page), so it fails its whole read as an IntegrityError instead.
_NAMES = ("id", "key_name")
_PLACEHOLDERS: dict[str, Any] = {
    "ciphertext": b"", "dek_wrapped": b"", "nonce": b"", "alg": "", "master_key_id": "",
    "version": 0, "created_at": datetime.fromtimestamp(0, UTC), "updated_at": datetime.fromtimestamp(0, UTC),
    "last_rotated_at": None, "meta": {}, "hmac": None, "checksum": "", "deleted_at": None, "version_by": None}


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (byte order, ASCII prefixes)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class PeeweeSecretRepository(VersionStatements):
    """Hot statements are written once as SQL text: building them with peewee's query builder on every call
    cost more than the database work itself. Values still go through the models' dialect-aware fields."""

    def __init__(self, models: BoundModels, lock_rows: bool = False) -> None:
        self._m = models.secret
        self._db = models.db
        p = self._db.param
        cols = ", ".join(COLUMNS)
        # Postgres writers read with FOR UPDATE: a concurrent writer of the same row waits for this transaction
        # instead of losing its compare-and-set (SQLite's IMMEDIATE transactions already serialize writers).
        lock = " FOR UPDATE" if lock_rows else ""
        place = {owned: f"SELECT {cols} FROM secret_kv WHERE owner_type = {p} AND "
                        f"{'owner_id = ' + p if owned else 'owner_id IS NULL'} AND key_name = {p}"
                 for owned in (True, False)}
        self._get = {owned: f"{sql} AND deleted_at IS NULL{lock}" for owned, sql in place.items()}
        self._get_any = {owned: f"{sql}{lock}" for owned, sql in place.items()}
        # No conflict target: any unique violation becomes "0 rows", with no error to abort a Postgres transaction.
        self._insert = (f"INSERT INTO secret_kv ({cols}) VALUES ({', '.join([p] * len(COLUMNS))}) "
                        "ON CONFLICT DO NOTHING")
        self._update = (f"UPDATE secret_kv SET {', '.join(f'{c} = {p}' for c in _UPDATED)} "
                        f"WHERE id = {p} AND version = {p}")
        self._select = f"SELECT {cols} FROM secret_kv"
        self._fields = [self._m._meta.fields[name] for name in COLUMNS]
        # What _record needs per column, looked up once: it runs for every row a page or a batch reveal reads.
        self._decoders = [(f.name, f.python_value, _SHAPES[f.name], f.name in _NAMES) for f in self._fields]
        self._time = self._m._meta.fields["deleted_at"].db_value
        self._version_sql()

    def _place(self, scope: Scope) -> tuple[str, list[Any]]:
        p = self._db.param
        if scope.owner_id is None:
            return f"owner_type = {p} AND owner_id IS NULL", [scope.owner_type.value]
        return f"owner_type = {p} AND owner_id = {p}", [scope.owner_type.value, scope.owner_id]

    def get(self, scope: Scope, key: str) -> SecretRecord | None:
        row = self._db.execute_sql(*self.get_statement(scope, key)).fetchone()  # type: ignore[no-untyped-call]
        return None if row is None else self.record(row, scope)

    def get_statement(self, scope: Scope, key: str) -> tuple[str, list[Any]]:
        """`get`'s SELECT and its parameters: UnitOfWork.current sends it in one message with the caller."""
        params = [scope.owner_type.value, *([scope.owner_id] if scope.owner_id is not None else []), key]
        return self._get[scope.owner_id is not None], params

    def get_any(self, scope: Scope, key: str) -> SecretRecord | None:
        params = [scope.owner_type.value, *([scope.owner_id] if scope.owner_id is not None else []), key]
        row = self._db.execute_sql(self._get_any[scope.owner_id is not None], params).fetchone()  # type: ignore[no-untyped-call]
        return None if row is None else self.record(row, scope)

    def get_many(self, scope: Scope, keys: list[str]) -> list[SecretRecord]:
        names = sorted(set(keys))
        if not names:  # `IN ()` is no SQL
            return []
        where, params = self._place(scope)
        marks = ", ".join([self._db.param] * len(names))  # the service caps a batch well below either dialect's
        return self._query(f"{self._select} WHERE {where} AND key_name IN ({marks}) AND deleted_at IS NULL "
                           "ORDER BY key_name",
                           [*params, *names], scope)

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        values = self._values(record)
        if expected_version is None:
            try:
                inserted = self._db.execute_sql(self._insert, values).rowcount  # type: ignore[no-untyped-call]
            except peewee.IntegrityError as exc:  # a uniqueness rule ON CONFLICT does not cover
                if "unique" not in str(exc).lower() and "duplicate" not in str(exc).lower():
                    raise
                inserted = 0
            if inserted != 1:
                raise Conflict(f"secret {record.key} was created concurrently")
            return
        by_name = dict(zip(COLUMNS, values, strict=True))
        params = [by_name[c] for c in _UPDATED] + [record.id, expected_version]
        if self._db.execute_sql(self._update, params).rowcount != 1:  # type: ignore[no-untyped-call]
            raise Conflict(f"secret {record.key} changed concurrently")

    def list_page(self, scope: Scope, prefix: str, after_key: str | None, limit: int,
                  deleted: bool = False) -> list[SecretRecord]:
        p = self._db.param
        where, params = self._place(scope)
        where += f" AND deleted_at {'IS NOT NULL' if deleted else 'IS NULL'}"
        if prefix:
            where += f" AND key_name >= {p} AND key_name < {p}"
            params += [prefix, prefix_upper_bound(prefix)]
        if after_key is not None:
            where += f" AND key_name > {p}"
            params.append(after_key)
        return self._query(f"{self._select} WHERE {where} ORDER BY key_name LIMIT {p}", [*params, limit], scope)

    def scan(self, after_id: str | None, limit: int, not_on_master_key: str | None = None) -> list[SecretRecord]:
        p = self._db.param
        where, params = [dialect_of(self._db).true], []
        if after_id is not None:
            where.append(f"id > {p}")
            params.append(after_id)
        if not_on_master_key is not None:
            where.append(f"master_key_id <> {p}")
            params.append(not_on_master_key)
        return self._query(f"{self._select} WHERE {' AND '.join(where)} ORDER BY id LIMIT {p}", [*params, limit])

    def deleted_before(self, cutoff: datetime, limit: int, skip: int = 0) -> list[SecretRecord]:
        p = self._db.param
        return self._query(f"{self._select} WHERE deleted_at IS NOT NULL AND deleted_at < {p} "
                           f"ORDER BY deleted_at, id LIMIT {p} OFFSET {p}", [self._time(cutoff), limit, skip])

    def _query(self, sql: str, params: list[Any], place: Scope | None = None) -> list[SecretRecord]:
        rows = self._db.execute_sql(sql, params).fetchall()  # type: ignore[no-untyped-call]
        return [self.record(row, place) for row in rows]

    def _values(self, record: SecretRecord) -> list[Any]:
        raw = {"id": record.id, "owner_type": record.scope.owner_type.value, "owner_id": record.scope.owner_id,
               "key_name": record.key, "ciphertext": record.ciphertext, "dek_wrapped": record.dek_wrapped,
               "nonce": record.nonce, "alg": record.alg, "master_key_id": record.master_key_id,
               "version": record.version, "created_at": record.created_at, "updated_at": record.updated_at,
               "last_rotated_at": record.last_rotated_at, "meta": record.meta, "hmac": record.hmac,
               "checksum": record.checksum, "deleted_at": record.deleted_at, "version_by": record.version_by}
        return [field.db_value(raw[field.name]) for field in self._fields]

    def record(self, row: tuple[Any, ...], place: Scope | None) -> SecretRecord:
        """Decode column by column. A corrupt column (broken base64, a bad timestamp, meta that is no object)
        marks this one record as damaged instead of raising: one bad row used to fail a whole listing, stop
        `verify` before the rows after it (hiding their tampering) and make a reveal an "unexpected" error."""
        v: dict[str, Any] = {}
        defect: list[str] = []
        for (name, decode, shape, naming), raw in zip(self._decoders, row, strict=True):
            try:
                value = decode(raw)
            except (ValueError, TypeError, AttributeError, OverflowError):
                value = None
                ok = False
            else:
                ok = isinstance(value, shape) and value.__class__ is not bool
            if not ok and naming:
                raise IntegrityError()
            if not ok or (name == "version" and value < 1):
                defect.append(name)
                value = _PLACEHOLDERS.get(name)
            v[name] = value
        try:
            scope = Scope(OwnerType(v["owner_type"]), v["owner_id"])
        except (ValueError, ValidationError) as exc:
            column = "owner_id" if isinstance(exc, ValidationError) else "owner_type"
            defect += [] if column in defect else [column]
            scope = place or Scope.system()  # a placeholder: `verify` shows such a row's scope as "?"
        return SecretRecord(
            id=v["id"], scope=scope, key=v["key_name"], ciphertext=v["ciphertext"], dek_wrapped=v["dek_wrapped"],
            nonce=v["nonce"], alg=v["alg"], master_key_id=v["master_key_id"], version=v["version"],
            created_at=v["created_at"], updated_at=v["updated_at"], last_rotated_at=v["last_rotated_at"],
            meta=v["meta"], hmac=v["hmac"], checksum=v["checksum"], defect=tuple(defect),
            deleted_at=v["deleted_at"], version_by=v["version_by"])


class PeeweeUnitOfWork:
    """One database transaction per unit of work; on Postgres it first tells row-level security who calls."""

    def __init__(self, models: BoundModels) -> None:
        self.models = models
        self.db = models.db
        self._repo = PeeweeSecretRepository(models)
        self._dialect = dialect_of(self.db)
        self._writer_repo = PeeweeSecretRepository(models, lock_rows=self._dialect.locks_rows)
        self.serializes_writes = not self._dialect.locks_rows  # SQLite: a write transaction holds the only writer

    @contextmanager
    def transaction(self, caller: Principal, readonly: bool = False) -> Iterator[PeeweeSecretRepository]:
        with storage_errors(), self._begin(caller, readonly) as repo:
            yield repo

    @contextmanager
    def _begin(self, caller: Principal, readonly: bool) -> Iterator[PeeweeSecretRepository]:
        with self._dialect.caller_transaction(self.db, caller, readonly):
            yield self._repo if readonly else self._writer_repo

    def current(self, caller: Principal, scope: Scope, key: str) -> SecretRecord | None:
        """transaction(readonly) then get, where a dialect can in one round trip (dialect.py caller_read)."""
        with storage_errors():
            row = self._dialect.caller_read(self.db, caller, *self._repo.get_statement(scope, key))
            return None if row is None else self._repo.record(row, scope)

    def count_by_master_key(self, caller: Principal) -> dict[str, int]:
        m = self.models.secret
        v = self.models.secret_version
        counts: dict[str, int] = {}
        with self.transaction(caller, readonly=True):
            for model, column in ((m, m.id), (v, v.secret_id)):
                rows: Any = model.select(model.master_key_id, peewee.fn.COUNT(column)).group_by(
                    model.master_key_id).tuples()
                for key_id, n in rows:
                    counts[str(key_id)] = counts.get(str(key_id), 0) + int(n)
            return counts
