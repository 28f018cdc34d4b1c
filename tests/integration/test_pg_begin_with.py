"""`BEGIN; SELECT pg_advisory_xact_lock(...)` goes in one message. When the lock wait hits statement_timeout, BEGIN
has already run, and peewee does not roll back a failure inside atomic().__enter__: the connection stayed in an
aborted transaction, so every retry and every later statement of the thread failed (25P02) until the connection
went back to the pool. It is rolled back now."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sprongus.domain.errors import AuditUnavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import alice, build, environment, new_key
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


def test_a_reveals_audit_append_is_three_messages_and_its_head_is_read_after_the_lock(pg_db: PgDatabase) -> None:
    """BEGIN, the chain's lock and the read of its head go in one message; then the INSERT, then COMMIT. The head
    read must come after the lock in that message, or a waiting append would chain onto a stale head."""
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    scope = Scope.user("alice")
    try:
        made.secrets.set(alice(), scope, "token", SecretValue("canary-attack-pg-9e2d"))
        sent: list[str] = []
        group = made.audit._group
        append = group._write

        class Recorded:
            """A cursor that notes each message it sends (psycopg's cursors take no new attributes)."""

            def __init__(self, cursor: Any) -> None:
                self._cursor = cursor

            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                sent.append(str(query))
                return self._cursor.execute(query, *args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._cursor, name)

        def traced(groups: list[Any]) -> None:
            original = made.db.cursor
            made.db.cursor = lambda *args, **kwargs: Recorded(original(*args, **kwargs))
            try:
                append(groups)
            finally:
                made.db.cursor = original

        made.secrets.get(alice(), scope, "token", reveal=True)  # the first append also reads the newest checkpoint
        group._write = traced
        made.secrets.get(alice(), scope, "token", reveal=True)
        assert len(sent) == 3, sent
        first = sent[0]
        assert first.startswith("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(")
        assert first.index("pg_advisory_xact_lock") < first.index("FROM audit_event")
        assert sent[1].startswith("INSERT INTO audit_event") and sent[2] == "COMMIT"
        assert made.audit.verify_chain().problems == []
    finally:
        made.close()
