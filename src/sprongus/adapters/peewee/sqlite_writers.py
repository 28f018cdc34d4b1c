"""One queue for the writers of a SQLite vault, across threads and processes.

SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps 1, 2, 5, 10 ... up to 100 ms
between tries. Under a burst of reveals (each appends an audit row) and writes from two gunicorn workers, a waiter
slept long after the lock was free: the writes' p99 was ~470 ms and the CPUs sat idle. Here a writer first takes
a thread lock (its process's threads queue in order and wake at once) and then an advisory lock on a file beside
the vault (the processes queue, polled every few hundred microseconds), and only then asks SQLite for the write
lock, which is then almost always free. SQLite's own locking still decides: a foreign writer (the sqlite3 shell) is
waited for by the busy timeout, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sprongus.adapters.peewee.forking import reset_in_forked_children
from sprongus.domain.errors import StorageUnavailable

_FIRST_NAP, _LONGEST_NAP = 0.00005, 0.0005  # seconds between tries for another process's turn


class WriterTurns:
    """Taken before `BEGIN IMMEDIATE`, given back after COMMIT or ROLLBACK. Not reentrant: SQLite has no nested
    BEGIN either (peewee nests with savepoints, which do not come here)."""

    def __init__(self, database: Path, timeout: float) -> None:
        self._path = database.with_name(database.name + "-writers")
        self._timeout = timeout
        self._threads = threading.Lock()
        # A file object, not a bare descriptor: it is closed when these turns are dropped (a process that builds
        # many vaults, the test suite, ran out of descriptors). Opened per process: one inherited across fork
        # would share the parent's lock.
        self._file: BinaryIO | None = None
        self._pid = 0
        reset_in_forked_children(self)

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()

    def take(self) -> float:
        """Seconds waited; StorageUnavailable when the turn did not come within the timeout."""
        started = time.monotonic()
        deadline = started + self._timeout
        if not self._threads.acquire(timeout=self._timeout):
            raise StorageUnavailable("the vault is busy: no write turn within the busy timeout")
        try:
            fd = self._descriptor()
            nap = _FIRST_NAP
            while fd >= 0:  # without a lock file (a full disk, a read-only directory) SQLite alone queues processes
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StorageUnavailable("the vault is busy: no write turn within the busy timeout") from None
                except OSError:  # no advisory locks here (ENOLCK on some network or FUSE file systems): as above
                    self._drop_descriptor(reopen=False)
                    break
                time.sleep(nap)
                nap = min(nap * 2, _LONGEST_NAP)
            return time.monotonic() - started
        except BaseException:
            self._threads.release()
            raise

    def give_back(self) -> None:
        try:
            if self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        except OSError:  # closing the descriptor releases the lock for sure; the next turn opens the file again
            self._drop_descriptor(reopen=True)
        finally:
            self._threads.release()

    def _drop_descriptor(self, reopen: bool) -> None:
        dropped, self._file = self._file, None
        if reopen:
            self._pid = 0
        if dropped is not None:
            with contextlib.suppress(OSError):
                dropped.close()

    def _descriptor(self) -> int:
        if self._pid != os.getpid():
            self._drop_descriptor(reopen=False)  # in a forked child: its copy of the parent's file
            try:
                self._file = open(self._path, "ab", opener=_private)  # noqa: SIM115 - kept open while in use
            except OSError:
                self._file = None  # tried again in the next process only: one failed open per process is enough
            self._pid = os.getpid()
        return -1 if self._file is None else self._file.fileno()

    def _after_fork(self) -> None:
        """In a forked child: a thread lock held by another thread at the fork would never be released here."""
        self._threads = threading.Lock()


def _private(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


@contextmanager
def rest_of_budget(connection: Callable[[], sqlite3.Connection], busy_ms: int, waited: float) -> Iterator[None]:
    """SQLite's busy timeout for the BEGIN that follows a turn: what the turn left of it. One budget for both: a
    foreign writer (the sqlite3 shell) holding the lock made each queued writer wait a busy timeout for its turn
    and then another for the lock."""
    if waited < 0.001:  # the usual case: no wait, no statement
        yield
        return
    conn = connection()
    conn.execute(f"PRAGMA busy_timeout = {max(1, busy_ms - int(waited * 1000))}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")

