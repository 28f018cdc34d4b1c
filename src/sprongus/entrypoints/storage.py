"""Opens the vault database for the container: SQLite upgrades itself on first use, Postgres must be current.

Peewee and the Postgres driver are imported here, lazily, so the in-memory profile never pays for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sprongus.domain.errors import ConfigError
from sprongus.ports.storage import Storage

if TYPE_CHECKING:
    from sprongus.adapters.peewee.models import BoundModels


def open_embedded_vault(url: str) -> BoundModels:
    from sprongus.adapters.peewee.db import open_sqlite, sqlite_path
    from sprongus.adapters.peewee.migrate import upgrade
    from sprongus.adapters.peewee.models import BoundModels

    db = open_sqlite(sqlite_path(url))
    upgrade(db)
    return BoundModels(db)


def open_server_vault(url: str) -> BoundModels:
    from sprongus.adapters.peewee.db import open_postgres
    from sprongus.adapters.peewee.migrate import pending
    from sprongus.adapters.peewee.models import BoundModels

    db = open_postgres(url)
    try:
        missing = pending(db)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"SPRONGUS_DATABASE_URL: cannot use the Postgres database: {reason}") from exc
    finally:
        db.close()
    if missing:
        raise ConfigError(f"the database schema is not current ({', '.join(missing)} pending); "
                          "run `sprongus db upgrade` as a maintenance login")
    return BoundModels(db)


def embedded_storage(url: str) -> Storage:
    from sprongus.adapters.peewee.storage import peewee_storage

    return peewee_storage(open_embedded_vault(url))


def server_storage(url: str) -> Storage:
    from sprongus.adapters.peewee.storage import peewee_storage

    return peewee_storage(open_server_vault(url))


def memory_storage() -> Storage:
    from sprongus.adapters.memory_storage import memory_storage as build

    return build()
