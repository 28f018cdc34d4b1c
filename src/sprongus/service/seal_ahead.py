"""Sealing a write's value before its write transaction, where that transaction holds the whole store.

On SQLite one write transaction runs at a time, and with a KMS, sealing a new version is a round trip (its data key
wrapped by the master key). Made inside the transaction, that round trip held every other write and every reveal's
audit row: 8 writers made 40 writes/s in all at 20 ms, and reveals waited up to 0.8 s behind them. `set` and
`rollback` read the version first, seal, and then open the transaction, which uses the seal only if that version is
still the next one (Sealer.seal's `ahead`). With a local key the seal costs less than the read before it, and on
Postgres a writer locks only its own row, so the container turns this on for SQLite with a KMS only.

Writes of one key in this process take turns around the whole (read, seal, transaction): without them, writers of a
hot key all sealed for the same number, and all but one sealed again inside the transaction, holding the store for a
second round trip. Writers in other processes can still take the number; the transaction then seals again (so a key
written hard from several processes costs up to two KMS calls a version). A turn is waited for TURN_WAIT at most:
keys share a lock by hash, and a write that waited that long seals inside its transaction instead, as before, so
the store's own busy timeout still bounds its wait.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sprongus.domain.scope import Scope

STRIPES = 64  # locks shared by hash: two keys on one stripe take turns too, which is what every write did before
TURN_WAIT = 5.0  # seconds: about one slow KMS call and a commit ahead of this write


class SealAhead:
    def __init__(self, stripes: int = STRIPES, turn_wait: float = TURN_WAIT) -> None:
        self._stripes = stripes
        self._turn_wait = turn_wait
        self._pid = os.getpid()
        self._turns = [threading.Lock() for _ in range(stripes)]

    @contextmanager
    def turn(self, scope: Scope, key: str) -> Iterator[bool]:
        """(scope, key)'s turn in this process: True once it is this caller's, False if it waited `turn_wait` in
        vain (the caller then seals inside its transaction)."""
        lock = self.lock_of(scope, key)
        mine = lock.acquire(timeout=self._turn_wait)
        try:
            yield mine
        finally:
            if mine:
                lock.release()

    def lock_of(self, scope: Scope, key: str) -> threading.Lock:
        """A forked child (a gunicorn worker) gets its own locks: one held by another thread of the parent at the
        fork would never be released in the child."""
        if self._pid != os.getpid():
            self._pid, self._turns = os.getpid(), [threading.Lock() for _ in range(self._stripes)]
        return self._turns[zlib.crc32(f"{scope}\x00{key}".encode()) % self._stripes]
