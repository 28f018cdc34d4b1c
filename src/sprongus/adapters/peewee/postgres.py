"""The Postgres database of a server: pooled connections that survive an outage, and bounded waits.

A connection lost to a restart, a failover or `pg_terminate_backend` used to stay in its thread for good, so every
later request failed until the process was restarted; a database that stopped answering held requests for as long
as the operating system kept the socket. Here:

- connections live in playhouse's pool, returned after each request (`release`); one the server has closed is
  discarded when it is taken out, so the request after an outage reconnects instead of failing;
- connecting is bounded (libpq `connect_timeout`), statements are bounded by the server (`statement_timeout`) and
  their answers by the client (a deadline a little longer: a server that stopped answering cannot cancel anything);
- TCP keepalives notice an idle connection whose peer vanished without closing it.

Imported only for a Postgres URL: the local CLI on SQLite never loads the driver.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import select
import threading
import time
from typing import Any, TypeVar

import peewee
import psycopg
from playhouse.pool import PoolConnection, PooledDatabase, PooledPostgresqlDatabase
from psycopg.abc import PQGen
from psycopg.conninfo import conninfo_to_dict

from sprongus.adapters.peewee.conninfo_values import check_conninfo_values
from sprongus.adapters.peewee.dialect import BeginWith
from sprongus.adapters.peewee.send_later import SendsLater, driver_errors
from sprongus.domain.errors import ConfigError

RV = TypeVar("RV")
# Idle 15 s, then a probe every 5 s, 3 unanswered: a vanished peer is noticed within about 30 s. A URL that sets
# any of these keeps its own.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "15", "keepalives_interval": "5", "keepalives_count": "3"}
# How much longer than the server's statement timeout the client waits: the server's own cancellation (a clean
# error, and the connection stays usable) must arrive first whenever the server still answers at all.
REPLY_GRACE = 2.0
# A connection older than this is closed when it comes back or is taken out, so none lives for ever (a failover
# behind a DNS name, server-side idle limits).
MAX_AGE = 300


_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"


class _DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most `reply_timeout` for any answer, then closes itself.

    psycopg (3.3 on) routes every wait of a cursor, commit and rollback through `wait`, which takes a timeout but
    is given none; libpq has no per-query client timeout at all. Keepalives do not help here: a stopped server's
    kernel (or a proxy) still acknowledges every packet."""

    reply_timeout: float | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        limit = self.reply_timeout if timeout is None else timeout
        try:
            return super().wait(gen, interval, limit)
        except psycopg.errors._WaitTimeout:  # psycopg's only signal that its wait ran out
            # The query may still run and its answer may still come: the connection's state is unknown, so it is
            # closed here (the pool then discards it) rather than reused for the next statement.
            self.close()
            raise psycopg.OperationalError(f"the database did not answer within {limit:g} s") from None


class _DeadlineAdapter(peewee.Psycopg3Adapter):
    def connect(self, db: Any, **params: Any) -> Any:
        params.setdefault("conninfo", db.database)
        conn = _DeadlineConnection.connect(**params)
        conn.reply_timeout = db.reply_timeout
        return conn


class ServerDatabase(SendsLater, PooledPostgresqlDatabase):  # type: ignore[misc]
    """playhouse's pool, with the driver's deadline and a check of a pooled connection that costs no round trip;
    a statement whose answer nobody reads can wait for the next one (send_later.py)."""

    psycopg3_adapter = _DeadlineAdapter

    def __init__(self, url: str, reply_timeout: float | None, **kwargs: Any) -> None:
        self.reply_timeout = reply_timeout
        self._owners: dict[int, threading.Thread] = {}
        super().__init__(url, **kwargs)
        # peewee's own lock serializes every thread's connect and close, although each thread's connection state
        # is its own: during an outage one thread's connect timeout held up all the others. The pool's structures
        # keep their lock (_pool_lock).
        self._lock = peewee._NoopLock()

    def begin(self, isolation_level: Any = None) -> None:
        """Every transaction READ COMMITTED, whatever the database's default: an audit append reads the chain's head
        after it takes the chain's lock, which needs a fresh snapshot per statement. Under a database default of
        REPEATABLE READ the snapshot was taken by the statement that waited for the lock, so an append that had
        waited chained to the head before the one it waited for: a fork in the trail.

        dialect.py's BeginWith: BEGIN and a statement in one message (one round trip less)."""
        self._state.begun_rows = None  # never the rows of an earlier BEGIN
        self.forget_later()
        if not isinstance(isolation_level, BeginWith):
            if isolation_level is not None:  # silently READ COMMITTED instead would be worse than refusing
                raise ValueError("every transaction here is READ COMMITTED: no other isolation level")
            with driver_errors:
                self.cursor().execute(_BEGIN)
            return
        try:
            self._state.begun_rows = self.rows_of_last(_BEGIN + "; " + isolation_level)
        except Exception:
            # BEGIN ran and its companion failed (a lock wait past statement_timeout): peewee rolls back only a
            # transaction it entered, so without this the connection stayed in an aborted transaction.
            conn = self._state.conn
            if conn is not None and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            raise

    def rows_of_last(self, statements: str) -> list[Any]:
        """Send several statements (no parameters) in one message; the rows of the last one."""
        self.send_later()  # what waits goes first (send_later.py)
        with driver_errors:
            cursor = self.cursor()
            cursor.execute(statements)
            return _rows_of_last(cursor)

    def idle(self) -> bool:
        """The server holds no transaction on this thread's connection (libpq's own record: no round trip)."""
        status: int = self.connection().info.transaction_status
        return status == psycopg.pq.TransactionStatus.IDLE

    def bound_rows_of_last(self, statements: str, params: tuple[Any, ...]) -> list[Any]:
        """Send several statements in one message with their `%s` values bound by the driver (psycopg's client-side
        binding: the server's quoting rules, for the connection's encoding); the rows of the last one. Outside a
        transaction the message is one implicit transaction of its own: `set_config(..., true)` in it reaches the
        statements after it and ends with it, and an error rolls the whole of it back."""
        self.send_later()  # what waits goes first (send_later.py)
        with driver_errors:
            cursor = psycopg.ClientCursor(self.connection())
            cursor.execute(statements, params)
            return _rows_of_last(cursor)

    @property
    def begun_rows(self) -> list[Any]:
        """The rows of the last statement sent with this thread's BEGIN (dialect.BeginWith)."""
        rows: list[Any] | None = getattr(self._state, "begun_rows", None)
        if rows is None:
            raise RuntimeError("no BEGIN with a statement ran in this transaction")
        return rows

    def _connect(self) -> Any:
        """A pooled connection if one is fit to use, else a new one, opened outside the pool's lock: playhouse
        connects while holding it, so during an outage each thread's connect timeout queued behind the others'
        (the fourth request of a worker waited four timeouts) and no thread could even give a connection back."""
        with self._pool_lock:
            self._reclaim()
            conn = self._reusable()
            if conn is not None:
                return conn
        conn = super(PooledDatabase, self)._connect()  # the driver's, past the pool: bounded by connect_timeout
        now = time.time()
        with self._pool_lock:
            key = self.conn_key(conn)
            self._in_use[key] = PoolConnection(now, conn, now)
            self._owners[key] = threading.current_thread()
        return conn

    def _reusable(self) -> Any:
        """Under the pool's lock: the oldest idle connection that is neither closed nor stale, or None."""
        while self._connections:
            stamp, _counter, conn = heapq.heappop(self._connections)
            if self._is_closed(conn):
                continue
            if self._stale_timeout and self._is_stale(stamp):
                self._close_raw(conn)
                continue
            key = self.conn_key(conn)
            self._in_use[key] = PoolConnection(stamp, conn, time.time())
            self._owners[key] = threading.current_thread()
            return conn
        return None

    def _reclaim(self) -> None:
        """Close the connections of threads that ended without giving them back. peewee's per-thread state dies
        with its thread, but the pool would keep such a connection "in use" for the life of the process: a short
        thread that touched the database (a worker pool's, a test's) would leak one each time."""
        for key, owner in list(self._owners.items()):
            if key not in self._in_use:
                del self._owners[key]  # given back, or closed
            elif not owner.is_alive():
                del self._owners[key]
                self._close_raw(self._in_use.pop(key).connection)

    def _is_closed(self, conn: Any) -> bool:
        """Taking a connection out of the pool: discard it when it is closed, or when the server has said anything
        while it sat idle. An idle connection has nothing to read unless the server ended it (terminated backend,
        restart, shutdown: a FATAL message and end of file) or keepalives found its peer gone; a stray notice only
        costs a reconnect. playhouse's own check asks the server (SELECT 1) on every checkout: a round trip per
        request, and one more wait on a database that does not answer."""
        if conn.closed or conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return True
        try:
            return _readable(conn.fileno())
        except (OSError, ValueError):
            return True


def _rows_of_last(cursor: Any) -> list[Any]:
    """A message of several statements has one result per statement, in order: the last one's rows."""
    rows: list[Any] = cursor.fetchall() if _has_rows(cursor) else []
    while cursor.nextset():
        rows = cursor.fetchall() if _has_rows(cursor) else []
    return rows


def _has_rows(cursor: Any) -> bool:
    """The current result is a statement's rows (a SELECT's, even none), not a command's status (BEGIN, SET). What
    `cursor.description is not None` says for these statements, without building a Column object for every column
    each time it is read (~25 a reveal, ~10% of the client's time in a masked read's database call)."""
    result = cursor.pgresult
    return result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # Windows: no poll()
    return bool(readable)


def _unreadable_part(exc: Exception) -> str:
    if str(exc).startswith("invalid URI query parameter"):
        return "a query parameter that is not one of libpq's connection parameters"
    return "a `%` must start a two-digit hex escape: `%25` for a `%` itself, in a password too"


def _check_parts(given: dict[str, Any]) -> None:
    """A raw `/` in the password ends libpq's host part there: the user name becomes the host and the password's
    first part the port (or, digits, the rest a database name holding the `@` and the host), which libpq then
    quoted in "invalid integer value ... for connection option "port"" on stderr and every request's log line."""
    ports = str(given.get("port") or "").split(",")
    dbname = str(given.get("dbname") or "")
    if any(port and not (port.isascii() and port.isdigit()) for port in ports) or ("@" in dbname and "/" in dbname):
        raise ConfigError("SPRONGUS_DATABASE_URL: write a `/` in the user name or password as %2F (the port, or "
                          "the database name, reads as part of a password)")


def server_database(url: str, connect_timeout: float, statement_timeout: float | None) -> ServerDatabase:
    """The pooled database for `url`. Without `statement_timeout` (migrations, whose DDL and lock waits may take
    long) neither the server nor the client bounds a statement; connecting is always bounded."""
    try:
        given = conninfo_to_dict(url)
    except (psycopg.ProgrammingError, UnicodeDecodeError) as exc:  # `%ff`: an escape that is no UTF-8
        # libpq's message quotes the part it could not read, which may be the password: only its kind is said.
        raise ConfigError("SPRONGUS_DATABASE_URL: libpq cannot read it as a connection URL ("
                          + _unreadable_part(exc) + ")") from None
    _check_parts(given)
    check_conninfo_values(given)
    params: dict[str, Any] = {key: value for key, value in KEEPALIVES.items() if key not in given}
    params["connect_timeout"] = str(max(2, math.ceil(connect_timeout)))  # libpq counts whole seconds, 2 at least
    reply_timeout = None
    if statement_timeout is not None:
        # Appended after the URL's own options: the later -c wins, so the setting is what applies.
        own = str(given.get("options") or "")
        params["options"] = f"{own} -c statement_timeout={math.ceil(statement_timeout * 1000)}".strip()
        reply_timeout = statement_timeout + REPLY_GRACE
    # No cap on the pool: each thread holds at most one connection, so the server's threads bound them.
    return ServerDatabase(url, reply_timeout, max_connections=None, stale_timeout=MAX_AGE, prefer_psycopg3=True,
                          **params)
