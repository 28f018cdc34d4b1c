"""Crash drills for history: kill -9 a real process in the middle of rollback, retention pruning, purge and
purge-expired (between statements of the open transaction), reopen the vault and find it whole: the old state or
the new one, never a mix; no kept version without its secret; every value opens; the audit chain verifies. Then
the operation, run again, finishes. SQLite and Postgres.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.principal import Principal
from sprongus.domain.values import SecretValue
from sprongus.service.history import HistoryOps
from tests.integration.history_crash_worker import KEY, SCOPE
from tests.integration.stack import ROOT, Stack, build, clean_environ, environment, new_key, owner, sqlite_url
from tests.pg import PgDatabase

EXPIRED = ("exp.a", "exp.b")


@dataclass
class Drill:
    env: dict[str, str]
    dialect: str
    raw_url: Any  # a Path (SQLite) or a PgDatabase

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.dialect == "sqlite":
            with closing(sqlite3.connect(self.raw_url)) as conn:
                return conn.execute(sql).fetchall()
        with self.raw_url.admin() as conn:
            return conn.execute(sql).fetchall()

    def snapshot(self) -> dict[str, Any]:
        """Everything the operations touch, as raw rows (the audit trail by its length and head)."""
        return {
            "current": sorted(self.rows("SELECT key_name, version, deleted_at IS NULL, checksum FROM secret_kv")),
            "kept": sorted(self.rows("SELECT key_name, version, checksum FROM secret_version")),
            "tombstones": sorted(self.rows("SELECT key_name, last_version FROM secret_tombstone")),
            "audit": self.rows("SELECT count(*), max(seq) FROM audit_event"),
        }

    def open(self) -> Stack:
        return build(self.env)


def _history(vault: Stack) -> HistoryOps:
    ops: HistoryOps = vault.container.history_ops()
    return ops


@pytest.fixture(params=["sqlite", "postgres"])
def drill(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Drill]:
    extra = {"SPRONGUS_MAX_VERSIONS": "3", "SPRONGUS_DELETE_RETENTION": "1h"}
    if request.param == "sqlite":
        yield Drill({**environment(sqlite_url(tmp_path), new_key()), **extra}, "sqlite", tmp_path / "vault.db")
    else:
        pg: PgDatabase = request.getfixturevalue("pg_db")
        yield Drill({**environment(pg.maintenance_url, new_key()), **extra}, "postgres", pg)


def _seed(drill: Drill, expired: bool) -> None:
    vault = drill.open()
    try:
        for n in (1, 2, 3):
            vault.secrets.set(owner(), SCOPE, KEY, SecretValue(f"value-{n}"))
        if expired:
            field = vault.models.secret._meta.fields["deleted_at"]
            for key in EXPIRED:
                vault.secrets.set(owner(), SCOPE, key, SecretValue(f"{key}-1"))
                vault.secrets.set(owner(), SCOPE, key, SecretValue(f"{key}-2"))
                vault.secrets.unset(owner(), SCOPE, key)
            p = vault.db.param
            for secret_id, stamp in vault.db.execute_sql(
                    "SELECT id, deleted_at FROM secret_kv WHERE deleted_at IS NOT NULL").fetchall():
                vault.db.execute_sql(f"UPDATE secret_kv SET deleted_at = {p} WHERE id = {p}",
                                     [field.db_value(field.python_value(stamp) - timedelta(hours=2)), secret_id])
    finally:
        vault.close()


def _kill_at(drill: Drill, operation: str, moment: str) -> None:
    env = {**clean_environ(), **drill.env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.history_crash_worker", operation, moment],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "paused":
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the worker did not pause ({line!r}): {err[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _assert_consistent(drill: Drill, vault: Stack) -> None:
    """No kept version without its secret, history matching the rows, every value opening, the chain intact."""
    orphans = drill.rows("SELECT count(*) FROM secret_version v LEFT JOIN secret_kv k ON k.id = v.secret_id "
                         "WHERE k.id IS NULL")
    assert orphans == [(0,)]
    if drill.dialect == "sqlite":
        assert drill.rows("PRAGMA integrity_check") == [("ok",)]
    for key, version, live in drill.rows("SELECT key_name, version, deleted_at IS NULL FROM secret_kv"):
        kept = sorted((v for (v,) in drill.rows(
            f"SELECT version FROM secret_version WHERE key_name = '{key}'")), reverse=True)
        history = _history(vault).history(owner(), SCOPE, key)
        assert [i.version for i in history.items] == [version, *kept]
        assert all(v < version for v in kept)
        for number in [version, *kept] if live else []:
            view = vault.secrets.get(owner(), SCOPE, key, reveal=True, version=number)
            assert view.value is not None and view.value.reveal().startswith(("value-", "exp."))
    assert vault.audit.verify_chain().problems == []
    report = vault.rotation.verify(owner())
    assert report.ok, report.failures


def _value(vault: Stack, key: str = KEY) -> str:
    view = vault.secrets.get(owner(), SCOPE, key, reveal=True)
    assert view.value is not None
    return view.value.reveal()


CASES = [
    ("rollback", "after-archive"),
    ("rollback", "after-save"),
    ("rollback", "after-prune"),
    ("set", "after-archive"),
    ("set", "after-prune"),  # retention pruning: versions destroyed, their audit rows not yet written
    ("purge", "mid-purge"),
    ("purge", "before-tombstone"),
]


@pytest.mark.parametrize(("operation", "moment"), CASES, ids=[f"{o}-{m}" for o, m in CASES])
def test_killed_mid_transaction_the_vault_holds_the_whole_old_state(drill: Drill, operation: str,
                                                                    moment: str) -> None:
    _seed(drill, expired=False)
    before = drill.snapshot()

    _kill_at(drill, operation, moment)

    assert drill.snapshot() == before  # nothing of the open transaction survived
    me: Principal = owner()
    vault = drill.open()
    try:
        _assert_consistent(drill, vault)
        assert _value(vault) == "value-3"
        # The vault is usable: the same operation now finishes, and its outcome is whole.
        if operation == "rollback":
            assert _history(vault).rollback(me, SCOPE, KEY, 1).view.version == 4
            assert _value(vault) == "value-1"
            assert [i.version for i in _history(vault).history(me, SCOPE, KEY).items] == [4, 3, 2]
        elif operation == "set":
            assert vault.secrets.set(me, SCOPE, KEY, SecretValue("value-4")).view.version == 4
            assert [i.version for i in _history(vault).history(me, SCOPE, KEY).items] == [4, 3, 2]
        else:
            assert _history(vault).purge(me, SCOPE, KEY) == [3, 2, 1]
            assert drill.rows("SELECT key_name, last_version FROM secret_tombstone") == [(KEY, 3)]
            assert vault.secrets.set(me, SCOPE, KEY, SecretValue("value-4")).view.version == 4
        _assert_consistent(drill, vault)
    finally:
        vault.close()
    after = drill.snapshot()
    assert after["kept"] != before["kept"] or after["current"] != before["current"]


def test_purge_expired_killed_mid_way_leaves_each_secret_whole_or_gone(drill: Drill) -> None:
    _seed(drill, expired=True)
    before = drill.snapshot()
    assert sorted(k for k, *_ in before["current"]) == sorted([KEY, *EXPIRED])

    _kill_at(drill, "purge-expired", "second-secret")

    after = drill.snapshot()
    gone = sorted(set(k for k, *_ in before["current"]) - set(k for k, *_ in after["current"]))
    assert len(gone) == 1 and gone[0] in EXPIRED  # the first purge committed on its own
    left = next(k for k in EXPIRED if k not in gone)
    assert [r for r in after["current"] if r[0] == left] == [r for r in before["current"] if r[0] == left]
    assert [r for r in after["kept"] if r[0] == left] == [r for r in before["kept"] if r[0] == left]
    assert [r for r in after["kept"] if r[0] == gone[0]] == []
    assert after["tombstones"] == [(gone[0], 2)]
    vault = drill.open()
    try:
        _assert_consistent(drill, vault)
        assert [i.version for i in _history(vault).history(owner(), SCOPE, left).items] == [2, 1]
        report = _history(vault).purge_expired(owner())
        assert (report.secrets, report.versions) == (1, 2)
        assert _value(vault) == "value-3"
        _assert_consistent(drill, vault)
    finally:
        vault.close()
    assert sorted(k for k, *_ in drill.snapshot()["current"]) == [KEY]
