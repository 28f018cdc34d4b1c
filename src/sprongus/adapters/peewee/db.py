"""Opens the database named by a URL, with the pragmas and file modes the vault needs."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee

from sprongus.adapters.peewee.sqlite_pragmas import BUSY_TIMEOUT_MS, SQLITE_PRAGMAS
from sprongus.adapters.peewee.sqlite_writers import WriterTurns, rest_of_budget
from sprongus.adapters.private_dirs import make_private_dir
from sprongus.domain.errors import DISK_FULL, ConfigError, KeyProviderError, StorageError, StorageUnavailable

# SQLite's primary result codes (the low byte of the extended code) that mean "try again later", never "bad data".
_SQLITE_DISK = {10, 13}  # SQLITE_IOERR (the -shm file cannot grow), SQLITE_FULL
_SQLITE_BUSY = {5, 6, 7}  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM
# Postgres SQLSTATE classes of an outage: connection exception, insufficient resources (53100 is a full disk),
# operator intervention (a statement timeout, a shutdown, cannot connect now), system error (I/O); and what a retry
# gets past: transaction rollback (40001 serialization failure, 40P01 deadlock) and a lock not available (55P03).
_PG_OUTAGE = ("08", "53", "57", "58", "40", "55P03")
# A login the server refused ("FATAL: password authentication failed", "database ... does not exist") is a setting
# to fix, not an outage, unless it says the server is starting, stopping or out of connection slots.
_PG_BUSY = ("starting up", "shutting down", "too many", "connection slots", "recovery mode")
_ROLLBACK_MASK = "cannot rollback - no transaction is active"


class VaultSqliteDatabase(peewee.SqliteDatabase):
    """Reads that keep working on a full disk, and the real cause of a failed write.

    On a full disk, the first process to open the vault must grow the -shm file (the shared WAL index) and cannot:
    every command failed, masked reads included, with "disk I/O error". Such a connection takes an exclusive lock
    instead, whose WAL index lives in memory: reads work, writes fail with "no space left on device". It is closed
    after each transaction, so the lock never outlives it and the next transaction tries the shared index again.
    """

    writer_turns: WriterTurns | None = None  # set by open_sqlite; a bare instance (tests) writes without a queue

    # peewee's typing stubs leave out its connection internals (_state, _connect, _add_conn_hooks): reached as Any.
    def _connect(self) -> sqlite3.Connection:
        me: Any = self
        base: Any = super()
        me._state.full_disk = False
        try:
            conn: sqlite3.Connection = base._connect()
            return conn
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in _SQLITE_DISK:
                raise
        conn = sqlite3.connect(self.database, timeout=me._timeout, isolation_level=None, **self.connect_params)
        try:
            conn.execute("PRAGMA locking_mode = exclusive")  # before the first read: no shared index at all
            me._add_conn_hooks(conn)
        except BaseException:
            conn.close()
            raise
        me._state.full_disk = True
        return conn

    def begin(self, lock_type: str | None = None) -> None:
        """A write transaction waits its turn in the vault's writer queue first (adapters/peewee/sqlite_writers.py)."""
        me: Any = self
        turns: WriterTurns | None = getattr(self, "writer_turns", None)
        if turns is None or (lock_type or "").upper() not in ("IMMEDIATE", "EXCLUSIVE"):
            super().begin(lock_type)
            return
        waited = turns.take()
        me._state.holds_turn = True
        try:
            full = int(dict(me._pragmas).get("busy_timeout", BUSY_TIMEOUT_MS))
            with rest_of_budget(self.connection, full, waited):
                super().begin(lock_type)
        except BaseException:
            self._give_back_turn()
            raise

    def checkpoint_every(self, pages: int) -> None:
        """The WAL's bound for connections opened from now on (and this thread's, if open)."""
        me: Any = self
        sizes = {"wal_autocheckpoint": pages, "journal_size_limit": pages * 4096}
        me._pragmas = [(name, sizes.get(name, value)) for name, value in me._pragmas]
        conn = me._state.conn
        if conn is not None:
            for name, value in sizes.items():
                conn.execute(f"PRAGMA {name} = {int(value)}")

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        # After SQLITE_FULL, IOERR, BUSY or NOMEM SQLite may roll the transaction back by itself; peewee's ROLLBACK
        # then failed with "cannot rollback - no transaction is active", and that error replaced the real cause.
        me: Any = self
        conn = me._state.conn
        try:
            if conn is not None and conn.in_transaction:
                super().rollback()
        finally:
            self._release()

    def _release(self) -> None:
        me: Any = self
        conn = me._state.conn
        if conn is None or not conn.in_transaction:  # a failed COMMIT leaves it open: the ROLLBACK that follows ends it
            self._give_back_turn()
        if getattr(me._state, "full_disk", False) and not self.in_transaction():
            self.close()

    def _give_back_turn(self) -> None:
        me: Any = self
        if getattr(me._state, "holds_turn", False):
            me._state.holds_turn = False
            if self.writer_turns is not None:
                self.writer_turns.give_back()


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/or/absolute` (SQLAlchemy style: four slashes for an absolute path)."""
    if not url.startswith("sqlite:///"):
        raise ConfigError("SPRONGUS_DATABASE_URL: a SQLite URL must look like sqlite:////absolute/path.db")
    return Path(unquote(url[len("sqlite:///"):])).expanduser()


def open_sqlite(path: Path) -> peewee.SqliteDatabase:
    """The vault file is created 0600 in a 0700 directory before SQLite touches it; WAL files inherit the mode.
    An existing vault, WAL or SHM file that other users may access is refused, before SQLite opens it."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _refuse_shared(path, os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = os.stat(companion).st_mode
        except FileNotFoundError:
            continue
        _refuse_shared(companion, mode)
    _use_wal(path)
    db = VaultSqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    db.writer_turns = WriterTurns(path, BUSY_TIMEOUT_MS / 1000)
    return db


def _refuse_shared(path: Path, mode: int) -> None:
    # Refused like the key file, with its error and exit code (7): the file holds the vault's ciphertexts, audit
    # trail and token hashes, and SQLite would give its -wal and -shm files the same loose mode. Using it silently
    # would keep the exposure going unnoticed.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyProviderError(f"vault file {path} is accessible by other users "
                               f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")


def _use_wal(path: Path, attempts: int = 100) -> None:
    """Switch the file to WAL (a lasting setting) before any other use. Two first connections converting a new
    file at once can get "database is locked" without the busy timeout applying (SQLite's deadlock avoidance)."""
    for attempt in range(attempts):
        try:
            with closing(sqlite3.connect(path, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode = wal")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _SQLITE_DISK:
                return  # a full disk: VaultSqliteDatabase still reads, and a write says why it cannot
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise storage_failure(exc) from None
        except sqlite3.DatabaseError as exc:  # not a database at all, or corrupt
            raise StorageError(f"database error: {exc}") from None
        time.sleep(0.01)


DEFAULT_CONNECT_TIMEOUT = 5.0  # seconds; the server's own connections take SPRONGUS_DB_CONNECT_TIMEOUT


def open_postgres(url: str, statement_timeout: float | None = None,
                  connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> peewee.PostgresqlDatabase:
    """A pooled database (adapters/peewee/postgres.py). `statement_timeout` in seconds; None for migrations, whose
    DDL and lock waits may rightly take longer than any request should."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError("SPRONGUS_DATABASE_URL: a Postgres URL must look like postgresql://user@host:5432/dbname")
    from sprongus.adapters.peewee.postgres import server_database

    conninfo = url.replace("postgres://", "postgresql://", 1)
    return server_database(conninfo, connect_timeout, statement_timeout)


def release_connection(db: peewee.Database) -> None:
    """The end of a request: this thread's pooled connection goes back to the pool, where it is checked before its
    next use. A SQLite connection stays open (reopening would cost the pragmas, and a file does not go away)."""
    from playhouse.pool import PooledDatabase

    if isinstance(db, PooledDatabase) and not db.is_closed() and not db.in_transaction():
        db.close()


def ping(db: peewee.Database) -> None:
    """One round trip; StorageError when the database does not answer."""
    with storage_errors():
        db.execute_sql("SELECT 1")  # type: ignore[no-untyped-call]


def open_database(url: str) -> peewee.Database:
    if url.startswith("sqlite:"):
        return open_sqlite(sqlite_path(url))
    return open_postgres(url)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Driver failures become the domain's StorageError (StorageUnavailable for an outage or a full disk), with
    the driver's first line (never a value)."""
    try:
        yield
    except (peewee.DatabaseError, peewee.InterfaceError) as exc:
        raise storage_failure(exc) from exc


def storage_failure(exc: BaseException) -> StorageError:
    """The domain error for a driver's exception (peewee's, or sqlite3's or psycopg's own)."""
    first = _first_line(exc)
    if first == _ROLLBACK_MASK and exc.__context__ is not None:  # the failure that made SQLite roll back
        return storage_failure(exc.__context__)
    outage = outage_of(exc)
    if outage == DISK_FULL:
        return StorageUnavailable(DISK_FULL)
    if outage is not None:
        return StorageUnavailable(f"database unavailable: {first}")
    if isinstance(exc, peewee.InterfaceError):
        return StorageError(f"database error: {type(exc).__name__}")
    return StorageError(f"database error: {first}")


def outage_of(exc: BaseException) -> str | None:
    """DISK_FULL, "database unavailable", or None when the failure is not an outage (a file that is not a
    database, a broken constraint, a refused statement: retrying would fail the same way)."""
    driver = _driver_error(exc)
    code = getattr(driver, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        return DISK_FULL if primary in _SQLITE_DISK else "database unavailable" if primary in _SQLITE_BUSY else None
    state = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    if state == "53100":  # disk_full
        return DISK_FULL
    if isinstance(state, str):
        return "database unavailable" if state.startswith(_PG_OUTAGE) else None
    # No SQLSTATE: the client library's own failure (a refused, lost or closed connection, a timeout), or a login
    # the server refused (psycopg gives those no SQLSTATE either).
    names = {kind.__name__ for kind in type(driver).__mro__}
    if not names & {"OperationalError", "InterfaceError"}:
        return None
    text = str(driver)
    return None if "FATAL:" in text and not any(word in text for word in _PG_BUSY) else "database unavailable"


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's exception under peewee's wrappers (`orig`, else the context; a failed connect is wrapped
    twice)."""
    while isinstance(exc, peewee.PeeweeException):
        inner = getattr(exc, "orig", None) or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
