"""Storage backends shared by the contract suites: each factory yields a fresh, migrated BoundModels.

Built without the application container. The Postgres factory goes through tests.pg.fresh_database, so it
skips when no server is reachable, or fails instead under SPRONGUS_REQUIRE_POSTGRES=1 (CI), like every other
Postgres test. It connects as the maintenance role: these contracts are about storage; tenancy under RLS is
tested in integration/.

Peewee keeps one connection per thread: `race` closes each worker thread's own connection when it is done, so
a Postgres database can be dropped afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sprongus.adapters.peewee.models import BoundModels

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def sqlite_models(tmp: Path) -> Iterator[BoundModels]:
    from sprongus.adapters.peewee.db import open_sqlite
    from sprongus.adapters.peewee.migrate import upgrade

    db = open_sqlite(tmp / "vault.db")
    try:
        upgrade(db)
        yield BoundModels(db)
    finally:
        db.close()


def postgres_models(tmp: Path) -> Iterator[BoundModels]:
    from sprongus.adapters.peewee.db import open_postgres
    from tests.pg import fresh_database

    with fresh_database(migrated=True) as database:
        db = open_postgres(database.maintenance_url)
        try:
            yield BoundModels(db)
        finally:
            db.close()


MODEL_FACTORIES: dict[str, Callable[[Path], Iterator[BoundModels]]] = {
    "sqlite": sqlite_models,
    "postgres": postgres_models,
}
BACKENDS = ["memory", *MODEL_FACTORIES]


@contextmanager
def backend(name: str, tmp: Path) -> Iterator[BoundModels | None]:
    """None for "memory" (its adapters need no storage), else the models of a fresh database."""
    if name == "memory":
        yield None
        return
    with contextmanager(MODEL_FACTORIES[name])(tmp) as models:
        yield models


def race(threads: int, attempt: Callable[[int], Any], models: BoundModels | None) -> list[Any]:
    """Runs attempt(0..threads-1) in as many threads, released together by a barrier; returns their results in
    thread order and re-raises the first error any of them hit."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            if models is not None:
                models.db.connect(reuse_if_open=True)  # connect first, so the threads really start together
            barrier.wait(timeout=30)
            results[index] = attempt(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            if models is not None:
                models.db.close()  # this thread's connection only

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"
    if errors:
        raise errors[0]
    return results
