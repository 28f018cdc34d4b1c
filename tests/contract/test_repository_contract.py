"""The SecretRepository / UnitOfWork contract: every adapter in UOW_FACTORIES runs this same suite.

A factory takes a fresh temporary directory and returns an empty UnitOfWork. It may instead be a generator
function that yields the UnitOfWork and cleans up afterwards, or call pytest.skip when its backend is absent.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.memory import InMemoryUnitOfWork
from sprongus.domain.errors import Conflict
from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope
from sprongus.ports import UnitOfWork
from tests.harness import owner


def _sqlite(tmp: Path) -> Any:
    from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
    from sprongus.entrypoints.storage import open_embedded_vault

    return PeeweeUnitOfWork(open_embedded_vault(f"sqlite:///{tmp}/vault.db"))


def _postgres(tmp: Path) -> Iterator[Any]:
    """The maintenance role: the contract is about storage; tenancy under RLS is tested in integration/."""
    from sprongus.adapters.peewee.db import open_postgres
    from sprongus.adapters.peewee.models import BoundModels
    from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
    from tests.pg import fresh_database

    with fresh_database(migrated=True) as database:
        db = open_postgres(database.maintenance_url)
        try:
            yield PeeweeUnitOfWork(BoundModels(db))
        finally:
            db.close()


UOW_FACTORIES: dict[str, Callable[[Path], Any]] = {
    "memory": lambda tmp: InMemoryUnitOfWork(),
    "sqlite": _sqlite,
    "postgres": _postgres,
}

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
ALICE, BOB, P1, SYSTEM = Scope.user("alice"), Scope.user("bob"), Scope.project("alice"), Scope.system()


@pytest.fixture(params=list(UOW_FACTORIES))
def uow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UnitOfWork]:
    factory = UOW_FACTORIES[request.param]
    if inspect.isgeneratorfunction(factory):
        with contextmanager(factory)(tmp_path) as made:
            yield made
    else:
        yield factory(tmp_path)


@pytest.fixture
def caller() -> Principal:
    return owner()


def rec(scope: Scope, key: str, version: int = 1, *, id: str | None = None, master: str = "memory:v1",
        **changes: Any) -> SecretRecord:
    base = SecretRecord(
        id=id or f"id-{scope.owner_type.value}-{scope.owner_id}-{key}", scope=scope, key=key,
        ciphertext=b"\x00ct\xff" + key.encode() + bytes([version]), dek_wrapped=b"\x01\x02wrapped\x00",
        nonce=bytes(range(12)), alg="AES-256-GCM", master_key_id=master, version=version,
        created_at=T0, updated_at=T0 + timedelta(seconds=version), last_rotated_at=None,
        meta={"provider": "notion"}, hmac=None, checksum=f"sha256:{key}:{version}")
    return replace(base, **changes)


def put(uow: UnitOfWork, caller: Principal, *records: SecretRecord) -> None:
    with uow.transaction(caller) as repo:
        for record in records:
            repo.save(record, None)


def get(uow: UnitOfWork, caller: Principal, scope: Scope, key: str) -> SecretRecord | None:
    with uow.transaction(caller) as repo:
        return repo.get(scope, key)


def all_rows(uow: UnitOfWork, caller: Principal) -> list[SecretRecord]:
    with uow.transaction(caller) as repo:
        return repo.scan(None, 10_000)


def test_get_of_a_missing_row_is_none(uow: UnitOfWork, caller: Principal) -> None:
    assert get(uow, caller, ALICE, "nope") is None
    assert get(uow, caller, SYSTEM, "nope") is None


@pytest.mark.parametrize("scope", [ALICE, P1, SYSTEM], ids=str)
def test_records_round_trip_every_field_exactly(uow: UnitOfWork, caller: Principal, scope: Scope) -> None:
    plain = rec(scope, "plain")
    rich = rec(scope, "notion.api_token", 7, hmac="h1:q83vEjRWeJA=", last_rotated_at=T0 + timedelta(days=3),
               meta={"provider": "notion", "n": 3, "ratio": 0.25, "on": True, "off": False, "none": None,
                     "text": "ünïcödé €"}, ciphertext=bytes(range(256)))
    empty = rec(scope, "empty", meta={}, ciphertext=b"")
    put(uow, caller, plain, rich, empty)
    for original in (plain, rich, empty):
        got = get(uow, caller, scope, original.key)
        assert got == original
        assert got is not None
        for moment in (got.created_at, got.updated_at):
            assert moment.utcoffset() == timedelta(0)
        assert type(got.ciphertext) is bytes and type(got.meta) is dict
    got_plain = get(uow, caller, scope, "plain")
    assert got_plain is not None and got_plain.last_rotated_at is None and got_plain.hmac is None


def test_insert_then_compare_and_set_update(uow: UnitOfWork, caller: Principal) -> None:
    put(uow, caller, rec(ALICE, "k"))
    v2 = rec(ALICE, "k", 2, meta={"env": "prod"}, last_rotated_at=T0 + timedelta(hours=1))
    with uow.transaction(caller) as repo:
        repo.save(v2, 1)
    assert get(uow, caller, ALICE, "k") == v2


@pytest.mark.parametrize("scope", [ALICE, SYSTEM], ids=str)
def test_stale_expected_version_and_duplicate_insert_conflict(uow: UnitOfWork, caller: Principal,
                                                              scope: Scope) -> None:
    put(uow, caller, rec(scope, "k"))
    with uow.transaction(caller) as repo:
        repo.save(rec(scope, "k", 2), 1)
    for stale in (rec(scope, "k", 2), rec(scope, "k", 3, id="other-id")):
        with pytest.raises(Conflict), uow.transaction(caller) as repo:
            repo.save(stale, 1)
    with pytest.raises(Conflict), uow.transaction(caller) as repo:
        repo.save(rec(scope, "k", 1, id="a-second-row"), None)
    with pytest.raises(Conflict), uow.transaction(caller) as repo:
        repo.save(rec(scope, "missing", 2), 1)
    assert get(uow, caller, scope, "k") == rec(scope, "k", 2)
    assert get(uow, caller, scope, "missing") is None
    assert len(all_rows(uow, caller)) == 1


def test_same_key_in_different_scopes_are_different_rows(uow: UnitOfWork, caller: Principal) -> None:
    rows = [rec(s, "k", meta={"who": str(s)}) for s in (ALICE, BOB, P1, SYSTEM)]
    put(uow, caller, *rows)
    for row in rows:
        assert get(uow, caller, row.scope, "k") == row


def test_delete_reports_whether_a_row_went(uow: UnitOfWork, caller: Principal) -> None:
    put(uow, caller, rec(ALICE, "k"), rec(SYSTEM, "k"), rec(BOB, "k"))
    with uow.transaction(caller) as repo:
        assert repo.delete(ALICE, "k") is True
        assert repo.delete(ALICE, "k") is False
        assert repo.delete(SYSTEM, "k") is True
        assert repo.delete(P1, "k") is False
    assert get(uow, caller, ALICE, "k") is None and get(uow, caller, SYSTEM, "k") is None
    assert get(uow, caller, BOB, "k") is not None
    put(uow, caller, rec(ALICE, "k", id="reborn"))  # a deleted key can be created again
    assert get(uow, caller, ALICE, "k") == rec(ALICE, "k", id="reborn")


# Byte order, not a locale collation: keyset cursors compare with `>` in the same order.
KEYS = ["B", "a", "a-b", "a.b", "a_b", "aB", "a0", "Z9", "b", "a.b.c", "ab", "ax"]


@pytest.mark.parametrize("scope", [ALICE, SYSTEM], ids=str)
def test_list_page_orders_by_key_and_pages_with_after_key(uow: UnitOfWork, caller: Principal, scope: Scope) -> None:
    put(uow, caller, *[rec(scope, k) for k in KEYS], rec(BOB if scope == ALICE else ALICE, "a0"))
    with uow.transaction(caller) as repo:
        assert [r.key for r in repo.list_page(scope, "", None, 100)] == sorted(KEYS)
        assert [r.key for r in repo.list_page(scope, "", None, 3)] == sorted(KEYS)[:3]
        assert [r.key for r in repo.list_page(scope, "", "a.b", 3)] == sorted(KEYS)[sorted(KEYS).index("a.b") + 1:][:3]
        assert [r.key for r in repo.list_page(scope, "", "zzz", 3)] == []
        assert [r.key for r in repo.list_page(scope, "", "a-c", 100)] == [k for k in sorted(KEYS) if k > "a-c"]
        assert repo.list_page(Scope.project("nobody"), "", None, 100) == []


def test_list_page_prefix_is_literal(uow: UnitOfWork, caller: Principal) -> None:
    put(uow, caller, *[rec(ALICE, k) for k in ("a_x", "abx", "a.x", "aXx", "a_", "b_x", "A_x")])
    with uow.transaction(caller) as repo:
        assert [r.key for r in repo.list_page(ALICE, "a_", None, 100)] == ["a_", "a_x"]
        assert [r.key for r in repo.list_page(ALICE, "a.", None, 100)] == ["a.x"]
        assert [r.key for r in repo.list_page(ALICE, "a", "a.x", 100)] == ["aXx", "a_", "a_x", "abx"]
        assert [r.key for r in repo.list_page(ALICE, "a_", "a_", 1)] == ["a_x"]
        assert repo.list_page(ALICE, "c", None, 100) == []


def test_get_many_returns_the_named_rows_of_one_scope_only(uow: UnitOfWork, caller: Principal) -> None:
    put(uow, caller, *[rec(ALICE, k) for k in ("a", "b", "c.d")], rec(BOB, "a"), rec(SYSTEM, "b"))
    with uow.transaction(caller, readonly=True) as repo:
        found = sorted(repo.get_many(ALICE, ["c.d", "a", "absent", "A"]), key=lambda r: r.key)
        assert found == [rec(ALICE, "a"), rec(ALICE, "c.d")]  # exactly, byte for byte; no other scope's row
        assert repo.get_many(SYSTEM, ["a", "b"]) == [rec(SYSTEM, "b")]
        assert repo.get_many(ALICE, []) == []
        assert len(repo.get_many(ALICE, [f"k{i}" for i in range(1000)] + ["b"])) == 1  # a long list, one query


def test_scan_orders_by_id_across_scopes(uow: UnitOfWork, caller: Principal) -> None:
    rows = [rec(ALICE, "k1", id="id-05"), rec(SYSTEM, "k2", id="id-01", master="memory:v2"),
            rec(P1, "k3", id="id-09"), rec(BOB, "k4", id="id-03", master="memory:v2"), rec(ALICE, "k5", id="id-07")]
    put(uow, caller, *rows)
    with uow.transaction(caller) as repo:
        assert [r.id for r in repo.scan(None, 100)] == ["id-01", "id-03", "id-05", "id-07", "id-09"]
        assert [r.id for r in repo.scan(None, 2)] == ["id-01", "id-03"]
        assert [r.id for r in repo.scan("id-03", 2)] == ["id-05", "id-07"]
        assert [r.id for r in repo.scan("id-09", 2)] == []
        assert [r.id for r in repo.scan(None, 100, not_on_master_key="memory:v2")] == ["id-05", "id-07", "id-09"]
        assert [r.id for r in repo.scan("id-05", 100, not_on_master_key="memory:v1")] == []
        assert [r.id for r in repo.scan(None, 100, not_on_master_key="memory:v1")] == ["id-01", "id-03"]
        assert repo.scan(None, 100)[0] == rows[1]


def test_count_by_master_key(uow: UnitOfWork, caller: Principal) -> None:
    assert uow.count_by_master_key(caller) == {}
    put(uow, caller, rec(ALICE, "a"), rec(SYSTEM, "b", master="kms:v2"), rec(P1, "c"), rec(BOB, "d"))
    assert uow.count_by_master_key(caller) == {"memory:v1": 3, "kms:v2": 1}


def test_a_failing_transaction_leaves_every_row_as_before(uow: UnitOfWork, caller: Principal) -> None:
    put(uow, caller, rec(ALICE, "updated"), rec(SYSTEM, "deleted"), rec(BOB, "untouched"))
    before = all_rows(uow, caller)
    with pytest.raises(RuntimeError), uow.transaction(caller) as repo:
        repo.save(rec(ALICE, "inserted"), None)
        repo.save(rec(ALICE, "updated", 2), 1)
        repo.save(rec(ALICE, "updated", 3), 2)
        assert repo.delete(SYSTEM, "deleted")
        repo.save(rec(SYSTEM, "deleted", id="replacement"), None)
        raise RuntimeError("crash mid-transaction")
    assert all_rows(uow, caller) == before
    assert get(uow, caller, ALICE, "inserted") is None
    assert uow.count_by_master_key(caller) == {"memory:v1": 3}


def test_a_conflict_rolls_back_the_earlier_writes_of_its_transaction(uow: UnitOfWork, caller: Principal) -> None:
    put(uow, caller, rec(ALICE, "exists"))
    with pytest.raises(Conflict), uow.transaction(caller) as repo:
        repo.save(rec(ALICE, "first"), None)
        repo.save(rec(ALICE, "exists", id="dup"), None)
    assert get(uow, caller, ALICE, "first") is None
    assert all_rows(uow, caller) == [rec(ALICE, "exists")]


def test_writes_are_visible_inside_their_transaction(uow: UnitOfWork, caller: Principal) -> None:
    with uow.transaction(caller) as repo:
        repo.save(rec(ALICE, "k"), None)
        assert repo.get(ALICE, "k") == rec(ALICE, "k")
        assert [r.key for r in repo.list_page(ALICE, "", None, 10)] == ["k"]
        repo.save(rec(ALICE, "k", 2), 1)
        assert repo.get(ALICE, "k") == rec(ALICE, "k", 2)


def test_a_lost_compare_and_set_leaves_the_transaction_usable(uow: UnitOfWork, caller: Principal) -> None:
    # rotate_master counts such a row as skipped and carries on with the rest of its batch.
    put(uow, caller, rec(ALICE, "moved"), rec(ALICE, "next"))
    with uow.transaction(caller) as repo:
        with pytest.raises(Conflict):
            repo.save(rec(ALICE, "moved", 2), 5)
        repo.save(rec(ALICE, "next", 2), 1)
    assert get(uow, caller, ALICE, "next") == rec(ALICE, "next", 2)
    assert get(uow, caller, ALICE, "moved") == rec(ALICE, "moved")
