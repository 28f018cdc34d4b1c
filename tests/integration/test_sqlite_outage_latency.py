"""While a foreign writer holds SQLite's write lock, concurrent reveals fail closed (503) within about one busy
timeout each. The group commit used to retry a group that failed for an outage caller by caller, each retry waiting
the whole timeout again, so the last of N reveals answered after about N+1 timeouts. Timeouts are scaled down."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sprongus.adapters.peewee.sqlite_writers import WriterTurns
from sprongus.domain.errors import AuditUnavailable, Unavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import Stack, alice, build, environment, new_key, sqlite_url

TIMEOUT = 0.5
THREADS = 4  # gunicorn_conf.threads


SCOPE = Scope.user("alice")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Stack]:
    """A vault with one secret, its busy timeout scaled down, and a foreign writer (the sqlite3 shell, a backup
    tool, an older sprongus) holding SQLite's write lock for the whole test."""
    made = build({**environment(sqlite_url(tmp_path), new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute",
                  "SPRONGUS_RATE_LIMIT_WRITE": "100000/minute"})
    made.secrets.set(alice(), SCOPE, "token", SecretValue("canary-outage-latency-3b1c"))
    db = made.db
    db.close()
    db._pragmas = [(n, int(TIMEOUT * 1000) if n == "busy_timeout" else v) for n, v in db._pragmas]
    db.writer_turns = WriterTurns(tmp_path / "vault.db", TIMEOUT)
    foreign = sqlite3.connect(tmp_path / "vault.db", isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    try:
        yield made
    finally:
        foreign.rollback()
        foreign.close()
        made.close()


def failure_times(call: Callable[[int], object], refused: type[BaseException]) -> list[float]:
    """Seconds until each of THREADS concurrent calls was refused with `refused`."""
    waits: list[float] = []
    barrier = threading.Barrier(THREADS)

    def run(n: int) -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            call(n)
        except refused:
            waits.append(time.monotonic() - started)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(round(w, 2) for w in waits)


def test_concurrent_reveals_fail_closed_within_about_one_busy_timeout(held: Stack) -> None:
    waits = failure_times(lambda n: held.secrets.get(alice(), SCOPE, "token", reveal=True), AuditUnavailable)
    assert len(waits) == THREADS  # fail closed: no value without its audit row
    assert max(waits) < 3 * TIMEOUT, f"503s came after {waits} s"


def test_concurrent_writes_fail_within_a_few_busy_timeouts(held: Stack) -> None:
    """A queued write waits at most one busy timeout for its turn and SQLite's lock together, then the audit row of
    its failure as much again (measured: 2-3 timeouts; before, the last of four writers waited six)."""
    waits = failure_times(lambda n: held.secrets.set(alice(), SCOPE, "token", SecretValue(f"new-{n}")), Unavailable)
    assert len(waits) == THREADS
    assert max(waits) < 4 * TIMEOUT, f"503s came after {waits} s"
    assert held.secrets.get(alice(), SCOPE, "token").version == 1  # nothing was written
