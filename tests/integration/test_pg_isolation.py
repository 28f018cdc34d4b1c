"""Every Postgres transaction is READ COMMITTED, whatever the database's default isolation.

The code relies on it: an audit append takes the chain's lock and then reads the head, and a write locks its row
and then reads it; each needs a fresh snapshot per statement. On a database whose default was REPEATABLE READ or
SERIALIZABLE, concurrent writes of one key and concurrent reveals were refused (503: "could not serialize access",
audit unavailable). Two stacks stand for two API processes (each its own pool and group commit), revealing and
writing one hot key at once.
"""

from __future__ import annotations

import pytest

from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import alice, build, environment, in_threads, new_key
from tests.integration.test_audit_trail import Raw, audit_rows
from tests.pg import PgDatabase

SCOPE = Scope.user("alice")
CANARY = "canary-isolation-5e2c"
ROOMY = {"SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute", "SPRONGUS_RATE_LIMIT_WRITE": "100000/minute"}


@pytest.mark.parametrize("default", ["repeatable read", "serializable"])
def test_appends_from_two_processes_keep_one_chain_under_any_default_isolation(pg_db: PgDatabase,
                                                                                default: str) -> None:
    with pg_db.admin() as conn:
        conn.execute(f"ALTER DATABASE {pg_db.name} SET default_transaction_isolation TO '{default}'")
    env = {**environment(pg_db.app_url, new_key()), **ROOMY}
    stacks = [build(env) for _ in range(2)]
    try:
        stacks[0].secrets.set(alice(), SCOPE, "token", SecretValue(CANARY))
        with stacks[0].db.connection_context():
            assert stacks[0].db.execute_sql("SHOW default_transaction_isolation").fetchone()[0] == default

        def work(n: int) -> None:
            made = stacks[n % 2]
            for i in range(25):
                if n < 6:
                    made.secrets.get(alice(), SCOPE, "token", reveal=True)
                else:
                    made.secrets.set(alice(), SCOPE, "hot", SecretValue(f"{CANARY}-{n}-{i}"))

        assert in_threads(8, work) == []
        rows = audit_rows(Raw("postgres", pg_db.admin_url))
        assert len([r for r in rows if r[2] == "reveal"]) == 6 * 25
        assert stacks[0].audit.verify_chain().problems == []
        assert CANARY not in repr(rows)
    finally:
        for made in stacks:
            made.close()
