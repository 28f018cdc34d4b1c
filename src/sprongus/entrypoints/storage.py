"""Opens the vault database for the container: SQLite upgrades itself on first use, Postgres must be current.

Peewee and the Postgres driver are imported here, lazily, so the in-memory profile never pays for them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sprongus.domain.errors import ConfigError
from sprongus.ports.storage import Storage

if TYPE_CHECKING:
    from sprongus.adapters.peewee.models import BoundModels

log = logging.getLogger("sprongus")


def open_embedded_vault(url: str) -> BoundModels:
    from sprongus.adapters.peewee.db import open_sqlite, sqlite_path
    from sprongus.adapters.peewee.migrate import is_current, upgrade
    from sprongus.adapters.peewee.models import BoundModels

    db = open_sqlite(sqlite_path(url))
    if not is_current(db):  # the usual case costs one SELECT; a new or older vault takes the migration lock
        upgrade(db)
    return BoundModels(db)


def open_server_vault(url: str, statement_timeout: float = 5.0, connect_timeout: float = 5.0) -> BoundModels:
    """Timeouts in seconds (SPRONGUS_DB_STATEMENT_TIMEOUT, SPRONGUS_DB_CONNECT_TIMEOUT): a database that stops
    answering costs a request a few seconds and a 503, never a hung worker."""
    from sprongus.adapters.peewee.db import open_postgres, outage_of, storage_failure
    from sprongus.adapters.peewee.migrate import pending
    from sprongus.adapters.peewee.models import BoundModels

    db = open_postgres(url, statement_timeout, connect_timeout)
    try:
        missing = pending(db)
    except Exception as exc:
        if outage_of(exc):
            # Down or unreachable: start anyway, so a gunicorn worker (re)started during an outage serves 503s and
            # recovers with the database instead of stopping the server. Each request meets the outage itself.
            logging.getLogger("sprongus").warning("database unavailable at start-up (%s); schema not checked",
                                                  storage_failure(exc))
            return BoundModels(db)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"SPRONGUS_DATABASE_URL: cannot use the Postgres database: {reason}") from exc
    finally:
        db.close()
    if missing and missing[0].startswith("0001_"):
        # A new database: the first migration creates the sprongus roles and grants on the schema, which a
        # maintenance login cannot do yet (it failed with "permission denied for schema public").
        raise ConfigError(f"the database has no sprongus schema yet ({', '.join(missing)} pending); run the first "
                          "`sprongus db upgrade` as a superuser (or the database owner), later ones as a "
                          "maintenance login")
    if missing:
        raise ConfigError(f"the database schema is not current ({', '.join(missing)} pending); "
                          "run `sprongus db upgrade` as a maintenance login")
    return BoundModels(db)


def embedded_storage(url: str) -> Storage:
    from sprongus.adapters.peewee.storage import peewee_storage

    return peewee_storage(open_embedded_vault(url))


def server_storage(url: str, statement_timeout: float = 5.0, connect_timeout: float = 5.0) -> Storage:
    from sprongus.adapters.peewee.storage import peewee_storage

    return peewee_storage(open_server_vault(url, statement_timeout, connect_timeout))


def memory_storage() -> Storage:
    from sprongus.adapters.memory_storage import memory_storage as build

    return build()


def serve_many_writers(storage: Storage) -> None:
    """The API server's SQLite connections checkpoint the WAL less often (SERVER_WAL_PAGES, in
    adapters/peewee/sqlite_pragmas.py): a server's stream of reveals and writes paid a checkpoint every few
    requests."""
    if storage.database is None:
        return
    from sprongus.adapters.peewee.db import VaultSqliteDatabase
    from sprongus.adapters.peewee.sqlite_pragmas import SERVER_WAL_PAGES

    if isinstance(storage.database.db, VaultSqliteDatabase):
        storage.database.db.checkpoint_every(SERVER_WAL_PAGES)


def release_connection(storage: Storage) -> None:
    """After each API request: its pooled database connection goes back to the pool, so a connection the server
    closed meanwhile is discarded on its next checkout instead of failing every later request of its thread."""
    if storage.database is None:
        return
    from sprongus.adapters.peewee.db import release_connection as release

    try:
        release(storage.database.db)
    except Exception as exc:  # the answer is made already: a connection the pool cannot take back is its loss only
        log.warning("could not return a database connection to the pool: %s", type(exc).__name__)


def close_database(storage: Storage) -> None:
    """The end of a CLI command: the connections are closed (SQLite checkpoints the WAL as the last connection
    closes; a Postgres pool says goodbye to the server for each of its connections); nothing in memory."""
    if storage.database is None:
        return
    db = storage.database.db
    close_all = getattr(db, "close_all", None)  # playhouse's pool: the pooled connections too
    if close_all is not None:
        close_all()
    else:
        db.close()


def ping_database(storage: Storage) -> None:
    """One round trip to the database (nothing for in-memory storage); StorageError when it does not answer."""
    if storage.database is not None:
        from sprongus.adapters.peewee.db import ping

        ping(storage.database.db)
