"""The SQLite vault's writer queue: every write transaction takes a turn (a thread lock, then an advisory lock on
`vault.db-writers`), and gives it back however the transaction ends; another process waits for it, within the
busy timeout."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.peewee.db import open_sqlite
from sprongus.adapters.peewee.sqlite_writers import WriterTurns
from sprongus.domain.errors import StorageUnavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import new_key, owner, sqlite_url, stack

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sprongus.adapters.peewee.sqlite_writers import WriterTurns
    turns = WriterTurns(Path(sys.argv[1]), timeout=5)
    turns.take()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    turns.give_back()
""")


def holder(db: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def taken_by_another_thread(turns: WriterTurns) -> bool:
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(turns._threads.acquire(timeout=0.05)))
    thread.start()
    thread.join()
    if got[0]:
        turns._threads.release()
    return not got[0]


def test_a_write_waits_for_another_process_turn_and_then_succeeds(tmp_path: Path) -> None:
    vault = stack(sqlite_url(tmp_path), new_key())
    try:
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v1"))
        proc = holder(tmp_path / "vault.db", 0.5)
        started = time.monotonic()
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v2"))  # queues behind the other process
        waited = time.monotonic() - started
        assert proc.wait(10) == 0
        assert waited >= 0.3, waited
        assert vault.secrets.get(owner(), Scope.system(), "k").version == 2
    finally:
        vault.close()


def test_no_turn_within_the_busy_timeout_is_an_outage_not_a_hang(tmp_path: Path) -> None:
    db = tmp_path / "vault.db"
    db.touch()
    proc = holder(db, 3)
    try:
        turns = WriterTurns(db, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="busy"):
            turns.take()
        assert time.monotonic() - started < 2
        assert not taken_by_another_thread(turns)  # the thread lock was given back with the failure
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("ending", ["commit", "exception", "failed-begin"])
def test_the_turn_is_given_back_however_the_transaction_ends(tmp_path: Path, ending: str) -> None:
    db = open_sqlite(tmp_path / "vault.db")
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    turns = db.writer_turns
    assert turns is not None
    foreign = None
    if ending == "failed-begin":  # a foreign writer (no turn) holds SQLite's lock past a short busy timeout
        foreign = sqlite3.connect(tmp_path / "vault.db", isolation_level=None)
        foreign.execute("BEGIN IMMEDIATE")
        db.execute_sql("PRAGMA busy_timeout = 50")
    try:
        with db.atomic("IMMEDIATE"):
            assert taken_by_another_thread(turns)
            db.execute_sql("INSERT INTO t VALUES (1)")
            if ending == "exception":
                raise KeyError("boom")
    except Exception as exc:
        assert ending != "commit", exc
    assert not taken_by_another_thread(turns)
    assert not getattr(db._state, "holds_turn", False)
    if foreign is not None:
        foreign.rollback()
        foreign.close()
    with db.atomic("IMMEDIATE"):  # and the next write gets its turn
        db.execute_sql("INSERT INTO t VALUES (2)")
    db.close()


def test_a_forked_child_queues_on_its_own_descriptor(tmp_path: Path) -> None:
    """A descriptor inherited across fork shares the parent's lock: the child would write beside the parent."""
    db = tmp_path / "vault.db"
    db.touch()
    turns = WriterTurns(db, timeout=0.3)
    turns.take()
    try:
        pid = os.fork()
        if pid == 0:  # the child: same object, new process
            try:
                turns.take()  # the parent's thread lock was held at the fork: the child has a fresh one
                os._exit(1)  # got the turn the parent holds: wrong
            except StorageUnavailable:
                os._exit(0)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        turns.give_back()


def test_the_lock_file_is_private_and_empty(tmp_path: Path) -> None:
    vault = stack(sqlite_url(tmp_path), new_key())
    try:
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("canary-writers-5d1e"))
    finally:
        vault.close()
    lock = tmp_path / "vault.db-writers"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert lock.read_bytes() == b""


def test_without_a_lock_file_writes_still_work(tmp_path: Path) -> None:
    (tmp_path / "vault.db-writers").mkdir()  # cannot be opened as a file: the processes queue in SQLite alone
    vault = stack(sqlite_url(tmp_path), new_key())
    try:
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v"))
        assert vault.secrets.get(owner(), Scope.system(), "k").version == 1
    finally:
        vault.close()


def test_a_file_system_without_advisory_locks_falls_back_to_sqlite_alone(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """flock failing with anything but "would block" (ENOLCK on some network or FUSE file systems) is no outage:
    the process queues in SQLite alone, as without a lock file (it used to escape as a 500)."""
    import errno
    import fcntl

    from sprongus.adapters.peewee import sqlite_writers

    calls: list[int] = []

    def no_locks(fd: int, operation: int) -> None:
        calls.append(operation)
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(sqlite_writers.fcntl, "flock", no_locks)
    vault = stack(sqlite_url(tmp_path), new_key())
    try:
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v1"))
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v2"))
        assert vault.secrets.get(owner(), Scope.system(), "k").version == 2
    finally:
        vault.close()
    assert calls == [fcntl.LOCK_EX | fcntl.LOCK_NB]  # tried once: the process then stops asking


def test_an_unlock_that_fails_closes_the_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sprongus.adapters.peewee import sqlite_writers

    db = tmp_path / "vault.db"
    db.touch()
    turns = WriterTurns(db, timeout=0.3)
    turns.take()
    real = sqlite_writers.fcntl.flock

    def unlock_fails(fd: int, operation: int) -> None:
        if operation == sqlite_writers.fcntl.LOCK_UN:
            raise OSError("I/O error")
        real(fd, operation)

    monkeypatch.setattr(sqlite_writers.fcntl, "flock", unlock_fails)
    turns.give_back()  # a committed write is not reported as failed
    monkeypatch.setattr(sqlite_writers.fcntl, "flock", real)
    proc = holder(db, 0.1)  # another process gets the turn: closing the descriptor released it
    assert proc.wait(10) == 0
    turns.take()
    turns.give_back()


def test_a_vault_dropped_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """The lock file is closed with its vault: a process building many (the test suite) ran out of descriptors."""
    import gc

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = open_descriptors()
    for n in range(30):
        vault = stack(sqlite_url(tmp_path / str(n)), new_key())
        vault.secrets.set(owner(), Scope.system(), "k", SecretValue("v"))
        vault.close()
        del vault
    gc.collect()
    assert open_descriptors() <= before + 2


def _wal_bounds(db: Any) -> tuple[int, int]:
    conn = db.connection()
    return (conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
            conn.execute("PRAGMA journal_size_limit").fetchone()[0])


def test_the_api_servers_connections_checkpoint_less_often_than_a_local_command(tmp_path: Path) -> None:
    """A checkpoint syncs the WAL and the vault inside the commit that crosses the mark, while every other writer
    waits: the server's stream of writes checkpoints every 2,048 pages (8 MiB); a command, every 32 (128 KiB)."""
    from sprongus.entrypoints.api.app import create_app

    made = stack(sqlite_url(tmp_path), new_key())
    try:
        db = made.container.storage().database.db
        assert _wal_bounds(db) == (32, 32 * 4096)
        create_app(made.container)
        assert _wal_bounds(db) == (2048, 2048 * 4096)  # this thread's connection, and every one opened later
        in_another_thread: list[tuple[int, int]] = []
        worker = threading.Thread(target=lambda: in_another_thread.append(_wal_bounds(db)))
        worker.start()
        worker.join()
        assert in_another_thread == [(2048, 2048 * 4096)]
    finally:
        made.close()
