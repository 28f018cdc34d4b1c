"""Runs the per-dialect migrations with playhouse.migrations, serialized across processes.

playhouse.migrations (with playhouse.migrate, its schema migrator, and the modules those load) is imported only
when a migration may be pending: a vault whose schema is current is recognized by `is_current` with one plain
SELECT, which every local command runs on start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import peewee

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.dialect import dialect_of

if TYPE_CHECKING:
    from playhouse.migrations import Runner

HISTORY_TABLE = "schema_migration"


def migrations_dir(db: peewee.Database) -> Path:
    import sprongus_migrations

    return Path(next(iter(sprongus_migrations.__path__))) / dialect_of(db).name


def _runner(db: peewee.Database) -> Runner:
    from playhouse.migrations import Runner

    return Runner(db, str(migrations_dir(db)), table_name=HISTORY_TABLE)


def pending(db: peewee.Database) -> list[str]:
    return [m.name for m in _runner(db).status() if not m.applied and m.path is not None]


def is_current(db: peewee.Database) -> bool:
    """True when every migration file is recorded as applied (what `pending` would find empty), read in one short
    read transaction, without playhouse. False when that cannot be told (a new file without the history table, any
    failure): the caller then takes `upgrade`, which checks again under the migration lock and reports a real
    failure as before. A reader can trust a True: an upgrade records its migrations when it commits them."""
    try:
        files = {name[:-3] for name in os.listdir(migrations_dir(db))
                 if "0" <= name[:1] <= "9" and name.endswith(".py")}  # playhouse's glob: [0-9]*.py
        query = f"SELECT name FROM {HISTORY_TABLE}"  # noqa: S608 - a constant
        with db.atomic():  # a transaction: a connection that fell back to exclusive locking is released at its end
            applied = {row[0] for row in db.execute_sql(query)}  # type: ignore[no-untyped-call]
    except Exception:  # undecided: the locked path decides, and reports a failure
        return False
    return files <= applied


def upgrade(db: peewee.Database) -> list[str]:
    """Apply every pending migration; returns their names (empty when the schema is current)."""
    with storage_errors():
        return _upgrade(db)


def _upgrade(db: peewee.Database) -> list[str]:
    with dialect_of(db).migration_lock(db):
        runner = _runner(db)
        if not any(not m.applied and m.path is not None for m in runner.status()):
            return []  # current: no DDL at all, so a role without CREATE on the schema may check it
        return list(runner.up())
