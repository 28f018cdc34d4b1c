"""Fresh Postgres databases for tests, on the local server, with an RLS app role and a maintenance role.

Without a reachable server the tests skip with the reason, unless SPRONGUS_REQUIRE_POSTGRES=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from sprongus.adapters.peewee.db import open_postgres
from sprongus.adapters.peewee.migrate import upgrade

HOST = os.environ.get("SPRONGUS_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("SPRONGUS_TEST_PG_PORT", "5432"))
SUPERUSER = os.environ.get("SPRONGUS_TEST_PG_USER", "postgres")


def _server_error() -> str | None:
    try:
        psycopg.connect(host=HOST, port=PORT, user=SUPERUSER, dbname="postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def require_postgres() -> None:
    error = _server_error()
    if error is None:
        return
    reason = f"PostgreSQL not reachable at {HOST}:{PORT} as {SUPERUSER}: {error}"
    if os.environ.get("SPRONGUS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (SPRONGUS_REQUIRE_POSTGRES=1 forbids skipping)")
    pytest.skip(f"{reason}; set SPRONGUS_REQUIRE_POSTGRES=1 to make this a failure")


@dataclass
class PgDatabase:
    name: str
    app_role: str
    maintenance_role: str

    def url(self, role: str) -> str:
        return f"postgresql://{role}@{HOST}:{PORT}/{self.name}"

    @property
    def admin_url(self) -> str:
        return self.url(SUPERUSER)

    @property
    def app_url(self) -> str:
        return self.url(self.app_role)

    @property
    def maintenance_url(self) -> str:
        return self.url(self.maintenance_role)

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)


@pytest.fixture
def pg_empty() -> Iterator[PgDatabase]:
    """A new, empty database (no migrations run) plus login roles for the app and for maintenance."""
    require_postgres()
    name = f"sprongus_t_{uuid.uuid4().hex[:12]}"
    db = PgDatabase(name, f"{name}_app", f"{name}_maint")
    with DatabaseJanitor(user=SUPERUSER, host=HOST, port=PORT, dbname=name):
        try:
            yield db
        finally:
            _drop_roles(db)


@pytest.fixture
def pg_db(pg_empty: PgDatabase) -> PgDatabase:
    """A migrated database: the app role is a member of sprongus_app, maintenance of sprongus_maintenance."""
    migrate_and_create_roles(pg_empty)
    return pg_empty


def migrate_and_create_roles(db: PgDatabase) -> None:
    database = open_postgres(db.admin_url)
    try:
        upgrade(database)
    finally:
        database.close()
    with db.admin() as conn:
        conn.execute(f'CREATE ROLE "{db.app_role}" LOGIN NOBYPASSRLS IN ROLE sprongus_app')
        conn.execute(f'CREATE ROLE "{db.maintenance_role}" LOGIN IN ROLE sprongus_maintenance')


def _drop_roles(db: PgDatabase) -> None:
    with psycopg.connect(host=HOST, port=PORT, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        for role in (db.app_role, db.maintenance_role):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
