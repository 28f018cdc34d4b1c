"""Fresh Postgres databases for tests, on the local server, with an RLS app role and a maintenance role.

Without a reachable server the tests skip with the reason, unless SPRONGUS_REQUIRE_POSTGRES=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def fresh_database(migrated: bool) -> Iterator[PgDatabase]:
    """A new database (dropped afterwards), migrated with login roles for the app and maintenance if asked."""
    require_postgres()
    name = f"sprongus_t_{uuid.uuid4().hex[:12]}"
    db = PgDatabase(name, f"{name}_app", f"{name}_maint")
    with DatabaseJanitor(user=SUPERUSER, host=HOST, port=PORT, dbname=name):
        try:
            if migrated:
                migrate_and_create_roles(db)
            yield db
        finally:
            _drop_roles(db)


@pytest.fixture
def pg_empty() -> Iterator[PgDatabase]:
    """A new, empty database (no migrations run)."""
    with fresh_database(migrated=False) as db:
        yield db


@pytest.fixture
def pg_db() -> Iterator[PgDatabase]:
    """A migrated database: the app role is a member of sprongus_app, maintenance of sprongus_maintenance."""
    with fresh_database(migrated=True) as db:
        yield db


def migrate_and_create_roles(db: PgDatabase) -> None:
    """Migrate as the superuser; the roles are created only if absent (pg_empty tests may have made them)."""
    database = open_postgres(db.admin_url)
    try:
        upgrade(database)
    finally:
        database.close()
    with db.admin() as conn:
        for role, group in ((db.app_role, "sprongus_app"), (db.maintenance_role, "sprongus_maintenance")):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                conn.execute(f'CREATE ROLE "{role}" LOGIN NOBYPASSRLS IN ROLE {group}')


def _drop_roles(db: PgDatabase) -> None:
    with psycopg.connect(host=HOST, port=PORT, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        for role in (db.app_role, db.maintenance_role):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
