"""Schema migrations on both engines: from empty, idempotent, safe when run concurrently, rules in the database."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import peewee
import psycopg
import pytest

from sprongus.adapters.peewee.db import open_postgres, open_sqlite
from sprongus.adapters.peewee.migrate import is_current, pending, upgrade
from tests.pg import PgDatabase

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def migration_names(dialect: str) -> list[str]:
    return sorted(p.stem for p in (MIGRATIONS_DIR / dialect).glob("[0-9][0-9][0-9][0-9]_*.py"))


MIGRATIONS = migration_names("sqlite")
TABLES = {"secret_kv", "audit_event", "schema_migration"}  # the storage issue's; later migrations add others

ROW_COLUMNS = ("id, owner_type, owner_id, key_name, ciphertext, dek_wrapped, nonce, alg, master_key_id, version, "
               "created_at, updated_at, meta, checksum")


def sqlite_row(id: str, owner_type: str, owner_id: str | None, key: str) -> tuple[Any, ...]:
    return (id, owner_type, owner_id, key, "Y3Q=", "ZGVr", "bm9uY2U=", "AES-256-GCM", "env:k1", 1,
            "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", "{}", "sha256:x")


def pg_row(id: str, owner_type: str, owner_id: str | None, key: str) -> tuple[Any, ...]:
    return (id, owner_type, owner_id, key, b"ct", b"dek", b"nonce", "AES-256-GCM", "env:k1", 1,
            "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", "{}", "sha256:x")


SQLITE_INSERT = f"INSERT INTO secret_kv ({ROW_COLUMNS}) VALUES ({', '.join('?' * 14)})"
PG_INSERT = f"INSERT INTO secret_kv ({ROW_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})"


def migrated_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "vault.db"
    db = open_sqlite(path)
    try:
        upgrade(db)
    finally:
        db.close()
    return path


def migrated_pg(pg: PgDatabase) -> None:
    db = open_postgres(pg.admin_url)
    try:
        upgrade(db)
    finally:
        db.close()


def test_both_dialects_have_the_same_numbered_migrations() -> None:
    assert MIGRATIONS[0] == "0001_initial"
    assert MIGRATIONS[:8] == ["0001_initial", "0002_api_tokens", "0003_vault_keys", "0004_identity", "0005_versions",
                              "0006_audit_checkpoints", "0007_exchanged_subjects", "0008_audit_seq_guard"]
    assert migration_names("postgres") == MIGRATIONS
    assert [int(name[:4]) for name in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


# --- SQLite -------------------------------------------------------------------------------------------------------

def test_sqlite_upgrade_from_empty_then_rerun_is_a_no_op(tmp_path: Path) -> None:
    db = open_sqlite(tmp_path / "vault.db")
    try:
        assert pending(db) == MIGRATIONS
        assert upgrade(db) == MIGRATIONS
        assert pending(db) == []
        assert upgrade(db) == []
        tables = {name for (name,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables >= TABLES
        assert [n for (n,) in db.execute_sql("SELECT name FROM schema_migration")] == MIGRATIONS
        triggers = {n for (n,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert triggers >= {"audit_event_no_update", "audit_event_no_delete"}
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    assert (tmp_path / "vault.db").stat().st_mode & 0o777 == 0o600


def test_sqlite_start_up_check_agrees_with_pending(tmp_path: Path) -> None:
    """`is_current`, the start-up check without playhouse: False until nothing is pending, and False when it
    cannot tell (no history table yet), so the caller takes the locked upgrade."""
    db = open_sqlite(tmp_path / "vault.db")
    try:
        assert not is_current(db)
        upgrade(db)
        assert is_current(db)
        db.execute_sql("DELETE FROM schema_migration WHERE name = ?", (MIGRATIONS[-1],))
        assert pending(db) == [MIGRATIONS[-1]]
        assert not is_current(db)
    finally:
        db.close()


def test_embedded_vault_files_are_private_and_upgrade_themselves(tmp_path: Path) -> None:
    from sprongus.domain.scope import Scope
    from sprongus.domain.values import SecretValue
    from tests.integration.stack import new_key, owner, stack

    home = tmp_path / "home" / "nested"
    vault = stack(f"sqlite:///{home / 'vault.db'}", new_key())  # no `db upgrade`: first use migrates
    try:
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v"))
        assert pending(vault.db) == []
        for name in ("vault.db", "vault.db-wal", "vault.db-shm"):
            assert (home / name).stat().st_mode & 0o777 == 0o600, name
        assert home.stat().st_mode & 0o777 == 0o700
        pragmas = {p: vault.db.execute_sql(f"PRAGMA {p}").fetchone()[0]
                   for p in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")}
        assert pragmas == {"journal_mode": "wal", "busy_timeout": 30_000, "synchronous": 1, "foreign_keys": 1}
    finally:
        vault.close()


def test_sqlite_concurrent_first_opens_and_upgrades_apply_each_migration_once(tmp_path: Path) -> None:
    """Several first uses of a new vault at once (say, two CLI commands on a fresh machine): no "database is
    locked", one migration run. The race is narrow, so it is tried on many new files."""
    for trial in range(25):
        path = tmp_path / f"vault{trial}.db"
        results: list[list[str]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def run(path: Path = path, results: list[list[str]] = results, errors: list[BaseException] = errors,
                barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                db = open_sqlite(path)
                try:
                    results.append(upgrade(db))
                finally:
                    db.close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"trial {trial}: {errors}"
        assert sorted(results) == [[], [], [], MIGRATIONS]
        with closing(sqlite3.connect(path)) as conn:
            assert [n for (n,) in conn.execute("SELECT name FROM schema_migration")] == MIGRATIONS
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_place_is_unique_including_system_rows(tmp_path: Path) -> None:
    conn = sqlite3.connect(migrated_sqlite(tmp_path))
    try:
        conn.execute(SQLITE_INSERT, sqlite_row("a", "system", None, "db.password"))
        conn.execute(SQLITE_INSERT, sqlite_row("b", "user", "alice", "db.password"))
        conn.execute(SQLITE_INSERT, sqlite_row("c", "project", "alice", "db.password"))  # another scope: fine
        conn.execute(SQLITE_INSERT, sqlite_row("d", "system", None, "DB.password"))  # key names are case-sensitive
        for row in (sqlite_row("e", "system", None, "db.password"), sqlite_row("f", "user", "alice", "db.password")):
            with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
                conn.execute(SQLITE_INSERT, row)
        assert conn.execute("SELECT count(*) FROM secret_kv").fetchone() == (4,)
    finally:
        conn.close()


@pytest.mark.parametrize(("owner_type", "owner_id"), [("system", "alice"), ("user", None), ("project", None),
                                                      ("team", "alice"), ("System", None)])
def test_sqlite_owner_type_and_owner_id_must_agree(tmp_path: Path, owner_type: str, owner_id: str | None) -> None:
    conn = sqlite3.connect(migrated_sqlite(tmp_path))
    try:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(SQLITE_INSERT, sqlite_row("x", owner_type, owner_id, "k"))
    finally:
        conn.close()


# --- Postgres -----------------------------------------------------------------------------------------------------

def pg_state(pg: PgDatabase) -> dict[str, Any]:
    with pg.admin() as conn:
        tables = conn.execute("SELECT relname, count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = "
                              "'public'::regnamespace GROUP BY relname").fetchall()
        history = conn.execute("SELECT name FROM schema_migration ORDER BY id").fetchall()
        policies = conn.execute("SELECT policyname FROM pg_policies WHERE tablename = 'secret_kv'").fetchall()
        roles = conn.execute("SELECT rolname, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles "
                             "WHERE rolname IN ('sprongus_app', 'sprongus_maintenance') ORDER BY 1").fetchall()
    return {"tables": dict(tables), "history": [n for (n,) in history], "policies": [p for (p,) in policies],
            "roles": roles}


def assert_current(pg: PgDatabase) -> None:
    state = pg_state(pg)
    assert set(state["tables"]) >= TABLES and set(state["tables"].values()) == {1}
    assert state["history"] == MIGRATIONS
    assert state["policies"] == ["secret_kv_tenant"]
    assert state["roles"] == [("sprongus_app", False, False, False), ("sprongus_maintenance", False, False, False)]


def test_postgres_upgrade_from_empty_then_rerun_is_a_no_op(pg_empty: PgDatabase) -> None:
    db = open_postgres(pg_empty.admin_url)
    try:
        assert pending(db) == MIGRATIONS
        assert upgrade(db) == MIGRATIONS
        assert pending(db) == []
        assert upgrade(db) == []
    finally:
        db.close()
    assert_current(pg_empty)


@pytest.mark.parametrize("runners", [2, 4])
def test_postgres_concurrent_upgrades_end_with_one_schema(pg_empty: PgDatabase, runners: int) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(runners)

    def run() -> None:
        db = open_postgres(pg_empty.admin_url)
        try:
            db.connect()
            barrier.wait()
            results.append(upgrade(db))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(runners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [[]] * (runners - 1) + [MIGRATIONS]
    assert_current(pg_empty)


def test_postgres_place_is_unique_including_system_rows(pg_empty: PgDatabase) -> None:
    migrated_pg(pg_empty)
    with pg_empty.admin() as conn:
        conn.execute(PG_INSERT, pg_row("a", "system", None, "db.password"))
        conn.execute(PG_INSERT, pg_row("b", "user", "alice", "db.password"))
        conn.execute(PG_INSERT, pg_row("c", "project", "alice", "db.password"))
        conn.execute(PG_INSERT, pg_row("d", "system", None, "DB.password"))
        for row in (pg_row("e", "system", None, "db.password"), pg_row("f", "user", "alice", "db.password")):
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(PG_INSERT, row)
        assert conn.execute("SELECT count(*) FROM secret_kv").fetchone() == (4,)


@pytest.mark.parametrize(("owner_type", "owner_id"), [("system", "alice"), ("user", None), ("project", None),
                                                      ("team", "alice"), ("System", None)])
def test_postgres_owner_type_and_owner_id_must_agree(pg_empty: PgDatabase, owner_type: str,
                                                     owner_id: str | None) -> None:
    migrated_pg(pg_empty)
    with pg_empty.admin() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(PG_INSERT, pg_row("x", owner_type, owner_id, "k"))


def test_postgres_server_vault_refuses_a_database_that_is_not_current(pg_empty: PgDatabase) -> None:
    from sprongus.domain.errors import ConfigError
    from sprongus.entrypoints.storage import open_server_vault

    with pytest.raises(ConfigError, match=r"no sprongus schema yet \(0001_initial.* pending\).* as a superuser"):
        open_server_vault(pg_empty.admin_url)
    migrated_pg(pg_empty)
    models = open_server_vault(pg_empty.admin_url)
    assert isinstance(models.db, peewee.PostgresqlDatabase)
    models.db.close()


def test_postgres_roles_without_ddl_rights_can_check_a_current_schema_but_not_migrate(pg_db: PgDatabase) -> None:
    """`sprongus db upgrade` as the app or maintenance role reports a current schema; it cannot build one."""
    from sprongus.domain.errors import StorageError

    for url in (pg_db.maintenance_url, pg_db.app_url):
        db = open_postgres(url)
        try:
            assert upgrade(db) == []
        finally:
            db.close()
    with pg_db.admin() as conn:
        conn.execute(f'CREATE DATABASE "{pg_db.name}_bare"')
    try:
        db = open_postgres(PgDatabase(f"{pg_db.name}_bare", pg_db.app_role, pg_db.maintenance_role).app_url)
        try:
            with pytest.raises(StorageError, match="permission denied"):
                upgrade(db)
        finally:
            db.close()
    finally:
        with pg_db.admin() as conn:
            conn.execute(f'DROP DATABASE "{pg_db.name}_bare" WITH (FORCE)')


def test_after_the_bootstrap_the_maintenance_role_applies_later_migrations(pg_empty: PgDatabase) -> None:
    from playhouse.migrations import Runner

    from sprongus.adapters.peewee.migrate import HISTORY_TABLE, migrations_dir

    admin = open_postgres(pg_empty.admin_url)
    try:  # the bootstrap: only the first migration, as the superuser (it creates the group roles)
        Runner(admin, str(migrations_dir(admin)), table_name=HISTORY_TABLE).up(target="0001_initial")
    finally:
        admin.close()
    with pg_empty.admin() as conn:
        conn.execute(f'CREATE ROLE "{pg_empty.maintenance_role}" LOGIN IN ROLE sprongus_maintenance')
    maintenance = open_postgres(pg_empty.maintenance_url)
    try:
        assert upgrade(maintenance) == ["0002_api_tokens", "0003_vault_keys", "0004_identity", "0005_versions",
                                        "0006_audit_checkpoints", "0007_exchanged_subjects", "0008_audit_seq_guard"]
        assert upgrade(maintenance) == []
    finally:
        maintenance.close()
    with pg_empty.admin() as conn:
        owners = dict(conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall())
    assert set(owners.values()) == {"sprongus_maintenance"}, owners
