"""A statement whose answer nobody reads goes out with the next one: one round trip instead of two.

A reveal's audit rows are the last statement of their group's transaction; sent with its COMMIT, the chain's lock is
held one round trip less (benchmarks/README.md: about 10% more Postgres reveals under load). Mixed into the server's
Postgres database (postgres.py ServerDatabase).

What does not change: statements run in the order they were given; an error of a waiting statement fails the call
that carried it (the server runs nothing after an error in a message), so the transaction fails all the same; a
rollback sends none of them. A statement waits only at the top level of a transaction: in a savepoint its error
would come with the ROLLBACK TO SAVEPOINT, and outside a transaction nothing follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee
import psycopg

_exception_wrapper: Any = getattr(peewee, "__exception_wrapper__")  # noqa: B009 - peewee's driver-error translator
Waiting = list[tuple[str, Sequence[Any]]]


class SendsLater:
    """For a peewee Postgres database on psycopg 3 (its `_state`, `connection()`, `execute_sql`, `commit`)."""

    _state: Any

    def execute_later(self, sql: str, params: Sequence[Any]) -> None:
        """`sql` (an INSERT with no RETURNING), sent with the next statement or COMMIT of this transaction."""
        me: Any = self
        if me.transaction_depth() != 1 or getattr(self._state, "savepoints", 0):
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
        waiting = self._take_later()
        if not waiting:
            super().commit()  # type: ignore[misc]
            return
        self._send_with(waiting, "COMMIT", None)

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
        """The waiting statements, then `sql` (if any), in one message, their values bound by the driver (psycopg's
        client-side binding: the server's quoting rules); a cursor at the last statement's answer."""
        me: Any = self
        given = [*waiting, *([(sql, params or ())] if sql is not None else [])]
        # A statement given no values has no placeholders: a `%` of its own must not read as one.
        statements = [statement if values else statement.replace("%", "%%") for statement, values in given]
        flat: list[Any] = [value for _, values in given for value in values]
        with _exception_wrapper:
            cursor = psycopg.ClientCursor(me.connection())
            cursor.execute("; ".join(statements), flat)
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
