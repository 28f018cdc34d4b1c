"""A statement whose answer nobody reads waits for the next one (ServerDatabase.execute_later): a reveal's audit
rows go out with the COMMIT of their group, one round trip less while the chain's lock is held. Counted on the wire
(libpq's trace), and checked for what must not change: the order of statements, an error still failing its
transaction, a rollback sending nothing, and a connection left idle."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import peewee
import psycopg
import pytest

from sprongus.adapters.peewee.postgres import ServerDatabase, server_database
from sprongus.domain.audit_rows import AuditFilter
from sprongus.domain.errors import AuditUnavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import alice, build, environment, new_key
from tests.integration.test_pg_one_message_read import queries, round_trips, wire
from tests.pg import PgDatabase

CANARY = "canary-send-later-7c3a"
ALICE = Scope.user("alice")


def _status(db: ServerDatabase) -> psycopg.pq.TransactionStatus:
    return psycopg.pq.TransactionStatus(db.connection().pgconn.transaction_status)


def test_a_refused_audit_row_sent_with_the_commit_still_refuses_the_reveal(pg_db: PgDatabase) -> None:
    """The INSERT's error arrives with its COMMIT, which the server then does not run: the reveal is refused as an
    audit failure, no row is stored, the connection is left idle, and nothing of it rides on the next message."""
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    admin = pg_db.admin()
    try:
        made.secrets.set(alice(), ALICE, "token", SecretValue(CANARY))
        rows = len(made.audit.page(AuditFilter(), None, 1000, newest_first=False))
        admin.execute("REVOKE INSERT ON audit_event FROM sprongus_app")
        with pytest.raises(AuditUnavailable) as refused:
            made.secrets.get(alice(), ALICE, "token", reveal=True)
        assert CANARY not in str(refused.value) and CANARY not in repr(refused.value.__cause__)
        assert _status(made.db) == psycopg.pq.TransactionStatus.IDLE
        assert len(made.audit.page(AuditFilter(), None, 1000, newest_first=False)) == rows
        admin.execute("GRANT INSERT ON audit_event TO sprongus_app")
        with wire(made) as lines:
            made.secrets.get(alice(), ALICE, "token")  # a masked read: one message, with no refused row in it
        assert round_trips(lines) == 1 and not any("audit_event" in q for q in queries(lines))
        made.secrets.get(alice(), ALICE, "token", reveal=True)
        assert len(made.audit.page(AuditFilter(), None, 1000, newest_first=False)) == rows + 1
        assert made.audit.verify_chain().problems == []
    finally:
        admin.close()
        made.close()


def test_a_connection_lost_before_the_rows_and_commit_refuses_the_reveal_as_an_outage(
        pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server ends the connection after the append's BEGIN (lock and head read), before the message with its
    rows and COMMIT: the reveal is refused as an audit outage, with no value, nothing is stored, and the next reveal
    works on a new connection."""
    made = build({**environment(pg_db.app_url, new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    admin = pg_db.admin()
    try:
        made.secrets.set(alice(), ALICE, "token", SecretValue(CANARY))
        made.secrets.get(alice(), ALICE, "token", reveal=True)
        rows = len(made.audit.page(AuditFilter(), None, 1000, newest_first=False))
        send = made.db._send_with

        def cut_first(waiting: Any, sql: Any, params: Any) -> Any:
            monkeypatch.undo()  # once
            admin.execute("SELECT pg_terminate_backend(%s)", (made.db.connection().info.backend_pid,))
            return send(waiting, sql, params)

        monkeypatch.setattr(made.db, "_send_with", cut_first)
        with pytest.raises(AuditUnavailable, match="database unavailable") as refused:
            made.secrets.get(alice(), ALICE, "token", reveal=True)
        assert CANARY not in str(refused.value) and CANARY not in repr(refused.value.__cause__)
        made.db.close()  # the API's teardown after each request: the pool drops the dead connection
        view = made.secrets.get(alice(), ALICE, "token", reveal=True)
        assert view.value is not None and view.value.reveal() == CANARY
        assert len(made.audit.page(AuditFilter(), None, 1000, newest_first=False)) == rows + 1
        assert made.audit.verify_chain().problems == []
    finally:
        admin.close()
        made.close()


# --- ServerDatabase.execute_later itself -------------------------------------------------------------------------

@pytest.fixture
def db(pg_db: PgDatabase) -> Iterator[ServerDatabase]:
    database = server_database(pg_db.admin_url, connect_timeout=5, statement_timeout=5)
    database.execute_sql("CREATE TABLE later_t (id int PRIMARY KEY, note text)")
    try:
        yield database
    finally:
        database.execute_sql("DROP TABLE later_t")
        database.close_all()


def _count(db: ServerDatabase) -> int:
    return int(db.execute_sql("SELECT count(*) FROM later_t").fetchone()[0])


def _insert(db: ServerDatabase, row: int) -> None:
    db.execute_later("INSERT INTO later_t (id, note) VALUES (%s, %s)", [row, f"row {row}"])


def test_a_waiting_statement_goes_with_the_next_one_in_order(db: ServerDatabase) -> None:
    traced: Any = SimpleNamespace(db=db)  # what wire() reads of a stack
    with db.atomic():
        with wire(traced) as lines:
            _insert(db, 1)
            _insert(db, 2)
        assert round_trips(lines) == 0  # nothing sent yet
        with wire(traced) as lines:
            assert _count(db) == 2  # the next statement sees them: they ran first
        assert round_trips(lines) == 1
        assert db.rows_of_last("SELECT 1; SELECT '100%'") == [("100%",)]  # its own `%` is no placeholder
        _insert(db, 3)
        assert db.rows_of_last("SELECT count(*) FROM later_t") == [(3,)]  # sent before a message of its own
        _insert(db, 4)
        # As peewee sends a statement alone: values or not, `%%` is a literal `%`.
        assert db.execute_sql("SELECT '50%%' || note FROM later_t WHERE id = 4").fetchone() == ("50%row 4",)
    with wire(traced) as lines, db.atomic():
        _insert(db, 5)
    assert round_trips(lines) == 2  # BEGIN; then the row with COMMIT
    assert queries(lines)[-1].endswith('\n;\nCOMMIT"'), lines
    assert _count(db) == 5 and _status(db) == psycopg.pq.TransactionStatus.IDLE


def test_a_waiting_statement_is_sent_at_once_outside_a_transaction_and_in_a_savepoint(db: ServerDatabase) -> None:
    traced: Any = SimpleNamespace(db=db)  # what wire() reads of a stack
    with wire(traced) as lines:
        _insert(db, 1)  # outside a transaction: its own, at once
    assert round_trips(lines) == 1
    with db.atomic():
        _count(db)
        # A savepoint: at once, so its error is the savepoint's, before its ROLLBACK TO SAVEPOINT (wire() here
        # ends with the call).
        with pytest.raises(peewee.IntegrityError), db.atomic(), wire(traced) as lines:
            _insert(db, 1)
        assert round_trips(lines) == 1
        assert _count(db) == 1  # the savepoint rolled back; the transaction goes on
    assert _count(db) == 1


def test_a_rollback_sends_nothing_of_the_waiting_statements(db: ServerDatabase) -> None:
    with pytest.raises(RuntimeError), db.atomic():
        _insert(db, 1)
        raise RuntimeError("the caller gives up")
    assert _count(db) == 0
    with db.atomic():
        assert _count(db) == 0  # nor does the next transaction carry them
    assert _status(db) == psycopg.pq.TransactionStatus.IDLE


def test_a_waiting_statements_error_fails_the_next_call_and_its_transaction(db: ServerDatabase) -> None:
    _insert(db, 1)
    with pytest.raises(peewee.IntegrityError), db.atomic():
        _insert(db, 2)
        _insert(db, 1)  # a duplicate: its error comes with the next statement
        db.execute_sql("INSERT INTO later_t (id, note) VALUES (%s, %s)", [3, "never"])
    assert _count(db) == 1 and _status(db) == psycopg.pq.TransactionStatus.IDLE
    with pytest.raises(peewee.IntegrityError), db.atomic():
        _insert(db, 1)  # ... or with the COMMIT, which then does not run
    assert _count(db) == 1 and _status(db) == psycopg.pq.TransactionStatus.IDLE


def test_each_waiting_statement_is_bound_and_ended_on_its_own(db: ServerDatabase) -> None:
    """A trailing `--` comment must not swallow the COMMIT; a wrong count of values fails its own statement instead
    of sliding into the next."""
    with db.atomic():
        db.execute_later("INSERT INTO later_t (id, note) VALUES (%s, %s) -- the audit row", [1, "a"])
    assert _count(db) == 1 and _status(db) == psycopg.pq.TransactionStatus.IDLE
    with pytest.raises(peewee.ProgrammingError), db.atomic():
        db.execute_later("INSERT INTO later_t (id, note) VALUES (%s, 'b')", [2, 3])
        db.execute_sql("SELECT %s::int, %s::int", [4])
    assert _count(db) == 1 and _status(db) == psycopg.pq.TransactionStatus.IDLE


def test_a_transaction_whose_error_was_caught_refuses_its_commit(db: ServerDatabase) -> None:
    """A waiting statement's error surfaces with whatever carried it, here a savepoint whose own IntegrityError the
    caller sets aside: the server has aborted the transaction, and its COMMIT would answer ROLLBACK with no error."""
    _insert(db, 1)
    with pytest.raises(peewee.InternalError, match="not committed"), db.atomic():
        _insert(db, 1)  # a duplicate
        try:
            with db.atomic():
                db.execute_sql("INSERT INTO later_t (id, note) VALUES (%s, %s)", [9, "other"])
        except peewee.IntegrityError:
            pass  # taken for the savepoint's own failure
    assert _count(db) == 1 and _status(db) == psycopg.pq.TransactionStatus.IDLE


def test_under_manual_commit_a_statement_is_sent_at_once(db: ServerDatabase) -> None:
    with db.manual_commit():
        _insert(db, 1)  # no BEGIN: the server ran it as its own transaction
        assert getattr(db._state, "later", None) is None
    assert _count(db) == 1


def test_the_clients_deadline_is_one_statements_for_each_statement_in_the_message(db: ServerDatabase) -> None:
    """The server bounds each statement by statement_timeout; the client waited once for the whole message and
    closed a connection whose three statements were each within their bound."""
    conn = db.connection()
    conn.reply_timeout = 0.6
    try:
        with db.atomic():
            for row in (1, 2, 3):
                db.execute_later("INSERT INTO later_t (id, note) SELECT %s, 'slow' FROM pg_sleep(0.3)", [row])
        assert _count(db) == 3
    finally:
        conn.reply_timeout = 7.0


def test_a_message_gives_the_rows_of_its_last_statement_whatever_came_before(db: ServerDatabase) -> None:
    db.execute_sql("INSERT INTO later_t (id, note) VALUES (1, 'one'), (2, 'two')")
    assert db.rows_of_last("SELECT note FROM later_t ORDER BY id") == [("one",), ("two",)]
    assert db.rows_of_last("SELECT 1; SELECT note FROM later_t WHERE id = 9") == []  # rows: none
    assert db.rows_of_last("SELECT 1; SET LOCAL statement_timeout = 1000") == []  # a command: no rows
    assert db.rows_of_last("BEGIN; SET LOCAL statement_timeout = 1000; SELECT id FROM later_t WHERE id = 2; "
                           "COMMIT") == []  # the last statement is COMMIT
    assert db.rows_of_last("SET statement_timeout = 5000; SELECT count(*), max(note) FROM later_t") == [(2, "two")]
    assert db.bound_rows_of_last("SELECT %s; SELECT note FROM later_t WHERE id = %s", (7, 1)) == [("one",)]
