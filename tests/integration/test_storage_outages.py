"""Which driver failures are outages (StorageUnavailable, exit 8, "try again") and which are not (StorageError):
a full disk, a lost or refused connection and a busy database are; a file that is not a database, a broken rule
and a login the server refused are not. And a failed write keeps its own cause: SQLite rolls back by itself after
SQLITE_FULL or IOERR, and peewee's second ROLLBACK used to replace the cause with "cannot rollback"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee
import psycopg
import pytest
from psycopg import errors as pg

from sprongus.adapters.peewee.db import open_sqlite, storage_errors, storage_failure
from sprongus.domain.errors import DISK_FULL, StorageError, StorageUnavailable


def wrap(kind: type[peewee.PeeweeException], driver: Exception) -> peewee.PeeweeException:
    """As peewee raises a driver's exception: its type, the driver's exception as `orig`, the same args."""
    return kind(driver, *driver.args)


def sqlite_error(code: int, message: str,
                 kind: type[sqlite3.Error] = sqlite3.OperationalError) -> peewee.PeeweeException:
    driver = kind(message)
    driver.sqlite_errorcode = code  # type: ignore[attr-defined]
    return wrap(peewee.OperationalError if kind is sqlite3.OperationalError else peewee.DatabaseError, driver)


@pytest.mark.parametrize(("error", "message"), [
    (sqlite_error(13, "database or disk is full"), DISK_FULL),
    (sqlite_error(10 | (19 << 8), "disk I/O error"), DISK_FULL),  # SQLITE_IOERR_SHMSIZE: the -shm cannot grow
    (sqlite_error(5, "database is locked"), "database unavailable: database is locked"),
    (wrap(peewee.OperationalError, pg.DiskFull("could not extend file")), DISK_FULL),
    (wrap(peewee.OperationalError, pg.AdminShutdown("terminating connection due to administrator command")),
     "database unavailable: terminating connection due to administrator command"),
    (wrap(peewee.OperationalError, pg.QueryCanceled("canceling statement due to statement timeout")),
     "database unavailable: canceling statement due to statement timeout"),
    (wrap(peewee.OperationalError, psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused')),
     'database unavailable: connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'),
    (wrap(peewee.InterfaceError, psycopg.InterfaceError("the connection is closed")),
     "database unavailable: the connection is closed"),
    (wrap(peewee.OperationalError, psycopg.OperationalError(
        'connection failed: connection to server at "db", port 5432 failed: FATAL:  the database system is '
        "starting up")), None),
])
def test_outages_are_storage_unavailable(error: Exception, message: str | None) -> None:
    failure = storage_failure(error)

    assert isinstance(failure, StorageUnavailable)
    if message is not None:
        assert failure.message == message


@pytest.mark.parametrize("error", [
    sqlite_error(26, "file is not a database", sqlite3.DatabaseError),
    sqlite_error(11, "database disk image is malformed", sqlite3.DatabaseError),
    sqlite_error(19, "UNIQUE constraint failed: secret_kv.key_name", sqlite3.IntegrityError),
    sqlite_error(8, "attempt to write a readonly database"),
    wrap(peewee.IntegrityError, pg.UniqueViolation("duplicate key value violates unique constraint")),
    wrap(peewee.ProgrammingError, pg.InsufficientPrivilege("permission denied for table secret_kv")),
    wrap(peewee.OperationalError, psycopg.OperationalError(
        'connection failed: connection to server at "db", port 5432 failed: FATAL:  password authentication '
        'failed for user "app"')),
    wrap(peewee.OperationalError, psycopg.OperationalError(
        'connection failed: connection to server at "db", port 5432 failed: FATAL:  database "nope" does not exist')),
])
def test_a_refused_statement_or_login_and_a_file_that_is_no_database_are_not_outages(error: Exception) -> None:
    failure = storage_failure(error)

    assert type(failure) is StorageError


def test_a_failed_write_keeps_its_cause_after_sqlite_rolled_back_by_itself(tmp_path: Path) -> None:
    db = open_sqlite(tmp_path / "vault.db")
    db.execute_sql("CREATE TABLE t (x INTEGER)")  # type: ignore[no-untyped-call]

    with pytest.raises(StorageUnavailable, match=DISK_FULL), storage_errors(), db.atomic("IMMEDIATE"):
        db.execute_sql("INSERT INTO t VALUES (1)")  # type: ignore[no-untyped-call]
        db.execute_sql("ROLLBACK")  # type: ignore[no-untyped-call]  # what SQLite does after SQLITE_FULL
        raise sqlite_error(13, "database or disk is full")

    with pytest.raises(LookupError, match="the real cause"), db.atomic("IMMEDIATE"):
        db.execute_sql("ROLLBACK")  # type: ignore[no-untyped-call]
        raise LookupError("the real cause")  # not a database error at all: it must still win

    assert db.execute_sql("SELECT count(*) FROM t").fetchone() == (0,)  # type: ignore[no-untyped-call]
    with db.atomic("IMMEDIATE"):  # the connection is usable again
        db.execute_sql("INSERT INTO t VALUES (2)")  # type: ignore[no-untyped-call]
    assert db.execute_sql("SELECT x FROM t").fetchall() == [(2,)]  # type: ignore[no-untyped-call]
    db.close()
