"""The kept versions (secret_version), soft delete and purge, for PeeweeSecretRepository.

An old version is stored exactly as its secret_kv row was while it was current, so it opens with the same AAD
(scope, key, version) and its checksum still holds; `secret_id` keys it to its secret for the keyset scans of
rotate-master and verify."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import peewee

from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope

SECRET_COLUMNS = ("id", "owner_type", "owner_id", "key_name", "ciphertext", "dek_wrapped", "nonce", "alg",
                  "master_key_id", "version", "created_at", "updated_at", "last_rotated_at", "meta", "hmac",
                  "checksum", "deleted_at", "version_by")
# secret_kv's columns, in the order the repository decodes them: an old version reads back as a record.
VERSION_COLUMNS = ("secret_id", "owner_type", "owner_id", "key_name", "ciphertext", "dek_wrapped", "nonce", "alg",
                   "master_key_id", "version", "created_at", "updated_at", "last_rotated_at", "meta", "hmac",
                   "checksum", "NULL", "version_by")
_STORED = [c for c in VERSION_COLUMNS if c != "NULL"]
_RESEALED = ("ciphertext", "dek_wrapped", "nonce", "alg", "master_key_id", "hmac", "checksum", "last_rotated_at")
_REWRAPPED = ("dek_wrapped", "master_key_id", "hmac", "checksum")
# Rows per UPDATE ... FROM (VALUES ...): far below SQLite's 32766 parameters, and one round trip per page.
_REWRAP_CHUNK = 1000


class VersionStatements:
    """Mixed into the repository: it supplies the database, the place filter, value encoding and decoding."""

    _db: peewee.Database
    _place: Callable[[Scope], tuple[str, list[Any]]]
    _values: Callable[[SecretRecord], list[Any]]
    _query: Callable[..., list[SecretRecord]]
    _time: Callable[[datetime], Any]
    _fields: list[Any]

    def _version_sql(self) -> None:
        p = self._db.param
        self._select_versions = f"SELECT {', '.join(VERSION_COLUMNS)} FROM secret_version"
        self._archive_sql = (f"INSERT INTO secret_version ({', '.join(_STORED)}) "
                             f"VALUES ({', '.join([p] * len(_STORED))}) ON CONFLICT DO NOTHING")

    def mark_deleted(self, scope: Scope, key: str, at: datetime | None) -> bool:
        place, params = self._place(scope)
        p = self._db.param
        was = "IS NULL" if at is not None else "IS NOT NULL"
        sql = f"UPDATE secret_kv SET deleted_at = {p} WHERE {place} AND key_name = {p} AND deleted_at {was}"
        stamp = None if at is None else self._time(at)
        return bool(self._db.execute_sql(sql, [stamp, *params, key]).rowcount)  # type: ignore[no-untyped-call]

    def archive(self, record: SecretRecord) -> None:
        by_name = dict(zip(SECRET_COLUMNS, self._values(record), strict=True))
        by_name["secret_id"] = by_name.pop("id")
        self._db.execute_sql(self._archive_sql, [by_name[c] for c in _STORED])  # type: ignore[no-untyped-call]

    def prune(self, scope: Scope, key: str, below: int) -> list[int]:
        place, params = self._place(scope)
        p = self._db.param
        sql = (f"DELETE FROM secret_version WHERE {place} AND key_name = {p} AND version < {p} "
               "RETURNING version")
        rows = self._db.execute_sql(sql, [*params, key, below]).fetchall()  # type: ignore[no-untyped-call]
        return sorted((int(r[0]) for r in rows), reverse=True)

    def purge(self, scope: Scope, key: str, at: datetime) -> list[int]:
        place, params = self._place(scope)
        p = self._db.param
        # The current row first: on Postgres this waits for a writer holding it (FOR UPDATE), so the prune below,
        # a later statement, sees the version that writer kept (pruning first left it behind in secret_version).
        rows = self._db.execute_sql(  # type: ignore[no-untyped-call]
            f"DELETE FROM secret_kv WHERE {place} AND key_name = {p} RETURNING version", [*params, key]).fetchall()
        gone = self.prune(scope, key, 2**31)
        # A damaged row's version may not be a number: it is destroyed all the same, without one to remember.
        gone = sorted([*gone, *(r[0] for r in rows if isinstance(r[0], int) and r[0] >= 1)], reverse=True)
        if gone:
            self._remember_purged(scope, key, gone[0], at)
        return gone

    def _remember_purged(self, scope: Scope, key: str, last: int, at: datetime) -> None:
        place, params = self._place(scope)
        p = self._db.param
        self._db.execute_sql(f"DELETE FROM secret_tombstone WHERE {place} AND key_name = {p}",  # type: ignore[no-untyped-call]
                             [*params, key])
        self._db.execute_sql(  # type: ignore[no-untyped-call]
            f"INSERT INTO secret_tombstone (owner_type, owner_id, key_name, last_version, purged_at) "
            f"VALUES ({p}, {p}, {p}, {p}, {p})",
            [scope.owner_type.value, scope.owner_id, key, last, self._time(at)])

    def last_purged_version(self, scope: Scope, key: str) -> int:
        place, params = self._place(scope)
        p = self._db.param
        row = self._db.execute_sql(  # type: ignore[no-untyped-call]
            f"SELECT last_version FROM secret_tombstone WHERE {place} AND key_name = {p}", [*params, key]).fetchone()
        return 0 if row is None else int(row[0])

    def versions(self, scope: Scope, key: str) -> list[SecretRecord]:
        place, params = self._place(scope)
        p = self._db.param
        return self._query(f"{self._select_versions} WHERE {place} AND key_name = {p} ORDER BY version DESC",
                           [*params, key], scope)

    def get_version(self, scope: Scope, key: str, version: int) -> SecretRecord | None:
        place, params = self._place(scope)
        p = self._db.param
        rows = self._query(f"{self._select_versions} WHERE {place} AND key_name = {p} AND version = {p}",
                           [*params, key, version], scope)
        return rows[0] if rows else None

    def save_version(self, record: SecretRecord, expected_checksum: str) -> bool:
        p = self._db.param
        by_name = dict(zip(SECRET_COLUMNS, self._values(record), strict=True))
        sql = (f"UPDATE secret_version SET {', '.join(f'{c} = {p}' for c in _RESEALED)} "
               f"WHERE secret_id = {p} AND version = {p} AND checksum = {p}")
        params = [by_name[c] for c in _RESEALED] + [record.id, record.version, expected_checksum]
        return bool(self._db.execute_sql(sql, params).rowcount)  # type: ignore[no-untyped-call]

    def rewrap_many(self, rows: list[tuple[SecretRecord, str]], kept: bool) -> int:
        # One statement per chunk, not one per row: rotate-master's speed is these writes (both dialects run
        # UPDATE ... FROM VALUES and name its columns column1, column2, ...).
        p = self._db.param
        table, id_column = ("secret_version", "secret_id") if kept else ("secret_kv", "id")
        sets = ", ".join(f"{c} = v.column{i + 4}" for i, c in enumerate(_REWRAPPED))
        one = f"({', '.join([p] * (3 + len(_REWRAPPED)))})"
        encode = {f.name: f.db_value for f in self._fields if f.name in _REWRAPPED}
        done = 0
        for start in range(0, len(rows), _REWRAP_CHUNK):
            chunk = rows[start:start + _REWRAP_CHUNK]
            params: list[Any] = []
            for record, expected in chunk:  # only the columns written are encoded: this loop is the hot one
                params += [record.id, record.version, expected, encode["dek_wrapped"](record.dek_wrapped),
                           encode["master_key_id"](record.master_key_id), encode["hmac"](record.hmac),
                           encode["checksum"](record.checksum)]
            sql = (f"UPDATE {table} SET {sets} FROM (VALUES {', '.join([one] * len(chunk))}) AS v "
                   f"WHERE {table}.{id_column} = v.column1 AND {table}.version = v.column2 "
                   f"AND {table}.checksum = v.column3")
            done += self._db.execute_sql(sql, params).rowcount  # type: ignore[no-untyped-call]
        return done

    def scan_versions(self, after: tuple[str, int] | None, limit: int,
                      not_on_master_key: str | None = None) -> list[SecretRecord]:
        p = self._db.param
        where, params = ["1 = 1"], []
        if after is not None:
            # A row value, not `a > x OR (a = x AND b > y)`: SQLite seeks the primary key with it, while the OR
            # form scanned the index from its start on every page (quadratic over a rotate-master).
            where.append(f"(secret_id, version) > ({p}, {p})")
            params += [after[0], after[1]]
        if not_on_master_key is not None:
            where.append(f"master_key_id <> {p}")
            params.append(not_on_master_key)
        return self._query(f"{self._select_versions} WHERE {' AND '.join(where)} "
                           f"ORDER BY secret_id, version LIMIT {p}", [*params, limit])
