"""While a foreign writer holds SQLite's write lock, concurrent reveals fail closed (503) within about one busy
timeout each. The group commit used to retry a group that failed for an outage caller by caller, each retry waiting
the whole timeout again, so the last of N reveals answered after about N+1 timeouts. Timeouts are scaled down."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sprongus.adapters.peewee.sqlite_writers import WriterTurns
from sprongus.domain.errors import AuditUnavailable, Unavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import alice, build, environment, new_key, sqlite_url

TIMEOUT = 0.5
THREADS = 4  # gunicorn_conf.threads


def test_concurrent_reveals_fail_closed_within_about_one_busy_timeout(tmp_path: Path) -> None:
    made = build({**environment(sqlite_url(tmp_path), new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    scope = Scope.user("alice")
    made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-group-3b1c"))
    db = made.db
    db.close()
    db._pragmas = [(n, int(TIMEOUT * 1000) if n == "busy_timeout" else v) for n, v in db._pragmas]
    db.writer_turns = WriterTurns(tmp_path / "vault.db", TIMEOUT)
    foreign = sqlite3.connect(tmp_path / "vault.db", isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")  # the sqlite3 shell, a backup tool, an older sprongus
    waits: list[float] = []
    barrier = threading.Barrier(THREADS)

    def reveal() -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            made.secrets.get(alice(), scope, "token", reveal=True)
        except AuditUnavailable:
            waits.append(time.monotonic() - started)

    threads = [threading.Thread(target=reveal) for _ in range(THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        foreign.rollback()
        foreign.close()
        made.close()
    assert len(waits) == THREADS  # fail closed: no value without its audit row
    assert max(waits) < 3 * TIMEOUT, f"503s came after {sorted(round(w, 2) for w in waits)} s"


def test_concurrent_writes_fail_within_a_few_busy_timeouts(tmp_path: Path) -> None:
    """A queued write waits at most one busy timeout for its turn and SQLite's lock together, then the audit row of
    its failure as much again (measured: 2-3 timeouts; before, the last of four writers waited six)."""
    made = build({**environment(sqlite_url(tmp_path), new_key()), "SPRONGUS_RATE_LIMIT_WRITE": "100000/minute"})
    scope = Scope.user("alice")
    made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-write-77aa"))
    db = made.db
    db.close()
    db._pragmas = [(n, int(TIMEOUT * 1000) if n == "busy_timeout" else v) for n, v in db._pragmas]
    db.writer_turns = WriterTurns(tmp_path / "vault.db", TIMEOUT)
    foreign = sqlite3.connect(tmp_path / "vault.db", isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    waits: list[float] = []
    barrier = threading.Barrier(THREADS)

    def write(n: int) -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            made.secrets.set(alice(), scope, "token", SecretValue(f"new-{n}"))
        except Unavailable:
            waits.append(time.monotonic() - started)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        foreign.rollback()
        foreign.close()
    try:
        assert len(waits) == THREADS
        assert max(waits) < 4 * TIMEOUT, f"503s came after {sorted(round(w, 2) for w in waits)} s"
        assert made.secrets.get(alice(), scope, "token").version == 1  # nothing was written
    finally:
        made.close()
