"""Opens the database named by a URL, with the pragmas and file modes the vault needs."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee

from sprongus.domain.errors import ConfigError, KeyProviderError, StorageError

SQLITE_PRAGMAS = {
    # First: every later pragma (journal_mode needs a lock) and statement then waits instead of failing.
    "busy_timeout": 30_000,  # ms: wait for the write lock instead of failing with "database is locked"
    "journal_mode": "wal",  # readers never block the writer
    "synchronous": "normal",  # safe with WAL: a power cut may lose the last commits, never corrupt
    "foreign_keys": 1,
}


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/or/absolute` (SQLAlchemy style: four slashes for an absolute path)."""
    if not url.startswith("sqlite:///"):
        raise ConfigError("SPRONGUS_DATABASE_URL: a SQLite URL must look like sqlite:////absolute/path.db")
    return Path(unquote(url[len("sqlite:///"):])).expanduser()


def open_sqlite(path: Path) -> peewee.SqliteDatabase:
    """The vault file is created 0600 in a 0700 directory before SQLite touches it; WAL files inherit the mode.
    An existing vault, WAL or SHM file that other users may access is refused, before SQLite opens it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    return peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, check_same_thread=False)


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
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise StorageError(f"database error: {exc}") from None
        except sqlite3.DatabaseError as exc:  # not a database at all, or corrupt
            raise StorageError(f"database error: {exc}") from None
        time.sleep(0.01)


def open_postgres(url: str) -> peewee.PostgresqlDatabase:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError("SPRONGUS_DATABASE_URL: a Postgres URL must look like postgresql://user@host:5432/dbname")
    conninfo = url.replace("postgres://", "postgresql://", 1)
    return peewee.PostgresqlDatabase(conninfo, prefer_psycopg3=True)


def open_database(url: str) -> peewee.Database:
    if url.startswith("sqlite:"):
        return open_sqlite(sqlite_path(url))
    return open_postgres(url)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Driver failures become the domain's StorageError, with the driver's first line (never a value)."""
    try:
        yield
    except peewee.DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"database error: {first}") from exc
    except peewee.InterfaceError as exc:
        raise StorageError(f"database error: {type(exc).__name__}") from exc
