"""A statement whose answer nobody reads goes out with the next one: one round trip instead of two.

A reveal's audit rows are the last statement of their group's transaction; sent with its COMMIT, the chain's lock is
held one round trip less (Postgres reveals 1.02-1.15x in side-by-side runs, benchmarks/bench_ab.py). Mixed into the
server's Postgres database (postgres.py ServerDatabase).

What does not change: statements run in the order they were given, each bound and bounded in time as if sent alone;
an error of a waiting statement fails the call that carried it (the server runs nothing after an error in a message),
so the transaction fails all the same, and a transaction the server aborted refuses its COMMIT even if that error was
caught; a rollback sends none of them. A statement waits only at the top level of a plain transaction: in a
savepoint its error would come with the ROLLBACK TO SAVEPOINT, under manual_commit() the caller sends BEGIN and
COMMIT, and outside a transaction nothing follows it. They skip peewee's query log and query hooks (unused here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee
import psycopg

driver_errors: Any = getattr(peewee, "__exception_wrapper__")  # noqa: B009 - peewee's driver-error translator
Waiting = list[tuple[str, Sequence[Any]]]


class SendsLater:
    """For a peewee Postgres database on psycopg 3 (its `_state`, `connection()`, `execute_sql`, `commit`)."""

    _state: Any

    def execute_later(self, sql: str, params: Sequence[Any]) -> None:
        """`sql` (an INSERT with no RETURNING), sent with the next statement or COMMIT of this transaction."""
        me: Any = self
        top = me.top_transaction()  # a plain transaction: not manual_commit(), whose BEGIN is the caller's
        if type(top) is not peewee._transaction or me.transaction_depth() != 1 or getattr(self._state, "savepoints", 0):
            me.execute_sql(sql, params)
            return
        waiting: Waiting | None = getattr(self._state, "later", None)
        if waiting is None:
            self._state.later = waiting = []
        waiting.append((sql, params))

    def forget_later(self) -> None:
        """At BEGIN: never the statements of an earlier transaction (one whose connection was lost)."""
        self._state.later = None
        self._state.savepoints = 0

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        waiting = self._take_later()
        if not waiting:
            return super().execute_sql(sql, params)  # type: ignore[misc]
        return self._send_with(waiting, sql, params)

    def commit(self) -> None:
        """Refused, not sent, when the server has aborted the transaction: its COMMIT would answer ROLLBACK with no
        error, so a failure that someone caught and set aside (a waiting statement's, which surfaces with whatever
        statement carried it) would pass for a commit."""
        waiting = self._take_later()
        conn = self._state.conn
        if conn is not None and conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            raise peewee.InternalError("the transaction failed earlier and was not committed")
        if not waiting:
            super().commit()  # type: ignore[misc]
            return
        self._send_with(waiting, "COMMIT", ())

    def rollback(self) -> None:
        self._take_later()  # never sent: nothing of them to undo
        super().rollback()  # type: ignore[misc]

    def savepoint(self) -> Any:
        return _CountedSavepoint(self)

    def send_later(self) -> None:
        """Before a message of several statements of its own: the waiting ones go first, on their own."""
        waiting = self._take_later()
        if waiting:
            self._send_with(waiting, None, None)

    def _take_later(self) -> Waiting:
        waiting: Waiting | None = getattr(self._state, "later", None)
        if not waiting:
            return []
        self._state.later = None
        return waiting

    def _send_with(self, waiting: Waiting, sql: str | None, params: Any) -> Any:
        """The waiting statements, then `sql` (if any), in one message; a cursor at the last statement's answer.

        Each statement is bound on its own (psycopg's client-side binding: the server's quoting rules), as peewee
        would send it (`params or ()`: `%%` is a literal `%`), so a wrong count of values fails that statement
        instead of sliding into the next; each ends on a line of its own, so a trailing `--` comment ends there.
        The client's wait for the answer is the deadline of one statement for each of them, as when they went one by
        one (the server bounds each by statement_timeout)."""
        me: Any = self
        given = [*waiting, *([(sql, params)] if sql is not None else [])]
        conn = me.connection()
        deadline = getattr(conn, "reply_timeout", None)
        with driver_errors:
            cursor = psycopg.ClientCursor(conn)
            message = "\n;\n".join(cursor.mogrify(statement, values or ()) for statement, values in given)
            if deadline is not None:
                conn.reply_timeout = deadline * len(given)
            try:
                cursor.execute(message)
            finally:
                if deadline is not None:
                    conn.reply_timeout = deadline
            while cursor.nextset():
                pass
        return cursor


class _CountedSavepoint(peewee._savepoint):
    """peewee counts transactions, not savepoints: execute_later must know it is inside one."""

    def __enter__(self) -> Any:
        state = self.db._state
        state.savepoints = getattr(state, "savepoints", 0) + 1
        try:
            return super().__enter__()
        except BaseException:
            state.savepoints -= 1
            raise

    def __exit__(self, *exc: Any) -> Any:
        try:
            return super().__exit__(*exc)
        finally:
            self.db._state.savepoints -= 1
