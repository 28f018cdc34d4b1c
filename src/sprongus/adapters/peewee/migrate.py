"""Runs the per-dialect migrations with playhouse.migrations, serialized across processes."""

from __future__ import annotations

from pathlib import Path

import peewee
from playhouse.migrations import Runner

from sprongus.adapters.peewee.db import is_postgres

# Any constant works; it only has to be the same in every process that migrates this database.
MIGRATION_LOCK_ID = 0x5350524F  # "SPRO"
HISTORY_TABLE = "schema_migration"


def migrations_dir(db: peewee.Database) -> Path:
    import sprongus_migrations

    return Path(next(iter(sprongus_migrations.__path__))) / ("postgres" if is_postgres(db) else "sqlite")


def pending(db: peewee.Database) -> list[str]:
    runner = Runner(db, str(migrations_dir(db)), table_name=HISTORY_TABLE)
    return [m.name for m in runner.status() if not m.applied and m.path is not None]


def upgrade(db: peewee.Database) -> list[str]:
    """Apply every pending migration; returns their names (empty when the schema is current)."""
    from sprongus.adapters.peewee.repository import storage_errors

    with storage_errors():
        return _upgrade(db)


def _upgrade(db: peewee.Database) -> list[str]:
    directory = str(migrations_dir(db))
    if is_postgres(db):
        with db.connection_context():
            db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))  # type: ignore[no-untyped-call]
            try:
                runner = Runner(db, directory, table_name=HISTORY_TABLE)
                if not any(not m.applied and m.path is not None for m in runner.status()):
                    return []  # current: no DDL at all, so a role without CREATE on the schema may check it
                return list(runner.up())
            finally:
                db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))  # type: ignore[no-untyped-call]
    # SQLite: one IMMEDIATE transaction holds the write lock for the whole upgrade; DDL is transactional.
    with db.atomic("IMMEDIATE"):
        return list(Runner(db, directory, table_name=HISTORY_TABLE).up())
