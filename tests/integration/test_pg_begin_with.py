"""`BEGIN; SELECT pg_advisory_xact_lock(...)` goes in one message. When the lock wait hits statement_timeout, BEGIN
has already run, and peewee does not roll back a failure inside atomic().__enter__: the connection stayed in an
aborted transaction, so every retry and every later statement of the thread failed (25P02) until the connection
went back to the pool. It is rolled back now."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from sprongus.adapters.peewee.audit import AUDIT_LOCK_ID
from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.domain.audit_rows import AuditFilter
from sprongus.domain.errors import AuditUnavailable, StorageUnavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import Stack, alice, build, environment, new_key
from tests.integration.test_pg_one_message_read import queries, round_trips, wire
from tests.pg import PgDatabase


def test_a_timed_out_audit_lock_leaves_no_aborted_transaction(pg_db: PgDatabase) -> None:
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_DB_STATEMENT_TIMEOUT": "0.5",
                  "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    scope = Scope.user("alice")
    made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-pg-9e2d"))
    holder = psycopg.connect(pg_db.admin_url)
    try:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (0x53505241,))  # another append holds the chain lock
        with pytest.raises(AuditUnavailable):
            made.secrets.get(alice(), scope, "token", reveal=True)
        holder.commit()  # the lock is free again
        status = psycopg.pq.TransactionStatus(made.db.connection().pgconn.transaction_status)
        assert status == psycopg.pq.TransactionStatus.IDLE, f"connection left {status.name}"
        assert made.secrets.get(alice(), scope, "token", reveal=True).value is not None
    finally:
        holder.close()
        made.close()


class Recorded:
    """A cursor that notes each message it sends (psycopg's cursors take no new attributes)."""

    def __init__(self, cursor: Any, sent: list[str]) -> None:
        self._cursor, self._sent = cursor, sent

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        self._sent.append(str(query))
        return self._cursor.execute(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@contextmanager
def messages(made: Stack) -> Iterator[list[str]]:
    """Every message the stack's database sends meanwhile, in order."""
    sent: list[str] = []
    original = made.db.cursor
    made.db.cursor = lambda *args, **kwargs: Recorded(original(*args, **kwargs), sent)  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        made.db.cursor = original  # type: ignore[method-assign]


def _locked_head_read(message: str) -> bool:
    """The chain's lock, then the read of its head, in this one message."""
    lock, head = message.find("pg_advisory_xact_lock("), message.find("SELECT seq, hash FROM audit_event")
    return 0 <= lock < head


def test_a_reveals_audit_append_is_two_messages_and_its_head_is_read_after_the_lock(pg_db: PgDatabase) -> None:
    """BEGIN, the chain's lock and the read of its head go in one message; then the INSERT with COMMIT
    (send_later.py). The head read must come after the lock in that message, or a waiting append would chain onto a
    stale head."""
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    scope = Scope.user("alice")
    try:
        made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-pg-9e2d"))
        made.secrets.get(alice(), scope, "token", reveal=True)  # the first append also reads the newest checkpoint
        with wire(made) as lines:
            made.secrets.get(alice(), scope, "token", reveal=True)
        assert not any("canary-attack-pg-9e2d" in line for line in lines)  # sealed on the wire, never plain
        sent = [text.strip().strip('"') for text in queries(lines)]
        assert round_trips(lines) == 3 and len(sent) == 3, lines  # the read, then the append's two
        assert sent[1].startswith("BEGIN ISOLATION LEVEL READ COMMITTED; ") and _locked_head_read(sent[1])
        assert sent[2].startswith("INSERT INTO audit_event") and sent[2].endswith("\n;\nCOMMIT")
        assert made.audit.verify_chain().problems == []
    finally:
        made.close()


def test_a_writes_audit_append_takes_the_lock_and_reads_the_head_in_one_message(pg_db: PgDatabase) -> None:
    """Inside the write's transaction (its row locked), the chain's lock and the head read are one message."""
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_MAX_VERSIONS": "2"})
    scope = Scope.user("alice")
    try:
        for n in range(3):
            made.secrets.set(alice(), scope, "token", SecretValue(f"canary-attack-pg-9e2d-{n}"))
        with messages(made) as sent:
            made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-pg-9e2d-last"))
        assert [m for m in sent if "pg_advisory_xact_lock" in m or "FROM audit_event" in m] == [
            m for m in sent if _locked_head_read(m)]
        assert len([m for m in sent if _locked_head_read(m)]) == 1
        assert len(sent) == 8, sent  # BEGIN+settings, row, archive, save, prune, lock+head, INSERT, COMMIT
        assert made.audit.verify_chain().problems == []
    finally:
        made.close()


def test_a_locked_head_read_is_refused_where_no_begin_would_carry_it(pg_db: PgDatabase) -> None:
    """Inside a transaction atomic() makes a savepoint and sends no BEGIN: the lock would not be taken and the head
    would be an earlier message's rows. It is refused; and no isolation level but READ COMMITTED is accepted."""
    made = build(environment(pg_db.app_url, new_key()))
    try:
        made.secrets.set(alice(), Scope.user("alice"), "token", SecretValue("canary-attack-pg-9e2d"))
        rows = len(made.audit.page(AuditFilter(), None, 1000, newest_first=False))
        inside = dialect_of(made.db).serialized_transaction(made.db, AUDIT_LOCK_ID, "SELECT 1")
        with made.db.atomic(), pytest.raises(RuntimeError, match="not inside a transaction"), inside:
            pass
        with pytest.raises(ValueError, match="READ COMMITTED"), made.db.atomic("SERIALIZABLE"):
            pass
        assert len(made.audit.page(AuditFilter(), None, 1000, newest_first=False)) == rows
        assert made.audit.verify_chain().problems == []
    finally:
        made.close()


def test_a_write_whose_lock_and_head_message_times_out_stores_nothing(pg_db: PgDatabase) -> None:
    """The write's own transaction sends the chain's lock and head read as one message: when the lock wait passes
    statement_timeout, the write is refused as an outage, its version and audit rows roll back, and the connection
    is usable."""
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_DB_STATEMENT_TIMEOUT": "0.5",
                  "SPRONGUS_MAX_VERSIONS": "2"})
    scope = Scope.user("alice")
    holder = psycopg.connect(pg_db.admin_url)
    try:
        for n in range(3):
            made.secrets.set(alice(), scope, "token", SecretValue(f"canary-attack-pg-9e2d-{n}"))
        rows = len(made.audit.page(AuditFilter(), None, 1000, newest_first=False))
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK_ID,))  # another append holds the chain lock
        with pytest.raises((AuditUnavailable, StorageUnavailable)):
            made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-pg-9e2d-lost"))
        holder.commit()
        status = psycopg.pq.TransactionStatus(made.db.connection().pgconn.transaction_status)
        assert status == psycopg.pq.TransactionStatus.IDLE, f"connection left {status.name}"
        assert made.secrets.get(alice(), scope, "token", reveal=True).version == 3  # the refused write left no trace
        assert len(made.audit.page(AuditFilter(), None, 1000, newest_first=False)) == rows + 1  # + that reveal
        made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-pg-9e2d-4"))
        assert made.audit.verify_chain().problems == []
    finally:
        holder.close()
        made.close()
