"""Runs the per-dialect migrations with playhouse.migrations, serialized across processes."""

from __future__ import annotations

from pathlib import Path

import peewee
from playhouse.migrations import Runner

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.dialect import dialect_of

HISTORY_TABLE = "schema_migration"


def migrations_dir(db: peewee.Database) -> Path:
    import sprongus_migrations

    return Path(next(iter(sprongus_migrations.__path__))) / dialect_of(db).name


def pending(db: peewee.Database) -> list[str]:
    runner = Runner(db, str(migrations_dir(db)), table_name=HISTORY_TABLE)
    return [m.name for m in runner.status() if not m.applied and m.path is not None]


def upgrade(db: peewee.Database) -> list[str]:
    """Apply every pending migration; returns their names (empty when the schema is current)."""
    with storage_errors():
        return _upgrade(db)


def _upgrade(db: peewee.Database) -> list[str]:
    with dialect_of(db).migration_lock(db):
        runner = Runner(db, str(migrations_dir(db)), table_name=HISTORY_TABLE)
        if not any(not m.applied and m.path is not None for m in runner.status()):
            return []  # current: no DDL at all, so a role without CREATE on the schema may check it
        return list(runner.up())
