"""The Postgres pool during an outage: each request waits one connect timeout, not one per request ahead of it;
and the transient errors a retry gets past (deadlock, serialization failure) are outages (exit 8), not errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from sprongus.adapters.peewee.db import open_postgres, outage_of, ping, release_connection
from sprongus.domain.errors import StorageUnavailable
from sprongus.entrypoints.cli.errors import EXIT_UNAVAILABLE, exit_code_for
from tests.integration.silent_listener import silent_listener
from tests.pg import PgDatabase

CONNECT_TIMEOUT = 2.0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a stopped host behind a proxy, a failover)."""
    with silent_listener() as port:
        yield port


def test_every_thread_fails_within_one_connect_timeout_not_behind_the_others(silent_server: int) -> None:
    db = open_postgres(f"postgresql://app@127.0.0.1:{silent_server}/sprongus", statement_timeout=1,
                       connect_timeout=CONNECT_TIMEOUT)

    def one_request() -> float:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            ping(db)
        release_connection(db)
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=4) as pool:
        waits = list(pool.map(lambda _: one_request(), range(4)))
    assert max(waits) < CONNECT_TIMEOUT + 1.5, waits  # release 2's first pool queued them: 2, 4, 6, 8 s


def test_a_deadlock_is_an_outage_to_retry(pg_db: PgDatabase) -> None:
    first, second = (psycopg.connect(pg_db.admin_url) for _ in range(2))
    try:
        for conn in (first, second):
            conn.execute("CREATE TABLE IF NOT EXISTS t_lock (id INT PRIMARY KEY)")
            conn.commit()
        first.execute("INSERT INTO t_lock VALUES (1) ON CONFLICT DO NOTHING")
        first.execute("INSERT INTO t_lock VALUES (2) ON CONFLICT DO NOTHING")
        first.commit()
        first.execute("SELECT * FROM t_lock WHERE id = 1 FOR UPDATE")
        second.execute("SELECT * FROM t_lock WHERE id = 2 FOR UPDATE")
        errors: list[BaseException] = []

        def cross(conn: psycopg.Connection[object], row: int) -> None:
            try:
                conn.execute("SELECT * FROM t_lock WHERE id = %s FOR UPDATE", (row,))
            except psycopg.Error as exc:
                errors.append(exc)

        threads = [threading.Thread(target=cross, args=(first, 2)), threading.Thread(target=cross, args=(second, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        (deadlock,) = errors
        assert getattr(deadlock, "sqlstate", None) == "40P01"
        assert outage_of(deadlock) == "database unavailable"
        assert exit_code_for(StorageUnavailable("database unavailable: deadlock detected")) == EXIT_UNAVAILABLE
    finally:
        first.close()
        second.close()
