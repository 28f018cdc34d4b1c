"""Everything that differs between SQLite and Postgres, in one place: the other peewee modules ask the dialect.

SQLite serializes writers with IMMEDIATE transactions (one writer at a time, readers never blocked); Postgres
serializes what must be serial with row locks and advisory locks, and tells row-level security who is calling.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import peewee

from sprongus.domain.principal import Permission, Principal

# Any constant works; it only has to be the same in every process that migrates this database.
MIGRATION_LOCK_ID = 0x5350524F  # "SPRO"


class SqliteDialect:
    name = "sqlite"  # the migrations directory
    true = "1"
    locks_rows = False  # the IMMEDIATE transaction already holds the only write lock

    def write_transaction(self, db: peewee.Database) -> AbstractContextManager[Any]:
        """Takes the write lock up front: a deferred read-then-write transaction can fail with "database is
        locked" without waiting, when another writer got there first."""
        return db.atomic("IMMEDIATE")

    def caller_transaction(self, db: peewee.Database, caller: Principal, readonly: bool) -> AbstractContextManager[Any]:
        return db.atomic("DEFERRED" if readonly else "IMMEDIATE")

    def serialize(self, db: peewee.Database, lock_id: int) -> None:
        """Inside a write transaction: SQLite's write lock already serializes it."""

    @contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        with db.atomic("IMMEDIATE"):  # DDL is transactional: the whole upgrade or none of it
            yield

    def bytes_value(self, value: bytes) -> Any:
        return base64.b64encode(value).decode("ascii")

    def json_value(self, value: Any) -> Any:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def time_value(self, value: datetime) -> Any:
        return value.isoformat()

    def data_keys_sql(self, db: peewee.Database) -> str:
        """A few stored data keys of any tenant (of one master key, or any when NULL): the local owner sees every
        row. Parameters: limit, master key id."""
        p = db.param
        return ("SELECT owner_type, owner_id, key_name, version, dek_wrapped, master_key_id FROM secret_kv "  # noqa: S608
                f"WHERE master_key_id = COALESCE({p}, master_key_id) ORDER BY updated_at DESC LIMIT {p}")


class PostgresDialect:
    name = "postgres"
    true = "TRUE"
    locks_rows = True  # writers SELECT ... FOR UPDATE the row they compare-and-set

    def write_transaction(self, db: peewee.Database) -> AbstractContextManager[Any]:
        return db.atomic()

    @contextmanager
    def caller_transaction(self, db: peewee.Database, caller: Principal, readonly: bool) -> Iterator[None]:
        with db.atomic():
            set_caller(db, caller)
            yield

    def serialize(self, db: peewee.Database, lock_id: int) -> None:
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (lock_id,))  # type: ignore[no-untyped-call]

    @contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        with db.connection_context():
            db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))  # type: ignore[no-untyped-call]
            try:
                yield
            finally:
                db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))  # type: ignore[no-untyped-call]

    def bytes_value(self, value: bytes) -> Any:
        return bytes(value)

    def json_value(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def time_value(self, value: datetime) -> Any:
        return value

    def data_keys_sql(self, db: peewee.Database) -> str:
        """Through a SECURITY DEFINER function: row-level security would show the app role no row here."""
        return f"SELECT * FROM sprongus_vault_data_keys({db.param}, {db.param})"  # noqa: S608 - placeholders


Dialect = SqliteDialect | PostgresDialect
_SQLITE, _POSTGRES = SqliteDialect(), PostgresDialect()


def dialect_of(db: peewee.Database) -> Dialect:
    return _POSTGRES if isinstance(db, peewee.PostgresqlDatabase) else _SQLITE


def set_caller(db: peewee.Database, caller: Principal) -> None:
    """Transaction-local settings read by the RLS policies (never a plain SET: it would outlive the transaction)."""
    admin = "on" if caller.owner or Permission.ADMIN in caller.permissions else "off"
    db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT set_config('sprongus.subject', %s, true), set_config('sprongus.projects', %s, true), "
        "set_config('sprongus.admin', %s, true), set_config('sprongus.key_prefix', %s, true)",
        (caller.subject, ",".join(sorted(caller.projects)), admin, caller.key_prefix))
