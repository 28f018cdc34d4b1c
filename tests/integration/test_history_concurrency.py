"""History under concurrency and failure, on real SQLite and Postgres (the app role, under row-level security).

- N threads setting one key: every writer its own version, the kept window exact, one destroy row per destroyed
  version, nothing unexpected raised;
- purge racing a set (Postgres): the version the set kept while purge waited is destroyed too, not left behind
  in secret_version (where the next secret of that name would show it in its history);
- purge-expired racing a restore and a new delete: a secret deleted a moment ago is not destroyed;
- audit appends from several containers (processes) and threads, with checkpoints and rolled-back appends (gaps
  in the seq): `audit verify` finds nothing;
- a database outage in the middle of rollback, purge and audit verify: StorageUnavailable, never IntegrityError,
  nothing half-written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sprongus.adapters.peewee import repository as repository_module
from sprongus.domain import audit_log, audit_verify
from sprongus.domain.errors import IntegrityError, StorageUnavailable
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.records import AuditAction, AuditEvent, Outcome
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.service.history import HistoryOps
from sprongus.service.secrets import SecretOps
from tests.integration.stack import Stack, build, environment, in_threads, new_key, owner, sqlite_url
from tests.pg import PgDatabase

P1 = Scope.project("p1")
MAX = 3
ADMIN_OF_P1 = Principal("alice", frozenset(Permission), frozenset({"p1"}))  # secrets:admin on p1 (purge)


def _stack(url: str, keys: str | None = None, **extra: str) -> Stack:
    return build({**environment(url, keys or new_key()), "SPRONGUS_MAX_VERSIONS": str(MAX),
                  "SPRONGUS_RATE_LIMIT_WRITE": "100000/minute", "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute", **extra})


def _history(s: Stack) -> HistoryOps:
    ops: HistoryOps = s.container.history_ops()
    return ops


def _raw_sqlite(directory: Path) -> Callable[[str], list[Any]]:
    import sqlite3
    from contextlib import closing

    def raw(sql: str) -> list[Any]:
        with closing(sqlite3.connect(directory / "vault.db")) as conn, conn:
            return conn.execute(sql).fetchall()
    return raw


def _raw_pg(pg: PgDatabase) -> Callable[[str], list[Any]]:
    def raw(sql: str) -> list[Any]:
        with pg.admin() as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []
    return raw


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Stack, Callable[[str], list[Any]]]]:
    """The app's stack (Postgres: the app role, under row-level security) and raw SQL as a superuser."""
    if request.param == "sqlite":
        s, raw = _stack(sqlite_url(tmp_path)), _raw_sqlite(tmp_path)
    else:
        pg: PgDatabase = request.getfixturevalue("pg_db")
        s, raw = _stack(pg.app_url), _raw_pg(pg)
    try:
        yield s, raw
    finally:
        s.close()


# --- concurrent sets of one key -----------------------------------------------------------------------------------

def test_concurrent_sets_each_get_a_version_and_the_window_holds(app: tuple[Stack, Callable[[str], list[Any]]]) -> None:
    s, raw = app
    secrets: SecretOps = s.secrets
    threads, rounds = 8, 6
    versions: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for r in range(rounds):
            v = secrets.set(ADMIN_OF_P1, P1, "shared", SecretValue(f"v-{i}-{r}")).view.version
            with lock:
                versions.append(v)

    assert in_threads(threads, work) == []
    total = threads * rounds
    assert sorted(versions) == list(range(1, total + 1))  # none lost, none told twice
    kept = [r[0] for r in raw("SELECT version FROM secret_version WHERE key_name = 'shared' ORDER BY version")]
    assert kept == list(range(total - MAX + 1, total))  # the window: exactly MAX versions, the current included
    assert raw("SELECT version FROM secret_kv WHERE key_name = 'shared'") == [(total,)]
    destroyed = sorted(r[0] for r in raw("SELECT version FROM audit_event WHERE action = 'destroy' "
                                         "AND key_name = 'shared'"))
    assert destroyed == list(range(1, total - MAX + 1))  # one row per destroyed version, each once
    assert s.audit.verify_chain().problems == []


# --- purge racing a set (Postgres row locks) ---------------------------------------------------------------------

def _wait_for_lock_wait(pg: PgDatabase, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with pg.admin() as conn:
        while time.monotonic() < deadline:
            (waiting,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                      "AND wait_event_type = 'Lock'", (pg.name,)).fetchone() or (0,)
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("purge never waited for the set's row lock")


def test_purge_racing_a_set_destroys_the_version_the_set_kept(pg_db: PgDatabase,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The set holds the secret_kv row (FOR UPDATE) and has archived version 2; purge starts meanwhile. Purge
    used to prune secret_version first (version 2 not yet committed, so not seen), then wait on the row: the set
    committed, purge deleted the row (version 3) and left version 2 behind in secret_version, an orphan that the
    next secret of that name showed in its history (and `purge` did not report as destroyed)."""
    s = _stack(pg_db.app_url)
    try:
        secrets, history = s.secrets, _history(s)
        for i in (1, 2):
            secrets.set(ADMIN_OF_P1, P1, "raced", SecretValue(f"old-{i}"))
        saved, release = threading.Event(), threading.Event()
        original = repository_module.PeeweeSecretRepository.save
        setter: list[threading.Thread] = []

        def paused_save(self: Any, record: Any, expected_version: int | None) -> None:
            original(self, record, expected_version)
            if setter and threading.current_thread() is setter[0]:
                saved.set()
                assert release.wait(30)

        monkeypatch.setattr(repository_module.PeeweeSecretRepository, "save", paused_save)
        results: dict[str, Any] = {}

        def do_set() -> None:
            results["set"] = secrets.set(ADMIN_OF_P1, P1, "raced", SecretValue("acknowledged")).view.version

        def do_purge() -> None:
            try:
                results["purge"] = history.purge(ADMIN_OF_P1, P1, "raced")
            except BaseException as exc:
                results["purge_error"] = exc

        setter.append(threading.Thread(target=do_set))
        setter[0].start()
        assert saved.wait(30)
        purger = threading.Thread(target=do_purge)
        purger.start()
        _wait_for_lock_wait(pg_db)
        release.set()
        setter[0].join(30)
        purger.join(30)
        assert results["set"] == 3
        assert results.get("purge") == [3, 2, 1], results  # every version destroyed, and reported
        with pg_db.admin() as conn:
            assert conn.execute("SELECT count(*) FROM secret_version WHERE key_name = 'raced'").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM secret_kv WHERE key_name = 'raced'").fetchone() == (0,)
            assert conn.execute("SELECT last_version FROM secret_tombstone WHERE key_name = 'raced'").fetchone() \
                == (3,)
            destroyed = conn.execute("SELECT version FROM audit_event WHERE action = 'destroy' AND "
                                     "key_name = 'raced' ORDER BY version").fetchall()
            assert destroyed == [(1,), (2,), (3,)]
        monkeypatch.undo()
        # The next secret of that name continues after the tombstone, with no history but its own.
        assert secrets.set(ADMIN_OF_P1, P1, "raced", SecretValue("new")).view.version == 4
        assert [v.version for v in history.history(ADMIN_OF_P1, P1, "raced").items] == [4]
    finally:
        s.close()


# --- purge-expired racing restore + delete ------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_purge_expired_spares_a_secret_deleted_again_meanwhile(engine: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Between purge-expired's scan and its purge of one secret, the secret is restored and deleted again: it was
    deleted a moment ago, so the retention has not passed and it must stay restorable. (Postgres: the operator's
    maintenance role, which purge-expired runs as: it sees every tenant's rows.)"""
    if engine == "sqlite":
        s = _stack(sqlite_url(tmp_path))
        raw = _raw_sqlite(tmp_path)
    else:
        pg: PgDatabase = request.getfixturevalue("pg_db")
        s = _stack(pg.maintenance_url)
        raw = _raw_pg(pg)
    try:
        _purge_expired_race(s, raw, monkeypatch)
    finally:
        s.close()


def _purge_expired_race(s: Stack, raw: Callable[[str], list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    secrets, history = s.secrets, _history(s)
    for i in (1, 2):
        secrets.set(ADMIN_OF_P1, P1, "expiring", SecretValue(f"v{i}"))
    secrets.unset(ADMIN_OF_P1, P1, "expiring")
    long_ago = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    raw(f"UPDATE secret_kv SET deleted_at = '{long_ago}' WHERE key_name = 'expiring'")

    original = HistoryOps._purge_expired_one

    def racing(self: HistoryOps, principal: Principal, row: Any, *rest: Any) -> int:
        history.restore(ADMIN_OF_P1, P1, "expiring")  # someone restores it, then deletes it again, just now
        secrets.unset(ADMIN_OF_P1, P1, "expiring")
        return original(self, principal, row, *rest)

    monkeypatch.setattr(HistoryOps, "_purge_expired_one", racing)
    report = history.purge_expired(owner())
    assert (report.secrets, report.versions) == (0, 0)
    monkeypatch.undo()
    restored = history.restore(ADMIN_OF_P1, P1, "expiring")
    assert restored.version == 2
    assert secrets.get(ADMIN_OF_P1, P1, "expiring", reveal=True).value == SecretValue("v2")


# --- the audit chain and its checkpoints with several writers ----------------------------------------------------

def test_audit_appends_from_several_containers_verify_clean(pg_db: PgDatabase,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two containers (two processes' worth of checkpoint state) x 4 threads, a checkpoint due every 7 events,
    and appends that roll back (their seq numbers are gaps): every checkpoint's count and head hash hold."""
    monkeypatch.setattr(audit_log, "CHECKPOINT_EVERY", 7)
    monkeypatch.setattr(audit_verify, "CHECKPOINT_EVERY", 7)
    keys = new_key()
    stacks = [_stack(pg_db.app_url, keys), _stack(pg_db.app_url, keys)]
    try:
        stacks[0].secrets.set(ADMIN_OF_P1, P1, "first", SecretValue("x"))  # a value-HMAC key: checkpoints signed

        def work(i: int) -> None:
            s = stacks[i % 2]
            for r in range(25):
                if r % 5 == 4:  # an append whose transaction rolls back: a gap in the sequence
                    db = s.db
                    with db.atomic() as tx:
                        s.audit.record(AuditEvent(datetime.now(UTC), "alice", AuditAction.READ, str(P1), "k",
                                                  None, Outcome.SUCCESS))
                        tx.rollback()
                elif r % 2:
                    s.secrets.set(ADMIN_OF_P1, P1, f"k{i}", SecretValue(f"{r}"))
                else:
                    s.secrets.get(ADMIN_OF_P1, P1, "first", reveal=True)

        assert in_threads(8, work) == []
        report = stacks[1].audit.verify_chain()
        assert report.problems == []
        assert report.checkpoints >= 10 and report.macs_checked >= report.checkpoints - 1
        with pg_db.admin() as conn:
            (events, top) = conn.execute("SELECT count(*), max(seq) FROM audit_event").fetchone() or (0, 0)
        assert top > events  # the rolled-back appends left gaps: the counts above were checked across them
    finally:
        for s in stacks:
            s.close()


# --- a database outage in the middle ------------------------------------------------------------------------------

def _terminate_own_backend(s: Stack) -> None:
    """Cut this stack's connection from the server side, as a restart or a network failure would."""
    pid = s.db.connection().info.backend_pid
    with psycopg.connect(_admin_url(s), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


_ADMIN_URL: dict[int, str] = {}


def _admin_url(s: Stack) -> str:
    return _ADMIN_URL[id(s)]


@pytest.mark.parametrize("operation", ["rollback", "purge", "verify"])
def test_an_outage_mid_operation_is_unavailable_never_integrity(pg_db: PgDatabase, operation: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    s = _stack(pg_db.app_url)
    _ADMIN_URL[id(s)] = pg_db.admin_url
    try:
        secrets, history = s.secrets, _history(s)
        for i in (1, 2, 3):
            secrets.set(ADMIN_OF_P1, P1, "k", SecretValue(f"v{i}"))
        before = _snapshot(pg_db)
        if operation == "rollback":
            sealer = s.container.service_deps().sealer
            real_open = sealer.open

            def open_then_cut(record: Any) -> Any:
                value = real_open(record)
                _terminate_own_backend(s)
                return value

            monkeypatch.setattr(sealer, "open", open_then_cut)
            call: Callable[[], object] = lambda: history.rollback(ADMIN_OF_P1, P1, "k", 1)  # noqa: E731
        elif operation == "purge":
            real_prune = repository_module.PeeweeSecretRepository.prune

            def prune_then_cut(self: Any, scope: Scope, key: str, below: int) -> list[int]:
                gone = real_prune(self, scope, key, below)
                _terminate_own_backend(s)
                return gone

            monkeypatch.setattr(repository_module.PeeweeSecretRepository, "prune", prune_then_cut)
            call = lambda: history.purge(ADMIN_OF_P1, P1, "k")  # noqa: E731
        else:
            sink = s.audit
            real_rows = sink._rows

            def rows_then_cut(batch: int, head: int) -> Iterator[Any]:
                for n, row in enumerate(real_rows(1, head)):
                    if n == 2:
                        _terminate_own_backend(s)
                    yield row

            monkeypatch.setattr(sink, "_rows", rows_then_cut)
            call = sink.verify_chain
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert not isinstance(caught.value, IntegrityError)
        monkeypatch.undo()
        assert _snapshot(pg_db) == before  # nothing half-written (the audit trail included)
        s.db.close()  # what the API does after every request (app.py: back to the pool, checked on next use)
        assert s.audit.verify_chain().problems == []
    finally:
        s.close()


def _snapshot(pg: PgDatabase) -> tuple[Any, ...]:
    with pg.admin() as conn:
        return tuple(conn.execute(sql).fetchall() for sql in (
            "SELECT version, checksum, deleted_at FROM secret_kv ORDER BY key_name",
            "SELECT key_name, version, checksum FROM secret_version ORDER BY key_name, version",
            "SELECT key_name, last_version FROM secret_tombstone ORDER BY key_name",
            "SELECT seq, hash FROM audit_event ORDER BY seq",
            "SELECT seq, count FROM audit_checkpoint ORDER BY seq"))
