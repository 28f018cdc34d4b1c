"""`BEGIN; SELECT pg_advisory_xact_lock(...)` goes in one message. When the lock wait hits statement_timeout, BEGIN
has already run, and peewee does not roll back a failure inside atomic().__enter__: the connection stayed in an
aborted transaction, so every retry and every later statement of the thread failed (25P02) until the connection
went back to the pool. It is rolled back now."""

from __future__ import annotations

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
