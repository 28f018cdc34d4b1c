"""A single secret's read on Postgres is one message (UnitOfWork.current): the caller's row-level-security settings,
then the SELECT, as one implicit transaction. Counted on the wire, with libpq's trace of the protocol: every round
trip ends with the server's ReadyForQuery."""

from __future__ import annotations

import queue
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import peewee
import psycopg
import pytest
from psycopg import pq

from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
from sprongus.domain.errors import NotFound, StorageUnavailable
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import Stack, alice, bob, environment, new_key, owner
from tests.integration.stack import build as build_stack
from tests.pg import PgDatabase

CANARY = "canary-one-message-4f1d"
ALICE = Scope.user("alice")


@contextmanager
def wire(made: Stack) -> Iterator[list[str]]:
    """What the stack's connection exchanges meanwhile, one protocol message a line (F: client, B: server)."""
    lines: list[str] = []
    conn = made.db.connection()
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield lines
        finally:
            conn.pgconn.untrace()
            trace.seek(0)
            lines.extend(trace.read().splitlines())


def round_trips(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith("B\t") and "\tReadyForQuery" in line)


def queries(lines: list[str]) -> list[str]:
    """The text of each simple-protocol message sent (one that spans lines continues on the lines after it)."""
    sent: list[str] = []
    for line in lines:
        if line.startswith("F\t") and "\tQuery\t" in line:
            sent.append(line.split("\tQuery\t", 1)[1])
        elif sent and not line.startswith(("F\t", "B\t")):
            sent[-1] += "\n" + line
    return sent


@pytest.fixture
def made(pg_db: PgDatabase) -> Iterator[Stack]:
    stack = build_stack({**environment(pg_db.app_url, new_key()), "SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"})
    try:
        stack.secrets.set(alice(), ALICE, "token", SecretValue(CANARY))
        stack.secrets.set(bob(), Scope.user("bob"), "token", SecretValue("bob-1"))
        yield stack
    finally:
        stack.close()


def _uow(made: Stack) -> PeeweeUnitOfWork:
    uow = made.container.unit_of_work()
    assert isinstance(uow, PeeweeUnitOfWork)
    return uow


def test_a_masked_read_is_one_round_trip_with_the_callers_settings_first(made: Stack) -> None:
    made.secrets.get(alice(), ALICE, "token")  # the connection is open
    with wire(made) as lines:
        view = made.secrets.get(alice(), ALICE, "token")
    assert view.version == 1 and view.value is None
    assert round_trips(lines) == 1, lines
    [sent] = queries(lines)
    assert sent.lstrip().startswith('"SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY; '), sent
    settings, read = sent.find("set_config('sprongus.subject', 'alice', true)"), sent.find("FROM secret_kv")
    assert 0 <= settings < read, sent  # the settings come first: row-level security reads them
    assert not re.search(r"\b(BEGIN|COMMIT)\b", sent)  # one implicit transaction, ended by the server


def test_a_reveal_is_its_read_and_its_audit_append(made: Stack) -> None:
    made.secrets.get(alice(), ALICE, "token", reveal=True)  # the first append also reads the newest checkpoint
    with wire(made) as lines:
        got = made.secrets.get(alice(), ALICE, "token", reveal=True)
    assert got.value is not None and got.value.reveal() == CANARY
    assert round_trips(lines) == 1 + 2, lines  # the read; BEGIN with the chain's lock and head; INSERT with COMMIT
    assert made.audit.verify_chain().problems == []


def test_the_database_hides_another_tenants_row_from_a_one_message_read(made: Stack) -> None:
    uow = _uow(made)
    assert uow.current(bob(), ALICE, "token") is None  # the row exists: the policy hid it
    record = uow.current(alice(), ALICE, "token")
    assert record is not None and record.key == "token" and record.version == 1
    with pytest.raises(NotFound):
        made.secrets.get(alice(), Scope.user("bob"), "token")


def test_a_one_message_read_sees_what_a_transaction_sees(made: Stack) -> None:
    """Every caller, every place: the same row or none as BEGIN with the settings, the read, COMMIT."""
    made.secrets.set(owner(), Scope.system(), "token", SecretValue("sys-1"))
    made.secrets.set(alice(), Scope.project("p1"), "token", SecretValue("p1-1"))
    uow = _uow(made)
    admin = Principal("carol", frozenset(Permission), frozenset({"p1"}))
    places = (ALICE, Scope.user("bob"), Scope.project("p1"), Scope.project("p2"), Scope.system())
    for caller in (alice(), bob(), owner(), admin):
        for place in places:
            with uow.transaction(caller, readonly=True) as repo:
                expected = repo.get(place, "token")
            got = uow.current(caller, place, "token")
            assert (got and (got.scope, got.version)) == (expected and (expected.scope, expected.version)), \
                (caller.subject, str(place))


SEEN = ("SELECT current_setting('sprongus.subject'), current_setting('sprongus.projects'), "
        "current_setting('sprongus.admin'), current_setting('sprongus.key_prefix'), "
        "current_setting('transaction_isolation'), current_setting('transaction_read_only'), current_user")


@pytest.mark.parametrize("subject", ["alice' OR '1'='1", "alice\\'; SET ROLE postgres; --", "ålice", "%s %% {} $$",
                                     "x" * 10_000])
def test_a_hostile_subject_is_a_value_and_its_settings_end_with_the_message(made: Stack, pg_db: PgDatabase,
                                                                           subject: str) -> None:
    uow = _uow(made)
    caller = Principal(subject, frozenset({Permission.READ}), frozenset({"p1", "p'2"}), key_prefix="svc.")
    assert uow.current(caller, ALICE, "token") is None  # not alice, whatever the text says
    seen = dialect_of(made.db).caller_read(made.db, caller, SEEN, [])  # what the message's read saw, exactly
    assert seen == (subject, "p'2,p1", "off", "svc.", "read committed", "on", pg_db.app_role)
    after = made.db.execute_sql("SELECT current_setting('sprongus.subject', true)").fetchone()
    assert after[0] in (None, "")  # transaction-local: gone with the message
    assert made.db.connection().info.transaction_status == pq.TransactionStatus.IDLE
    assert uow.current(alice(), ALICE, "token") is not None  # the connection is fine afterwards


def test_read_committed_and_read_only_whatever_the_sessions_default(made: Stack) -> None:
    made.db.execute_sql("SET default_transaction_isolation = 'serializable'")
    seen = dialect_of(made.db).caller_read(made.db, alice(), SEEN, [])
    assert seen[4:6] == ("read committed", "on")
    with pytest.raises(peewee.InternalError, match="read-only transaction"):  # READ ONLY: the message cannot write
        dialect_of(made.db).caller_read(made.db, alice(), "DELETE FROM secret_kv RETURNING id", [])
    assert _uow(made).current(alice(), ALICE, "token") is not None


def test_a_key_prefix_caller_sees_only_its_prefix(made: Stack) -> None:
    made.secrets.set(alice(), ALICE, "svc.db", SecretValue("svc-1"))
    uow = _uow(made)
    scoped = Principal("alice", frozenset({Permission.READ}), frozenset(), key_prefix="svc.")
    assert uow.current(scoped, ALICE, "svc.db") is not None
    assert uow.current(scoped, ALICE, "token") is None  # the database hides it, below the service's own check


def test_on_a_connection_the_server_holds_in_a_transaction_the_read_takes_the_old_path(made: Stack) -> None:
    """A transaction peewee does not know of (a bug elsewhere): the one message would join it and its settings
    would outlive the read. The read goes as BEGIN with the settings, the read, COMMIT instead."""
    conn = made.db.connection()
    conn.execute("BEGIN")
    conn.execute("SELECT set_config('sprongus.subject', 'alice', true), set_config('sprongus.admin', 'on', true)")
    assert not made.db.in_transaction() and conn.info.transaction_status == pq.TransactionStatus.INTRANS
    assert _uow(made).current(bob(), ALICE, "token") is None  # bob's settings, not the stray transaction's
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert made.db.execute_sql("SELECT current_setting('sprongus.subject', true)").fetchone()[0] in (None, "")


def test_inside_a_transaction_the_read_joins_it(made: Stack) -> None:
    uow = _uow(made)
    with uow.transaction(alice()) as repo:
        assert repo.get(ALICE, "token") is not None
        record = uow.current(alice(), ALICE, "token")
        assert record is not None and record.version == 1
        assert uow.current(bob(), ALICE, "token") is None  # a savepoint with bob's settings: still hidden


def _caller_now(made: Stack) -> tuple[str, ...]:
    return tuple(made.db.execute_sql(
        "SELECT current_setting('sprongus.subject', true), current_setting('sprongus.projects', true), "
        "current_setting('sprongus.admin', true), current_setting('sprongus.key_prefix', true)").fetchone())


def test_a_nested_caller_leaves_the_enclosing_transaction_to_its_own_caller(made: Stack) -> None:
    """RELEASE SAVEPOINT keeps set_config's values: a read as bob inside alice's transaction must not leave alice's
    remaining statements reading with bob's settings (bob's rows, bob's view of hers)."""
    uow = _uow(made)
    with uow.transaction(alice()) as repo:
        outer = _caller_now(made)
        assert outer == (alice().subject, "p1", "off", "")
        assert uow.current(bob(), Scope.user("bob"), "token") is not None  # bob's read, in a savepoint
        with uow.transaction(owner()):  # the vault's owner (admin on), in another savepoint
            pass
        assert _caller_now(made) == outer
        assert repo.get(ALICE, "token") is not None  # alice's own row: she still reads as herself
        assert repo.get(Scope.user("bob"), "token") is None  # and bob's stays hidden from her


def test_every_setting_of_the_enclosing_caller_comes_back(made: Stack) -> None:
    """Its projects and key prefix too, not only who it is."""
    prefixed = Principal("carol", alice().permissions, frozenset({"p1", "p9"}), key_prefix="ci_")
    uow = _uow(made)
    with uow.transaction(prefixed):
        outer = _caller_now(made)
        assert outer == ("carol", "p1,p9", "off", "ci_")
        uow.current(bob(), Scope.user("bob"), "token")
        assert _caller_now(made) == outer


class Interrupted(BaseException):
    """Stands for what can arrive between two statements: a signal handler's exception, a green thread's timeout."""


def test_an_interruption_while_the_settings_are_set_back_leaves_none_of_the_nested_callers(
        made: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    uow = _uow(made)
    real = made.db.execute_sql
    settings_sent: list[str] = []

    def interrupting(sql: str, params: object = None) -> object:
        if sql.startswith("SELECT set_config("):
            settings_sent.append(sql)
            if len(settings_sent) == 2:  # the first sets the nested caller, the second sets the enclosing one back
                raise Interrupted
        return real(sql, params)

    with uow.transaction(alice()) as repo:
        outer = _caller_now(made)
        monkeypatch.setattr(made.db, "execute_sql", interrupting)
        with pytest.raises(Interrupted):
            uow.current(owner(), ALICE, "token")
        monkeypatch.undo()
        assert len(settings_sent) == 2
        assert _caller_now(made) == outer  # not the owner's admin flag
        assert repo.get(Scope.user("bob"), "token") is None


def test_a_nested_caller_that_fails_rolls_its_settings_back(made: Stack) -> None:
    uow = _uow(made)
    with uow.transaction(alice()) as repo:
        outer = _caller_now(made)
        with pytest.raises(NotFound), uow.transaction(bob()):
            raise NotFound("abandoned")  # the savepoint rolls back, and its settings with it
        assert _caller_now(made) == outer
        assert repo.get(Scope.user("bob"), "token") is None


@contextmanager
def table_locked(pg_db: PgDatabase) -> Iterator[psycopg.Connection]:
    """secret_kv locked against reads by another session, until the block ends."""
    with psycopg.connect(pg_db.admin_url) as holder:
        holder.execute("LOCK TABLE secret_kv IN ACCESS EXCLUSIVE MODE")
        yield holder
        holder.rollback()


def _waiting(pg_db: PgDatabase, pid: int) -> None:
    with psycopg.connect(pg_db.admin_url, autocommit=True) as admin:
        for _ in range(200):
            row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError("the read never waited for the lock")


def test_a_connection_cut_mid_read_is_an_outage_and_the_next_request_reads(made: Stack, pg_db: PgDatabase) -> None:
    pids: queue.Queue[int] = queue.Queue()

    def request() -> None:  # on a thread of its own, with its own connection, as the API serves one
        pids.put(made.db.connection().info.backend_pid)
        try:
            made.secrets.get(alice(), ALICE, "token")
        finally:
            made.db.close()  # the API's teardown: the pool drops a dead connection

    with table_locked(pg_db), ThreadPoolExecutor(max_workers=1) as pool:
        done = pool.submit(request)
        pid = pids.get(timeout=10)
        _waiting(pg_db, pid)
        with psycopg.connect(pg_db.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        with pytest.raises(StorageUnavailable):
            done.result(timeout=10)
    assert made.secrets.get(alice(), ALICE, "token").version == 1


def test_a_read_past_the_statement_timeout_is_an_outage_and_leaves_the_connection_idle(pg_db: PgDatabase) -> None:
    stack = build_stack({**environment(pg_db.app_url, new_key()), "SPRONGUS_DB_STATEMENT_TIMEOUT": "0.5"})
    try:
        stack.secrets.set(alice(), ALICE, "token", SecretValue(CANARY))
        with table_locked(pg_db), pytest.raises(StorageUnavailable) as caught:
            stack.secrets.get(alice(), ALICE, "token")
        assert CANARY not in str(caught.value)
        assert stack.db.connection().info.transaction_status == pq.TransactionStatus.IDLE
        assert stack.secrets.get(alice(), ALICE, "token").version == 1  # no reconnect needed
    finally:
        stack.close()
