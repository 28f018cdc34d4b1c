"""`sprongus db upgrade` of a release-1 vault (migrations 0001-0003 only), run as a real process, on SQLite and on
Postgres (as the maintenance login, the release-1 schema having been made by a superuser); and `db upgrade`
running purge-expired afterwards.

Release-1 rows are made by sealing with today's code in a scratch vault of the same dialect and copying the
current rows, restricted to the columns release 1's secret_kv had, with the vault's key records, into the
release-1 vault: byte for byte what release 1 stored (same envelope, same AAD, same checksum).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playhouse.migrations import Runner

from sprongus.adapters.peewee.db import open_postgres, open_sqlite
from sprongus.adapters.peewee.migrate import HISTORY_TABLE, migrations_dir
from sprongus.domain.meta import MetaValue
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.service.history import HistoryOps
from tests.integration.stack import ROOT, Stack, clean_environ, environment, new_key, owner, sqlite_url, stack
from tests.pg import PgDatabase

RELEASE_1 = ["0001_initial", "0002_api_tokens", "0003_vault_keys"]
# (scope, key) -> the values written in turn, so the current version is len(values) (several above 1).
SECRETS: dict[tuple[Scope, str], list[str]] = {
    (Scope.system(), "smtp.password"): ["s1", "s2", "s3"],
    (Scope.project("web"), "db.url"): ["postgres://a", "postgres://b"],
    (Scope.user("alice"), "notion.api_token"): ["n1", "n2", "n3", "n4", "n5"],
    (Scope.user("alice"), "single"): ["only"],
}
META: dict[str, MetaValue] = {"owner": "team-a", "n": 3}


def _release1_runner(db: Any, tmp: Path) -> Runner:
    """playhouse's Runner over a directory holding copies of release 1's migrations only."""
    source = migrations_dir(db)
    target = tmp / f"release1-{source.name}"
    target.mkdir()
    for name in RELEASE_1:
        shutil.copy(source / f"{name}.py", target / f"{name}.py")
    return Runner(db, str(target), table_name=HISTORY_TABLE)


def _write_release2_secrets(vault: Stack) -> None:
    for (scope, key), values in SECRETS.items():
        for value in values:
            vault.secrets.set(owner(), scope, key, SecretValue(value), META)


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("sprongus")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sprongus.entrypoints.cli"]
    full_env = {**clean_environ(), **env, "HOME": env.get("HOME", os.environ.get("HOME", "/tmp"))}
    return subprocess.run([*command, *args], env=full_env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _history(vault: Stack) -> HistoryOps:
    ops: HistoryOps = vault.container.history_ops()
    return ops


def _assert_upgraded(vault: Stack, applied: str) -> None:
    later = sorted(p.stem for p in (ROOT / "migrations" / "sqlite").glob("[0-9][0-9][0-9][0-9]_*.py"))[3:]
    assert later[:3] == ["0004_identity", "0005_versions", "0006_audit_checkpoints"]
    assert applied == f"applied: {', '.join(later)}\n"
    for (scope, key), values in SECRETS.items():
        view = vault.secrets.get(owner(), scope, key, reveal=True)
        assert view.value is not None and view.value.reveal() == values[-1]
        assert (view.version, dict(view.meta)) == (len(values), META)
        history = _history(vault).history(owner(), scope, key)
        assert [(i.version, i.current, i.created_by) for i in history.items] == [(len(values), True, None)]
        assert history.deleted_at is None
        assert key in [v.key for v in vault.secrets.list(owner(), scope).items]
        assert vault.secrets.list(owner(), scope, deleted=True).items == []
    report = vault.rotation.verify(owner())
    assert report.ok and report.checked == len(SECRETS), report.failures
    for (scope, key), values in SECRETS.items():
        n = len(values)
        result = vault.secrets.set(owner(), scope, key, SecretValue(f"after-{n}"))
        assert (result.created, result.view.version) == (False, n + 1)
        history = _history(vault).history(owner(), scope, key)
        assert [(i.version, i.current, i.created_by) for i in history.items] == [(n + 1, True, "owner"),
                                                                                 (n, False, None)]
        old = vault.secrets.get(owner(), scope, key, reveal=True, version=n)
        assert old.value is not None and old.value.reveal() == values[-1]
        rolled = _history(vault).rollback(owner(), scope, key, n)
        assert rolled.view.version == n + 2
    assert vault.audit.verify_chain().problems == []


# --- SQLite -------------------------------------------------------------------------------------------------------

def _sqlite_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _copy_sqlite(source: Path, target: Path, table: str, where: str = "1 = 1") -> int:
    with closing(sqlite3.connect(target)) as dst, closing(sqlite3.connect(source)) as src:
        columns = _sqlite_columns(dst, table)  # release 1's columns only
        rows = src.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}").fetchall()
        with dst:
            dst.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                            f"VALUES ({', '.join('?' * len(columns))})", rows)
        return len(rows)


def test_sqlite_release1_vault_upgrades_keeping_every_secret_and_its_number(tmp_path: Path) -> None:
    key = new_key()
    scratch_dir, vault_dir = tmp_path / "scratch", tmp_path / "release1"
    scratch_dir.mkdir()
    vault_dir.mkdir()
    scratch = stack(sqlite_url(scratch_dir), key)
    try:
        _write_release2_secrets(scratch)
    finally:
        scratch.close()
    target = vault_dir / "vault.db"
    db = open_sqlite(target)
    try:
        assert list(_release1_runner(db, tmp_path).up()) == RELEASE_1
    finally:
        db.close()
    with closing(sqlite3.connect(target)) as conn:
        assert "deleted_at" not in _sqlite_columns(conn, "secret_kv")
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'secret_version'").fetchone() is None
    assert _copy_sqlite(scratch_dir / "vault.db", target, "secret_kv") == len(SECRETS)
    assert _copy_sqlite(scratch_dir / "vault.db", target, "vault_key") >= 1

    env = environment(sqlite_url(vault_dir), key)
    done = _run_cli(env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    again = _run_cli(env, "db", "upgrade", "--json")
    assert (again.returncode, json.loads(again.stdout)) == (0, {"applied": []})
    vault = stack(sqlite_url(vault_dir), key)
    try:
        _assert_upgraded(vault, done.stdout)
    finally:
        vault.close()


# --- Postgres -----------------------------------------------------------------------------------------------------

def _pg_columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND "
                        "table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
    return [name for (name,) in rows]


def _copy_pg(source: PgDatabase, target: PgDatabase, table: str) -> int:
    with target.admin() as dst, source.admin() as src:
        columns = _pg_columns(dst, table)
        rows = src.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        with dst.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                            f"VALUES ({', '.join(['%s'] * len(columns))})",
                            [tuple(psycopg.types.json.Jsonb(v) if isinstance(v, dict) else v for v in row)
                             for row in rows])
        return len(rows)


def test_postgres_release1_vault_upgrades_as_the_maintenance_login(pg_db: PgDatabase, pg_empty: PgDatabase,
                                                                   tmp_path: Path) -> None:
    key = new_key()
    scratch = stack(pg_db.maintenance_url, key)
    try:
        _write_release2_secrets(scratch)
    finally:
        scratch.close()
    admin = open_postgres(pg_empty.admin_url)  # release 1's first `db upgrade`: a superuser, 0001-0003 at once
    try:
        assert list(_release1_runner(admin, tmp_path).up()) == RELEASE_1
    finally:
        admin.close()
    with pg_empty.admin() as conn:
        conn.execute(f'CREATE ROLE "{pg_empty.maintenance_role}" LOGIN NOBYPASSRLS IN ROLE sprongus_maintenance')
        assert "deleted_at" not in _pg_columns(conn, "secret_kv")
    assert _copy_pg(pg_db, pg_empty, "secret_kv") == len(SECRETS)
    assert _copy_pg(pg_db, pg_empty, "vault_key") >= 1

    env = environment(pg_empty.maintenance_url, key)
    done = _run_cli(env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    vault = stack(pg_empty.maintenance_url, key)
    try:
        _assert_upgraded(vault, done.stdout)
    finally:
        vault.close()
    with pg_empty.admin() as conn:
        owners = dict(conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall())
        assert owners["secret_version"] == owners["secret_tombstone"] == "sprongus_maintenance"


# --- db upgrade runs purge-expired --------------------------------------------------------------------------------

def _age_deletions(vault: Stack, by: timedelta, execute: Callable[[str, list[Any]], None], mark: str) -> None:
    field = vault.models.secret._meta.fields["deleted_at"]
    rows = vault.db.execute_sql("SELECT id, deleted_at FROM secret_kv WHERE deleted_at IS NOT NULL").fetchall()
    for secret_id, stamp in rows:
        execute(f"UPDATE secret_kv SET deleted_at = {mark} WHERE id = {mark}",
                [field.db_value(field.python_value(stamp) - by), secret_id])


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_db_upgrade_purges_what_the_retention_expired(dialect: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    key = new_key()
    if dialect == "sqlite":
        url = sqlite_url(tmp_path)

        def execute(sql: str, params: list[Any]) -> None:
            with closing(sqlite3.connect(tmp_path / "vault.db")) as conn, conn:
                conn.execute(sql, params)
        mark = "?"
    else:
        pg: PgDatabase = request.getfixturevalue("pg_db")
        url = pg.maintenance_url

        def execute(sql: str, params: list[Any]) -> None:
            with pg.admin() as conn:
                conn.execute(sql, params)
        mark = "%s"
    vault = stack(url, key)
    try:
        for name in ("old.a", "old.b", "recent", "alive"):
            vault.secrets.set(owner(), Scope.system(), name, SecretValue("v1"))
            vault.secrets.set(owner(), Scope.system(), name, SecretValue("v2"))
        for name in ("old.a", "old.b"):
            vault.secrets.unset(owner(), Scope.system(), name)
        _age_deletions(vault, timedelta(days=31), execute, mark)
        vault.secrets.unset(owner(), Scope.system(), "recent")
    finally:
        vault.close()

    env = environment(url, key)
    done = _run_cli(env, "db", "upgrade")
    assert (done.returncode, done.stdout) == (0, "schema is current\n"), done.stderr
    assert "purged 2 deleted secrets (4 versions)" in done.stderr
    quiet = _run_cli(env, "db", "upgrade", "--json")  # nothing left past the retention: nothing said
    assert (quiet.returncode, json.loads(quiet.stdout), quiet.stderr) == (0, {"applied": []}, "")
    zero = _run_cli({**env, "SPRONGUS_DELETE_RETENTION": "0"}, "db", "upgrade")
    assert zero.returncode == 0 and "purged 1 deleted secret (2 versions)" in zero.stderr

    vault = stack(url, key)
    try:
        rows = vault.db.execute_sql("SELECT key_name FROM secret_kv ORDER BY key_name").fetchall()
        assert [r[0] for r in rows] == ["alive"]
        kept = vault.db.execute_sql("SELECT key_name, version FROM secret_version").fetchall()
        assert [tuple(r) for r in kept] == [("alive", 1)]
        actions = vault.db.execute_sql("SELECT action, key_name, version FROM audit_event WHERE action IN "
                                       "('destroy', 'purge') AND outcome = 'success' ORDER BY seq").fetchall()
        assert [tuple(a) for a in actions] == [
            ("destroy", "old.a", 2), ("destroy", "old.a", 1), ("destroy", "old.b", 2), ("destroy", "old.b", 1),
            ("purge", None, None), ("purge", None, None), ("destroy", "recent", 2), ("destroy", "recent", 1),
            ("purge", None, None)]
        assert vault.audit.verify_chain().problems == []
    finally:
        vault.close()
