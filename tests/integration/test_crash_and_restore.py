"""Crash safety of master-key rotation (kill -9 mid-way, rerun finishes) and backup / restore drills."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from sprongus.domain.errors import VaultKeyMismatch
from sprongus.domain.import_item import ImportItem
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import ROOT, Stack, alice, clean_environ, environment, new_key, owner, sqlite_url, stack
from tests.pg import HOST, PORT, SUPERUSER, PgDatabase

ROWS = 2_500
BATCH = 50
SCOPES = [Scope.user("alice"), Scope.project("p1"), Scope.system()]


def expected(rows: int) -> dict[tuple[Scope, str], str]:
    return {(SCOPES[i % len(SCOPES)], f"svc{i % 7}.key_{i:05d}"): f"value-{i}-{uuid.uuid5(uuid.NAMESPACE_OID, str(i))}"
            for i in range(rows)}


def seed(vault: Stack, values: dict[tuple[Scope, str], str]) -> None:
    items = [ImportItem(scope, key, SecretValue(value)) for (scope, key), value in values.items()]
    vault.transfer.import_(owner(), items=items, allow_plaintext=True)


def assert_all_readable(vault: Stack, values: dict[tuple[Scope, str], str], sample_every: int = 1) -> None:
    report = vault.rotation.verify(owner())
    assert report.ok, (report.failures[:5], report.audit_problems[:5])
    # every stored version is checked: the current ones and the versions they keep
    kept = sum(vault.container.unit_of_work().count_by_master_key(owner()).values())
    assert report.checked == kept >= len(values)
    for i, ((scope, key), value) in enumerate(sorted(values.items())):
        if i % sample_every == 0:
            view = vault.secrets.get(owner(), scope, key, reveal=True)
            assert view.value is not None and view.value.reveal() == value


def master_key_counts(path: Path) -> Counter[str]:
    with closing(sqlite3.connect(path)) as conn:
        return Counter(dict(conn.execute("SELECT master_key_id, count(*) FROM secret_kv GROUP BY 1").fetchall()))


def start_rotation(env: dict[str, str], pause: float) -> subprocess.Popen[str]:
    full_env = {**clean_environ(), **env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    return subprocess.Popen([sys.executable, "-m", "tests.integration.workers", "rotate-master", "--pause", str(pause)],
                            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_master_key_rotation_killed_mid_way_finishes_on_rerun(tmp_path: Path) -> None:
    old, new = new_key("k1"), new_key("k2")
    url = sqlite_url(tmp_path)
    values = expected(ROWS)
    vault = stack(url, old)
    seed(vault, values)
    vault.close()
    assert master_key_counts(tmp_path / "vault.db") == {"env:k1": ROWS}

    rotated_env = environment(url, f"{new},{old}", batch_size=BATCH)
    proc = start_rotation(rotated_env, pause=0.01)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("progress") and int(line.split()[1]) >= ROWS // 3:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""

    # Killed mid-way: committed batches are on the new key, the rest still on the old one, nothing in between.
    counts = master_key_counts(tmp_path / "vault.db")
    assert set(counts) == {"env:k1", "env:k2"} and sum(counts.values()) == ROWS
    assert counts["env:k2"] % BATCH == 0 and 0 < counts["env:k2"] < ROWS
    with closing(sqlite3.connect(tmp_path / "vault.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT DISTINCT version FROM secret_kv").fetchall() == [(1,)]

    # Mid-way, every secret still opens: old master keys stay usable until nothing references them.
    vault = stack(url, f"{new},{old}", batch_size=BATCH)
    try:
        assert_all_readable(vault, values, sample_every=97)
    finally:
        vault.close()

    rerun = start_rotation(rotated_env, pause=0)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert out.strip().splitlines()[-1] == f"done {counts['env:k1']} 0"
    assert master_key_counts(tmp_path / "vault.db") == {"env:k2": ROWS}

    vault = stack(url, f"{new},{old}")
    try:
        assert_all_readable(vault, values, sample_every=97)
        assert vault.audit.verify_chain().problems == []
        assert vault.rotation.rotate_master(owner()).rotated == 0  # a third run has nothing left to do
    finally:
        vault.close()
    # The old key is no longer needed: the vault opens with the new key alone.
    vault = stack(url, new)
    try:
        assert vault.rotation.verify(owner()).ok
    finally:
        vault.close()


def test_sqlite_backup_copy_restores_in_a_fresh_home(tmp_path: Path) -> None:
    keys, hmac = new_key("k1"), new_key("h1")
    values = expected(60)
    vault = stack(sqlite_url(tmp_path / "live"), keys, hmac_keys=hmac)
    seed(vault, values)
    vault.rotation.rotate(owner(), Scope.project("p1"))
    vault.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    # An online copy with SQLite's backup API (what `sqlite3 vault.db ".backup copy.db"` does) while still open ...
    online = tmp_path / "online" / "vault.db"
    online.parent.mkdir()
    with closing(sqlite3.connect(tmp_path / "live" / "vault.db")) as src, closing(sqlite3.connect(online)) as dst:
        src.backup(dst)
    online.chmod(0o600)  # the backup is created with the umask's mode; a vault others can read is refused
    # Connections that the rotation's worker threads opened close only when collected; then the last close
    # checkpoints the WAL into vault.db and removes it.
    gc.collect()
    vault.close()
    # ... and a plain file copy of the closed vault: the main file alone, no -wal or -shm beside it.
    assert not (tmp_path / "live" / "vault.db-wal").exists()
    copied = tmp_path / "copied" / "vault.db"
    copied.parent.mkdir()
    shutil.copy2(tmp_path / "live" / "vault.db", copied)

    for restored in (copied, online):
        vault = stack(f"sqlite:///{restored}", keys, hmac_keys=hmac)
        try:
            assert_all_readable(vault, values)
            assert vault.audit.verify_chain().problems == []
        finally:
            vault.close()

    # The data alone is not enough: without the master key history nothing opens, and another key with the same
    # id is refused before it can write anything.
    with pytest.raises(VaultKeyMismatch, match="does not match this vault"):
        stack(f"sqlite:///{copied}", new_key("k1"), hmac_keys=hmac)


def test_postgres_pg_dump_and_pg_restore_into_a_fresh_database(pg_db: PgDatabase, tmp_path: Path) -> None:
    keys, hmac = new_key("k1"), new_key("h1")
    values = expected(90)
    app = stack(pg_db.app_url, keys, hmac_keys=hmac)
    try:
        alice_values = {k: v for k, v in values.items() if k[0] == Scope.user("alice")}
        for (scope, key), value in alice_values.items():
            app.secrets.set(alice(), scope, key, SecretValue(value))
    finally:
        app.close()
    maint = stack(pg_db.maintenance_url, keys, hmac_keys=hmac)
    try:
        seed(maint, {k: v for k, v in values.items() if k not in alice_values})
    finally:
        maint.close()

    dump = tmp_path / "sprongus.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), pg_db.admin_url], check=True, capture_output=True)
    target = f"{pg_db.name}_restored"
    with psycopg.connect(host=HOST, port=PORT, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{target}"')
    try:
        restored = PgDatabase(target, pg_db.app_role, pg_db.maintenance_role)
        subprocess.run(["pg_restore", "--exit-on-error", "-d", restored.admin_url, str(dump)], check=True,
                       capture_output=True)
        with restored.admin() as conn:
            flags = conn.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                                 "WHERE oid = 'public.secret_kv'::regclass").fetchone()
            assert flags == (True, True)
        vault = stack(restored.maintenance_url, keys, hmac_keys=hmac)
        try:
            assert_all_readable(vault, values)
        finally:
            vault.close()
        # The grants came with the dump: the app role works there, still through the policy.
        app = stack(restored.app_url, keys, hmac_keys=hmac)
        try:
            assert len(app.secrets.list(alice(), Scope.user("alice"), limit=500).items) == len(alice_values)
        finally:
            app.close()
    finally:
        with psycopg.connect(host=HOST, port=PORT, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


@pytest.mark.parametrize("batch", [1, 7])
def test_rotate_master_with_tiny_batches_leaves_nothing_behind(tmp_path: Path, batch: int) -> None:
    """Rows are scanned by id while their master_key_id changes under the cursor: none may be skipped."""
    old, new = new_key("k1"), new_key("k2")
    url = sqlite_url(tmp_path)
    values = expected(40)
    vault = stack(url, old)
    seed(vault, values)
    vault.close()
    vault = stack(url, f"{new},{old}", batch_size=batch)
    try:
        progress: list[tuple[int, int | None]] = []
        report = vault.rotation.rotate_master(owner(), progress=lambda done, total: progress.append((done, total)))
        assert report.rotated == len(values)
        assert progress[-1] == (len(values), len(values))
        assert master_key_counts(tmp_path / "vault.db") == {"env:k2": len(values)}
    finally:
        vault.close()
