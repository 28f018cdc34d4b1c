"""Row-level security on Postgres, probed as the app role with raw SQL, and through the service end to end."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from sprongus.adapters.peewee import dialect
from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
from sprongus.domain.errors import NotFound
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import alice, bob, new_key, owner, stack
from tests.pg import PgDatabase

INSERT = ("INSERT INTO secret_kv (id, owner_type, owner_id, key_name, ciphertext, dek_wrapped, nonce, alg, "
          "master_key_id, version, created_at, updated_at, checksum) "
          "VALUES (%s, %s, %s, %s, '\\x00', '\\x00', '\\x00', 'AES-256-GCM', 'env:k1', 1, now(), now(), 'x')")

SEED = [("a1", "user", "alice", "mine"), ("b1", "user", "bob", "theirs"), ("p1", "project", "p1", "shared"),
        ("p2", "project", "p2", "other"), ("s1", "system", None, "global")]
ALICE_ROWS = {("user", "alice", "mine"), ("project", "p1", "shared")}


def as_caller(cur: psycopg.Cursor, subject: str = "alice", projects: str = "p1", admin: str = "off") -> None:
    """What set_caller does at the start of every transaction: transaction-local settings."""
    cur.execute("SELECT set_config('sprongus.subject', %s, true), set_config('sprongus.projects', %s, true), "
                "set_config('sprongus.admin', %s, true)", (subject, projects, admin))


def visible(cur: psycopg.Cursor) -> set[tuple[str, str | None, str]]:
    cur.execute("SELECT owner_type, owner_id, key_name FROM secret_kv")
    return set(cur.fetchall())


def all_rows(pg: PgDatabase) -> list[tuple[str, int]]:
    with pg.admin() as conn:
        return conn.execute("SELECT id, version FROM secret_kv ORDER BY id").fetchall()


@pytest.fixture
def seeded(pg_db: PgDatabase) -> PgDatabase:
    with pg_db.admin() as conn:
        for row in SEED:
            conn.execute(INSERT, row)
    return pg_db


@pytest.fixture
def app(seeded: PgDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.app_url) as conn:
        yield conn


def test_alice_sees_only_her_user_and_project_rows(app: psycopg.Connection) -> None:
    with app.transaction(), app.cursor() as cur:
        as_caller(cur)
        assert visible(cur) == ALICE_ROWS
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, admin="on")
        assert visible(cur) == ALICE_ROWS | {("system", None, "global")}
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, subject="bob", projects="p2,p3")
        assert visible(cur) == {("user", "bob", "theirs"), ("project", "p2", "other")}


def test_project_list_is_matched_exactly_not_by_substring(app: psycopg.Connection) -> None:
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, subject="nobody", projects="p")
        assert visible(cur) == set()
        as_caller(cur, subject="nobody", projects="p1,p2")
        assert visible(cur) == {("project", "p1", "shared"), ("project", "p2", "other")}


def test_alice_cannot_update_or_delete_rows_outside_her_tenancy(seeded: PgDatabase, app: psycopg.Connection) -> None:
    before = all_rows(seeded)
    with app.transaction(), app.cursor() as cur:
        as_caller(cur)
        cur.execute("UPDATE secret_kv SET version = version + 1 WHERE id IN ('b1', 'p2', 's1')")
        assert cur.rowcount == 0
        cur.execute("UPDATE secret_kv SET version = version + 1")
        assert cur.rowcount == 2  # her own two rows only
        cur.execute("DELETE FROM secret_kv WHERE id IN ('b1', 'p2', 's1')")
        assert cur.rowcount == 0
        cur.execute("SELECT count(*) FROM secret_kv WHERE id = 'b1'")
        assert cur.fetchone() == (0,)
    after = dict(all_rows(seeded))
    assert after == {i: v + 1 if i in ("a1", "p1") else v for i, v in before}


@pytest.mark.parametrize(("owner_type", "owner_id"), [("user", "bob"), ("project", "p2"), ("system", None)])
def test_alice_cannot_insert_rows_for_others(seeded: PgDatabase, app: psycopg.Connection, owner_type: str,
                                             owner_id: str | None) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), app.transaction(), \
            app.cursor() as cur:
        as_caller(cur)
        cur.execute(INSERT, ("new", owner_type, owner_id, "planted"))
    assert ("new", 1) not in all_rows(seeded)


def test_alice_cannot_move_her_row_into_another_tenancy(seeded: PgDatabase, app: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), app.transaction(), \
            app.cursor() as cur:
        as_caller(cur)
        cur.execute("UPDATE secret_kv SET owner_id = 'bob' WHERE id = 'a1'")
    with seeded.admin() as conn:
        assert conn.execute("SELECT owner_id FROM secret_kv WHERE id = 'a1'").fetchone() == ("alice",)


def test_settings_end_with_the_transaction(app: psycopg.Connection) -> None:
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, admin="on")
        assert len(visible(cur)) == 3
    # The same connection, next transaction (a pooled connection handed to another request): nothing of alice's.
    with app.transaction(), app.cursor() as cur:
        cur.execute("SELECT current_setting('sprongus.subject', true), current_setting('sprongus.admin', true)")
        assert cur.fetchone() in ((None, None), ("", ""))
        assert visible(cur) == set()
    # Autocommit statements outside any explicit transaction see nothing either.
    app.autocommit = True
    assert visible(app.cursor()) == set()


def test_without_any_setting_nothing_is_visible(seeded: PgDatabase) -> None:
    with psycopg.connect(seeded.app_url, autocommit=True) as conn, conn.cursor() as cur:
        assert visible(cur) == set()
        cur.execute("UPDATE secret_kv SET version = 9")
        assert cur.rowcount == 0
        cur.execute("DELETE FROM secret_kv")
        assert cur.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            cur.execute(INSERT, ("x", "user", "", "k"))
    assert len(all_rows(seeded)) == len(SEED)


def test_a_session_level_set_ends_with_its_session(seeded: PgDatabase) -> None:
    """Even a session-level SET by a buggy caller cannot widen another tenant's view beyond that session."""
    with psycopg.connect(seeded.app_url, autocommit=True) as conn:
        conn.execute("SET sprongus.subject = 'bob'")
        assert visible(conn.cursor()) == {("user", "bob", "theirs")}
    with psycopg.connect(seeded.app_url, autocommit=True) as fresh:
        assert visible(fresh.cursor()) == set()


def test_app_role_has_no_bypass_no_superuser_and_owns_nothing(pg_db: PgDatabase) -> None:
    with pg_db.admin() as conn:
        for role in (pg_db.app_role, "sprongus_app"):
            flags = conn.execute("SELECT rolbypassrls, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                 "WHERE rolname = %s", (role,)).fetchone()
            assert flags == (False, False, False, False), role
            owned = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = "
                                 "(SELECT oid FROM pg_roles WHERE rolname = %s)", (role,)).fetchone()
            assert owned == (0,), role
        member = conn.execute("SELECT pg_has_role(%s, 'sprongus_app', 'MEMBER'), "
                              "pg_has_role(%s, 'sprongus_maintenance', 'MEMBER')",
                              (pg_db.app_role, pg_db.app_role)).fetchone()
        assert member == (True, False)


def test_rls_is_enabled_and_forced_on_secret_kv(pg_db: PgDatabase) -> None:
    with pg_db.admin() as conn:
        flags = conn.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                             "WHERE oid = 'public.secret_kv'::regclass").fetchone()
        assert flags == (True, True)


def test_app_role_cannot_rewrite_or_erase_the_audit_trail(pg_db: PgDatabase) -> None:
    service = stack(pg_db.app_url, new_key())
    try:
        service.secrets.set(alice(), Scope.user("alice"), "k", SecretValue("v"))
    finally:
        service.close()
    with psycopg.connect(pg_db.app_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM audit_event").fetchone() == (1,)
        for statement in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event",
                          "TRUNCATE audit_event"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(statement)
    with pg_db.admin() as conn:
        assert conn.execute("SELECT actor FROM audit_event").fetchall() == [("alice",)]


def test_maintenance_role_sees_every_row_without_settings(seeded: PgDatabase) -> None:
    with psycopg.connect(seeded.maintenance_url, autocommit=True) as conn:
        assert len(visible(conn.cursor())) == len(SEED)


def test_the_service_on_the_app_role_works_for_alice_and_hides_bob(pg_db: PgDatabase) -> None:
    keys = new_key()
    app = stack(pg_db.app_url, keys)
    try:
        service = app
        assert service.secrets.set(alice(), Scope.user("alice"), "notion.api_token", SecretValue("alice-1")).created
        service.secrets.set(alice(), Scope.user("alice"), "notion.api_token", SecretValue("alice-2"))
        service.secrets.set(alice(), Scope.project("p1"), "db.url", SecretValue("p1-db"))
        service.secrets.set(bob(), Scope.user("bob"), "notion.api_token", SecretValue("bob-1"))
        service.secrets.set(owner(), Scope.system(), "smtp.password", SecretValue("sys-1"))

        got = service.secrets.get(alice(), Scope.user("alice"), "notion.api_token", reveal=True)
        assert got.value is not None and got.value.reveal() == "alice-2" and got.version == 2
        assert [v.key for v in service.secrets.list(alice(), Scope.project("p1")).items] == ["db.url"]
        service.rotation.rotate(alice(), Scope.user("alice"), "notion.api_token")
        assert service.secrets.get(alice(), Scope.user("alice"), "notion.api_token").version == 3
        for scope in (Scope.user("bob"), Scope.project("p2"), Scope.system()):
            with pytest.raises(NotFound):
                service.secrets.get(alice(), scope, "notion.api_token")
        with pytest.raises(NotFound):
            service.secrets.list(alice(), Scope.user("bob"))

        # Below the service's own checks, the database hides the rows too: a caller whose transaction
        # claims to be bob, reading alice's place, gets nothing.
        uow = PeeweeUnitOfWork(app.models)
        with uow.transaction(bob()) as repo:
            assert repo.get(Scope.user("alice"), "notion.api_token") is None
            assert {(str(r.scope), r.key) for r in repo.scan(None, 100)} == {("user:bob", "notion.api_token")}
        admin_bob = Principal("bob", frozenset(Permission), frozenset())
        with uow.transaction(admin_bob) as repo:
            assert {str(r.scope) for r in repo.scan(None, 100)} == {"user:bob", "system"}
        # Current and kept versions alike: alice's token is at version 3 and keeps 1 and 2, plus p1's db.url.
        # bob's and the system's rows are not counted: the policy hides them from alice's transaction.
        assert uow.count_by_master_key(alice()) == {"env:k1": 4}
        service.secrets.unset(alice(), Scope.project("p1"), "db.url")
        with pytest.raises(NotFound):
            service.secrets.get(alice(), Scope.project("p1"), "db.url")
    finally:
        app.close()
    with pg_db.admin() as conn:  # unset is a soft delete: the row stays, flagged, with the versions it keeps
        assert conn.execute("SELECT count(*) FROM secret_kv").fetchone() == (4,)
        assert conn.execute("SELECT key_name FROM secret_kv WHERE deleted_at IS NOT NULL").fetchall() == [("db.url",)]
        assert conn.execute("SELECT owner_id, version FROM secret_version ORDER BY version").fetchall() == [
            ("alice", 1), ("alice", 2)]


# --- secret_version and secret_tombstone: the same tenant policy, forced ------------------------------------------

VERSION_INSERT = ("INSERT INTO secret_version (secret_id, owner_type, owner_id, key_name, ciphertext, dek_wrapped, "
                  "nonce, alg, master_key_id, version, created_at, updated_at, checksum) "
                  "VALUES (%s, %s, %s, %s, '\\x00', '\\x00', '\\x00', 'AES-256-GCM', 'env:k1', %s, now(), now(), 'x')")
TOMBSTONE_INSERT = ("INSERT INTO secret_tombstone (owner_type, owner_id, key_name, last_version, purged_at) "
                    "VALUES (%s, %s, %s, %s, now())")


@pytest.fixture
def history_seeded(pg_db: PgDatabase) -> PgDatabase:
    with pg_db.admin() as conn:
        for secret_id, owner_type, owner_id, key in SEED:
            for version in (1, 2):
                conn.execute(VERSION_INSERT, (secret_id, owner_type, owner_id, key, version))
            conn.execute(TOMBSTONE_INSERT, (owner_type, owner_id, f"{key}.purged", 7))
    return pg_db


def _places(cur: psycopg.Cursor, table: str) -> set[tuple[str, str | None, str]]:
    cur.execute(f"SELECT * FROM {table}")
    columns = [c.name for c in cur.description or []]
    return {(row[columns.index("owner_type")], row[columns.index("owner_id")],
             row[columns.index("key_name")].removesuffix(".purged")) for row in cur.fetchall()}


@pytest.mark.parametrize("table", ["secret_version", "secret_tombstone"])
def test_kept_versions_and_tombstones_show_only_the_callers_rows(history_seeded: PgDatabase, table: str) -> None:
    with psycopg.connect(history_seeded.app_url) as conn:
        with conn.transaction(), conn.cursor() as cur:
            as_caller(cur)
            assert _places(cur, table) == ALICE_ROWS
            if table == "secret_version":
                cur.execute("SELECT count(*) FROM secret_version")
                assert cur.fetchone() == (4,)  # two versions of each of her two secrets
        with conn.transaction(), conn.cursor() as cur:
            as_caller(cur, subject="bob", projects="p2", admin="on")
            assert _places(cur, table) == {("user", "bob", "theirs"), ("project", "p2", "other"),
                                           ("system", None, "global")}
        with conn.transaction(), conn.cursor() as cur:  # no settings: nothing
            assert _places(cur, table) == set()
            cur.execute(f"UPDATE {table} SET key_name = key_name")
            assert cur.rowcount == 0
            cur.execute(f"DELETE FROM {table}")
            assert cur.rowcount == 0
        with conn.transaction(), conn.cursor() as cur:
            as_caller(cur)
            cur.execute(f"DELETE FROM {table} WHERE owner_id = 'bob'")
            assert cur.rowcount == 0
    with history_seeded.admin() as conn:
        total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert total == (len(SEED) * (2 if table == "secret_version" else 1),)


@pytest.mark.parametrize(("owner_type", "owner_id"), [("user", "bob"), ("project", "p2"), ("system", None)])
def test_alice_cannot_plant_versions_or_tombstones_for_others(history_seeded: PgDatabase, owner_type: str,
                                                              owner_id: str | None) -> None:
    statements = [(VERSION_INSERT, ("planted", owner_type, owner_id, "planted", 9)),
                  (TOMBSTONE_INSERT, (owner_type, owner_id, "planted", 9))]
    with psycopg.connect(history_seeded.app_url) as conn:
        for sql, params in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), \
                    conn.transaction(), conn.cursor() as cur:
                as_caller(cur)
                cur.execute(sql, params)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), \
                conn.transaction(), conn.cursor() as cur:  # nor move her own kept version into bob's place
            as_caller(cur)
            cur.execute("UPDATE secret_version SET owner_type = %s, owner_id = %s WHERE secret_id = 'a1'",
                        (owner_type, owner_id))
        with conn.transaction(), conn.cursor() as cur:  # her own place is fine
            as_caller(cur)
            cur.execute(VERSION_INSERT, ("a1", "user", "alice", "mine", 3))
            cur.execute(TOMBSTONE_INSERT, ("user", "alice", "new", 1))
    with history_seeded.admin() as conn:
        assert conn.execute("SELECT count(*) FROM secret_version WHERE key_name = 'planted'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM secret_tombstone WHERE key_name = 'planted'").fetchone() == (0,)
        assert conn.execute("SELECT owner_id FROM secret_version WHERE secret_id = 'a1' ORDER BY version"
                            ).fetchall() == [("alice",)] * 3


def test_rls_is_enabled_and_forced_on_the_history_tables(pg_db: PgDatabase) -> None:
    with pg_db.admin() as conn:
        for table in ("secret_version", "secret_tombstone"):
            flags = conn.execute("SELECT relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) FROM pg_class "
                                 "WHERE oid = %s::regclass", (f"public.{table}",)).fetchone()
            assert flags == (True, True, "sprongus_maintenance"), table
            policies = conn.execute("SELECT policyname FROM pg_policies WHERE tablename = %s", (table,)).fetchall()
            assert policies == [(f"{table}_tenant",)]


@pytest.mark.parametrize("subject", ["gha:repo:o'reilly/shop:ref:main", "sub\\'; SET ROLE postgres; --", "ünïcode-é"])
def test_the_caller_settings_ride_with_begin_and_arrive_exactly(pg_db: PgDatabase, subject: str) -> None:
    """BEGIN and the RLS settings go in one message, values quoted by the driver: a subject with quotes,
    backslashes or a statement in it is a value, set exactly, in that transaction only."""
    made = stack(pg_db.app_url, new_key())
    try:
        uow = made.container.unit_of_work()
        assert isinstance(uow, PeeweeUnitOfWork)
        caller = Principal(subject, frozenset({Permission.READ}), frozenset({"p1", "p2"}), key_prefix="svc.")
        other = Principal(subject, frozenset({Permission.ADMIN}), frozenset({"p3"}))  # another token, same subject
        # Twice each, interleaved: the second time the quoted text comes from dialect.caller_settings' cache.
        for who, expected in ((caller, (subject, "p1,p2", "off", "svc.")), (other, (subject, "p3", "on", "")),
                              (caller, (subject, "p1,p2", "off", "svc.")), (other, (subject, "p3", "on", ""))):
            with uow.transaction(who, readonly=True):
                row = made.db.execute_sql(
                    "SELECT current_setting('sprongus.subject'), current_setting('sprongus.projects'), "
                    "current_setting('sprongus.admin'), current_setting('sprongus.key_prefix'), current_user"
                ).fetchone()
            assert row == (*expected, pg_db.app_role)
            after = made.db.execute_sql("SELECT current_setting('sprongus.subject', true)").fetchone()
            assert after[0] in (None, "")  # transaction-local: gone with the transaction
        assert any(key[0] == subject for key in dialect._QUOTED_SETTINGS)
    finally:
        made.close()
