"""The key prefix in Postgres row-level security (migration 0004), probed as the app role with raw SQL, and through
the peewee unit of work (set_caller) with the service's own checks out of the way.

A transaction whose `sprongus.key_prefix` is `notion.` can neither see nor touch a row of its own tenant whose key
does not start with it; with the setting empty (every token without a prefix) the whole tenant is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
from sprongus.domain.errors import Conflict, StorageError
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import new_key, stack
from tests.integration.test_rls import INSERT, all_rows
from tests.pg import PgDatabase

SHOP = Scope.project("shop")
SEED = [("n1", "project", "shop", "notion.api_token"), ("n2", "project", "shop", "notion.admin"),
        ("s1", "project", "shop", "stripe.key"), ("s2", "project", "shop", "stripe.webhook"),
        ("x1", "project", "shop", "notion"), ("x2", "project", "shop", "notion-old"),
        ("x3", "project", "shop", "notionXapi"),  # what a LIKE 'notion_%' would let through for prefix notion_
        ("o1", "project", "other", "notion.api_token"), ("u1", "user", "svc", "stripe.mine")]
NOTION = {"n1", "n2"}
SHOP_ROWS = {"n1", "n2", "s1", "s2", "x1", "x2", "x3"}
OUTSIDE = SHOP_ROWS - NOTION


def as_caller(cur: psycopg.Cursor, key_prefix: str | None, subject: str = "svc", projects: str = "shop") -> None:
    """What set_caller does at the start of every transaction; key_prefix None leaves the setting out entirely
    (as set_caller did before migration 0004)."""
    cur.execute("SELECT set_config('sprongus.subject', %s, true), set_config('sprongus.projects', %s, true), "
                "set_config('sprongus.admin', 'off', true)", (subject, projects))
    if key_prefix is not None:
        cur.execute("SELECT set_config('sprongus.key_prefix', %s, true)", (key_prefix,))


def ids(cur: psycopg.Cursor, where: str = "true") -> set[str]:
    cur.execute(f"SELECT id FROM secret_kv WHERE {where}")
    return {row[0] for row in cur.fetchall()}


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


def test_select_sees_only_the_prefix(app: psycopg.Connection) -> None:
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, "notion.")
        assert ids(cur) == NOTION
        assert ids(cur, "key_name = 'stripe.key'") == set()
        assert ids(cur, "key_name LIKE 'stripe%'") == set()
        cur.execute("SELECT count(*) FROM secret_kv WHERE owner_id = 'shop'")
        assert cur.fetchone() == (2,)
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, "stripe.", subject="svc")  # the user scope's row too, and nothing of notion.
        assert ids(cur) == {"s1", "s2", "u1"}


@pytest.mark.parametrize("setting", ["", None], ids=["empty", "never set"])
def test_without_a_prefix_the_whole_tenant_is_visible(app: psycopg.Connection, setting: str | None) -> None:
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, setting)
        assert ids(cur) == SHOP_ROWS | {"u1"}
        cur.execute("UPDATE secret_kv SET version = version + 1")
        assert cur.rowcount == len(SHOP_ROWS) + 1
        raise psycopg.Rollback()


def test_the_prefix_is_matched_literally_not_as_a_like_pattern(app: psycopg.Connection) -> None:
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, "notion_")  # `_` is a LIKE wildcard; as a prefix it is just a character
        assert ids(cur) == set()
        as_caller(cur, "notion")
        assert ids(cur) == NOTION | {"x1", "x2", "x3"}
        as_caller(cur, "notion.a")
        assert ids(cur) == {"n1", "n2"}
        as_caller(cur, "notion.api")
        assert ids(cur) == {"n1"}


def test_update_and_delete_cannot_touch_rows_outside_the_prefix(seeded: PgDatabase, app: psycopg.Connection) -> None:
    before = dict(all_rows(seeded))
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, "notion.")
        cur.execute("UPDATE secret_kv SET version = version + 1 WHERE id IN ('s1', 's2', 'x1', 'x2', 'x3')")
        assert cur.rowcount == 0
        cur.execute("UPDATE secret_kv SET version = version + 1 WHERE key_name = 'stripe.key'")
        assert cur.rowcount == 0
        cur.execute("UPDATE secret_kv SET version = version + 1")
        assert cur.rowcount == len(NOTION)
        cur.execute("DELETE FROM secret_kv WHERE key_name LIKE 'stripe%' OR key_name LIKE 'notion-%'")
        assert cur.rowcount == 0
        cur.execute("DELETE FROM secret_kv WHERE id IN ('s1', 's2', 'x1', 'x2', 'x3', 'o1', 'u1')")
        assert cur.rowcount == 0
        cur.execute("DELETE FROM secret_kv WHERE id = 'n2'")
        assert cur.rowcount == 1
    after = dict(all_rows(seeded))
    assert after == {i: v + 1 for i, v in before.items() if i == "n1"} | {i: v for i, v in before.items()
                                                                           if i not in NOTION}


@pytest.mark.parametrize("key", ["stripe.planted", "notion", "notion-planted", "notionXplanted"])
def test_insert_outside_the_prefix_fails_the_with_check(seeded: PgDatabase, app: psycopg.Connection,
                                                        key: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), app.transaction(), \
            app.cursor() as cur:
        as_caller(cur, "notion.")
        cur.execute(INSERT, ("planted", "project", "shop", key))
    assert "planted" not in dict(all_rows(seeded))
    with app.transaction(), app.cursor() as cur:  # the control: the same insert under the prefix goes in
        as_caller(cur, "notion.")
        cur.execute(INSERT, ("fine", "project", "shop", "notion.planted"))
    assert "fine" in dict(all_rows(seeded))


def test_a_row_cannot_be_renamed_out_of_the_prefix(seeded: PgDatabase, app: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), app.transaction(), \
            app.cursor() as cur:
        as_caller(cur, "notion.")
        cur.execute("UPDATE secret_kv SET key_name = 'stripe.moved' WHERE id = 'n1'")
    with seeded.admin() as conn:
        assert conn.execute("SELECT key_name FROM secret_kv WHERE id = 'n1'").fetchone() == ("notion.api_token",)


def test_the_prefix_ends_with_its_transaction(app: psycopg.Connection) -> None:
    """A pooled connection: the next transaction (set_caller of a token without a prefix) sees its whole tenant,
    and one that sets nothing sees nothing."""
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, "notion.")
        assert ids(cur) == NOTION
    with app.transaction(), app.cursor() as cur:
        cur.execute("SELECT current_setting('sprongus.key_prefix', true)")
        assert cur.fetchone() in ((None,), ("",))
        as_caller(cur, None)
        assert ids(cur) == SHOP_ROWS | {"u1"}
    with app.transaction(), app.cursor() as cur:
        assert ids(cur) == set()


def test_the_prefix_narrows_the_tenant_it_never_widens_it(app: psycopg.Connection) -> None:
    """Another tenant's row under the same prefix stays invisible: the prefix is ANDed with the tenant rules."""
    with app.transaction(), app.cursor() as cur:
        as_caller(cur, "notion.", projects="")
        assert ids(cur) == set()
        as_caller(cur, "notion.", projects="other")
        assert ids(cur) == {"o1"}


def test_maintenance_still_sees_every_row_whatever_the_setting(seeded: PgDatabase) -> None:
    with psycopg.connect(seeded.maintenance_url) as conn, conn.transaction(), conn.cursor() as cur:
        as_caller(cur, "notion.")
        assert ids(cur) == {row[0] for row in SEED}


def test_set_caller_hands_the_principals_prefix_to_the_database(pg_db: PgDatabase) -> None:
    """Below the service: the unit of work, for a prefixed principal, gets nothing outside the prefix from the
    repository, whatever it asks (the service's own checks are not involved here)."""
    keys = new_key()
    owner_side = stack(pg_db.maintenance_url, keys)
    app_side = stack(pg_db.app_url, keys)
    everyone = Principal.local_owner("ops")
    svc = Principal("svc", frozenset({Permission.READ, Permission.WRITE}), frozenset({"shop"}), key_prefix="notion.")
    unprefixed = replace(svc, key_prefix="")
    try:
        for key in ("notion.api_token", "notion.admin", "stripe.key"):
            owner_side.secrets.set(everyone, SHOP, key, SecretValue(key))
        uow = PeeweeUnitOfWork(app_side.models)
        with uow.transaction(svc, readonly=True) as repo:
            assert repo.get(SHOP, "stripe.key") is None
            assert repo.get(SHOP, "notion.api_token") is not None
            assert [r.key for r in repo.list_page(SHOP, "", None, 100)] == ["notion.admin", "notion.api_token"]
            assert repo.list_page(SHOP, "stripe", None, 100) == []
            assert {r.key for r in repo.scan(None, 100)} == {"notion.admin", "notion.api_token"}
        with uow.transaction(unprefixed, readonly=True) as repo:  # the control
            stripe = repo.get(SHOP, "stripe.key")
            assert stripe is not None
            assert [r.key for r in repo.list_page(SHOP, "", None, 100)] == ["notion.admin", "notion.api_token",
                                                                              "stripe.key"]
        with uow.transaction(svc) as repo:
            assert repo.mark_deleted(SHOP, "stripe.key", stripe.updated_at) is False
            assert repo.purge(SHOP, "stripe.key", stripe.updated_at) == []
            with pytest.raises(Conflict):  # the row is not there for it: a compare-and-set finds nothing to update
                repo.save(replace(stripe, version=stripe.version + 1), stripe.version)
        with pytest.raises(StorageError, match="row-level security"), uow.transaction(svc) as repo:
            repo.save(replace(stripe, id="planted", key="stripe.planted"), None)
        after = {v.key: v.version for v in owner_side.secrets.list(everyone, SHOP).items}
        assert after == {"notion.admin": 1, "notion.api_token": 1, "stripe.key": 1}
    finally:
        owner_side.close()
        app_side.close()
