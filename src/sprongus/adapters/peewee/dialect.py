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


class BeginWith(str):
    """Statements to send in one message with BEGIN (adapters/peewee/postgres.py ServerDatabase.begin: every
    Postgres database here is one); the rows of the last one are the database's `begun_rows`. A message with
    several statements takes no parameters: values in them are quoted by the driver."""


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

    def caller_read(self, db: peewee.Database, caller: Principal, statement: str, params: list[Any]) -> Any:
        """The first row of `statement`, read as `caller` in a transaction of its own (or None)."""
        with self.caller_transaction(db, caller, readonly=True):
            return db.execute_sql(statement, params).fetchone()  # type: ignore[no-untyped-call]

    def execute_later(self, db: peewee.Database, sql: str, params: list[Any]) -> None:
        """A statement whose answer nobody reads (Postgres sends it with the next one): here, at once."""
        db.execute_sql(sql, params)  # type: ignore[no-untyped-call]

    def serialize(self, db: peewee.Database, lock_id: int) -> None:
        """Inside a write transaction: SQLite's write lock already serializes it."""

    def serialized_read(self, db: peewee.Database, lock_id: int, read: str) -> list[Any]:
        """Inside a write transaction: `read`'s rows (SQLite's write lock already serializes it)."""
        return list(db.execute_sql(read).fetchall())  # type: ignore[no-untyped-call]

    @contextmanager
    def serialized_transaction(self, db: peewee.Database, lock_id: int, read: str) -> Iterator[list[Any]]:
        """A write transaction that holds `lock_id` from its start (SQLite's write lock is the lock), and the rows
        of `read`, run first in it."""
        with db.atomic("IMMEDIATE"):
            yield list(db.execute_sql(read).fetchall())  # type: ignore[no-untyped-call]

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
        if db.in_transaction():  # a savepoint: no BEGIN to ride along with
            enclosing = db.execute_sql(_CALLER_NOW).fetchone()  # type: ignore[no-untyped-call]
            with db.atomic():
                set_caller(db, caller)
                yield
                # RELEASE SAVEPOINT keeps what set_config did inside it: the rest of the enclosing transaction must
                # read as its own caller again, not as this one. Set back before the RELEASE, so no moment exists
                # where the enclosing transaction holds this caller's settings: if anything fails from here on, the
                # rollback to the savepoint undoes them, as it does for an error in the body.
                db.execute_sql(_SET_CALLER.format("%s", "%s", "%s", "%s"),  # type: ignore[no-untyped-call]
                               tuple(value or "" for value in enclosing))
            return
        # One round trip: BEGIN and the settings in one message (peewee hands atomic's argument to BEGIN).
        with db.atomic(BeginWith(caller_settings(db, caller))):
            yield

    def caller_read(self, db: peewee.Database, caller: Principal, statement: str, params: list[Any]) -> Any:
        """The first row of `statement`, read as `caller` (or None), in one message that is its own transaction:
        READ COMMITTED and READ ONLY, the settings row-level security reads, then the read. One round trip instead
        of three (BEGIN with the settings, the read, COMMIT). Only on an idle connection: inside a transaction,
        peewee's or one the server holds for another reason, the message would join it and its settings outlive
        the read; there, as before, the settings in a transaction (a savepoint in peewee's), then the read."""
        if db.in_transaction() or not db.idle():  # type: ignore[attr-defined]  # every Postgres db: a ServerDatabase
            with self.caller_transaction(db, caller, readonly=True):
                return db.execute_sql(statement, params).fetchone()  # type: ignore[no-untyped-call]
        rows = db.bound_rows_of_last(  # type: ignore[attr-defined]
            f"{_READ_ONLY}; {_SET_CALLER.format('%s', '%s', '%s', '%s')}; {statement}",
            (*_caller_values(caller), *params))
        return rows[0] if rows else None

    def execute_later(self, db: peewee.Database, sql: str, params: list[Any]) -> None:
        """A statement whose answer nobody reads, sent in one round trip with the statement or COMMIT after it
        (ServerDatabase.execute_later): its error comes from that one."""
        db.execute_later(sql, params)  # type: ignore[attr-defined]  # every Postgres database: a ServerDatabase

    def serialize(self, db: peewee.Database, lock_id: int) -> None:
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (lock_id,))  # type: ignore[no-untyped-call]

    def serialized_read(self, db: peewee.Database, lock_id: int, read: str) -> list[Any]:
        """Inside a transaction: take `lock_id`, then `read`'s rows, in one message (each statement its own READ
        COMMITTED snapshot: `read` sees what the lock waited for)."""
        rows: list[Any] = db.rows_of_last(  # type: ignore[attr-defined]  # every Postgres database: a ServerDatabase
            f"SELECT pg_advisory_xact_lock({int(lock_id)}); {read}")
        return rows

    @contextmanager
    def serialized_transaction(self, db: peewee.Database, lock_id: int, read: str) -> Iterator[list[Any]]:
        """The advisory lock taken, and `read` run after it, in the BEGIN's own message: one round trip for the three
        (READ COMMITTED gives each statement of the message its own snapshot: `read` sees what the lock waited for).
        Outside a transaction only: inside one, atomic() makes a savepoint and no BEGIN goes out."""
        if db.in_transaction():
            raise RuntimeError("serialized_transaction: not inside a transaction (use serialized_read)")
        with db.atomic(BeginWith(f"SELECT pg_advisory_xact_lock({int(lock_id)}); {read}")):
            yield db.begun_rows  # type: ignore[attr-defined]  # every Postgres database here is a ServerDatabase

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


# The first statement of a one-message read: what ServerDatabase.begin gives every transaction, and no writing.
_READ_ONLY = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY"
_SET_CALLER = ("SELECT set_config('sprongus.subject', {}, true), set_config('sprongus.projects', {}, true), "
               "set_config('sprongus.admin', {}, true), set_config('sprongus.key_prefix', {}, true)")
_CALLER_NOW = ("SELECT current_setting('sprongus.subject', true), current_setting('sprongus.projects', true), "
               "current_setting('sprongus.admin', true), current_setting('sprongus.key_prefix', true)")


def _caller_values(caller: Principal) -> tuple[str, str, str, str]:
    admin = "on" if caller.owner or Permission.ADMIN in caller.permissions else "off"
    # Row-level security's own check of user:<subject> rows: no subject for a caller without a personal scope.
    subject = caller.subject if caller.personal_scope else ""
    return subject, ",".join(sorted(caller.projects)), admin, caller.key_prefix


def set_caller(db: peewee.Database, caller: Principal) -> None:
    """Transaction-local settings read by the RLS policies (never a plain SET: it would outlive the transaction)."""
    db.execute_sql(_SET_CALLER.format("%s", "%s", "%s", "%s"), _caller_values(caller))  # type: ignore[no-untyped-call]


def caller_settings(db: peewee.Database, caller: Principal) -> str:
    """set_caller's statement with its values quoted by the driver (psycopg's Literal: the server's own quoting
    rules, for the connection's encoding), to send in one message with BEGIN: a message with several statements
    takes no parameters.

    Kept per values and quoting rules: composing it through psycopg's sql module cost more than anything else of
    ours in a masked read on Postgres, and a token's caller is the same request after request."""
    from psycopg import sql

    conn = db.connection()  # type: ignore[no-untyped-call]
    values = _caller_values(caller)
    key = (*values, conn.info.encoding, conn.info.parameter_status("standard_conforming_strings"))
    text = _QUOTED_SETTINGS.get(key)
    if text is None:
        text = sql.SQL(_SET_CALLER).format(*(sql.Literal(v) for v in values)).as_string(conn)
        if len(_QUOTED_SETTINGS) >= QUOTED_SETTINGS_KEPT:
            _QUOTED_SETTINGS.clear()  # many callers: start over rather than grow
        _QUOTED_SETTINGS[key] = text
    return text


QUOTED_SETTINGS_KEPT = 4096
_QUOTED_SETTINGS: dict[tuple[object, ...], str] = {}
