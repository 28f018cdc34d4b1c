"""Group commit of audit rows: concurrent appends of one process share one write transaction.

Every reveal appends an audit row on its own, and the chain makes appends one at a time. On SQLite a transaction
also holds the vault's only write lock, and a thread holding it can lose the interpreter to its siblings for
milliseconds, so a burst of reveals spent most of its time queueing for the lock. Here the first thread to arrive
leads: it takes the write transaction and then collects everything queued meanwhile; the others wait. Each caller
returns only after the transaction holding its rows has committed, and gets the failure if it did not: the audit
stays fail-closed, in chain order, and written before any answer leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from sprongus.adapters.peewee.forking import reset_in_forked_children
from sprongus.domain.records import AuditEvent

MAX_GROUP = 256  # events in one transaction; a batch reveal's own rows may exceed it (one caller is never split)


class _Waiter:
    __slots__ = ("done", "error", "events", "lead")

    def __init__(self, events: Sequence[AuditEvent]) -> None:
        self.events = events
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.lead = False


class GroupCommit:
    """`write(groups)` appends every group, in order, in one transaction: all committed, or raises. A failure that
    `is_outage` says is an outage fails the whole group; any other is retried caller by caller."""

    def __init__(self, write: Callable[[list[Sequence[AuditEvent]]], None],
                 is_outage: Callable[[BaseException], bool]) -> None:
        self._write = write
        self._is_outage = is_outage
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False
        reset_in_forked_children(self)

    def _after_fork(self) -> None:
        """A forked child has none of the parent's threads: no leader to wait for, nobody queued."""
        self._lock = threading.Lock()
        self._queue = []
        self._leading = False

    def append(self, events: Sequence[AuditEvent]) -> None:
        me = _Waiter(events)
        with self._lock:
            self._queue.append(me)
            me.lead = not self._leading
            self._leading = True
        while not me.lead:
            me.done.wait()
            if me.error is not None:
                raise me.error
            if not me.lead:  # written by a leader
                return
        self._lead(me)
        if me.error is not None:
            raise me.error

    def _lead(self, me: _Waiter) -> None:
        """Write until this caller's rows are in, then hand the lead to the next in the queue (if any)."""
        try:
            while True:
                groups = self._take()
                self._commit(groups)
                if me in groups:
                    return
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False

    def _take(self) -> list[_Waiter]:
        with self._lock:
            taken: list[_Waiter] = []
            count = 0
            while self._queue and (not taken or count + len(self._queue[0].events) <= MAX_GROUP):
                waiter = self._queue.pop(0)
                taken.append(waiter)
                count += len(waiter.events)
            return taken

    def _commit(self, group: list[_Waiter]) -> None:
        try:
            self._write([w.events for w in group])
        except BaseException as exc:
            if len(group) == 1 or not isinstance(exc, Exception) or self._is_outage(exc):
                # An outage fails the whole group at once: caller by caller, each would wait out the outage again.
                for waiter in group:
                    waiter.error = exc
            else:  # one caller's bad row must not fail the others: each tries again on its own
                for waiter in group:
                    self._commit([waiter])
                return
        for waiter in group:
            if not waiter.lead:
                waiter.done.set()

