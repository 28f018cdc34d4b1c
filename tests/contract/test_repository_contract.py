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


@pytest.mark.parametrize("scope", [ALICE, P1, SYSTEM], ids=str)
def test_current_reads_what_a_readonly_transaction_reads(uow: UnitOfWork, caller: Principal, scope: Scope) -> None:
    """UnitOfWork.current: one round trip where an engine can (Postgres), the same answer everywhere."""
    rich = rec(scope, "notion.api_token", 7, hmac="h1:q83vEjRWeJA=", meta={"text": "ünïcödé €"},
               ciphertext=bytes(range(256)))
    put(uow, caller, rich, rec(scope, "gone"))
    with uow.transaction(caller) as repo:
        assert repo.mark_deleted(scope, "gone", T0)
    assert uow.current(caller, scope, "notion.api_token") == rich
    assert uow.current(caller, scope, "gone") is None  # soft-deleted: not found, like get
    assert uow.current(caller, scope, "absent") is None
    assert uow.current(caller, BOB if scope != BOB else ALICE, "notion.api_token") is None  # another place


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


def test_mark_deleted_and_restore_report_whether_a_row_changed(uow: UnitOfWork, caller: Principal) -> None:
    """Soft delete flags the row (every field kept, the place still taken); None as `at` restores it."""
    put(uow, caller, rec(ALICE, "k"), rec(SYSTEM, "k"), rec(BOB, "k"))
    with uow.transaction(caller) as repo:
        assert repo.mark_deleted(ALICE, "k", T0) is True
        assert repo.mark_deleted(ALICE, "k", T0 + timedelta(hours=1)) is False  # already deleted: kept as it was
        assert repo.mark_deleted(SYSTEM, "k", T0 + timedelta(seconds=1)) is True
        assert repo.mark_deleted(P1, "k", T0) is False  # absent
        assert repo.mark_deleted(BOB, "k", None) is False  # live: nothing to restore
    assert get(uow, caller, ALICE, "k") is None and get(uow, caller, SYSTEM, "k") is None
    assert get(uow, caller, BOB, "k") == rec(BOB, "k")
    with uow.transaction(caller, readonly=True) as repo:
        assert repo.get_any(ALICE, "k") == rec(ALICE, "k", deleted_at=T0)  # the time round-trips exactly
        assert repo.get_many(ALICE, ["k"]) == []
        assert repo.list_page(ALICE, "", None, 10) == []
        assert repo.list_page(ALICE, "", None, 10, deleted=True) == [rec(ALICE, "k", deleted_at=T0)]
        assert repo.list_page(BOB, "", None, 10, deleted=True) == []
        assert len(repo.scan(None, 10)) == 3  # rotate-master and verify still see deleted secrets
        assert [r.scope for r in repo.deleted_before(T0 + timedelta(hours=1), 10)] == [ALICE, SYSTEM]
        assert [r.scope for r in repo.deleted_before(T0 + timedelta(hours=1), 1)] == [ALICE]
        assert [r.scope for r in repo.deleted_before(T0 + timedelta(hours=1), 1, skip=1)] == [SYSTEM]
        assert repo.deleted_before(T0 + timedelta(hours=1), 10, skip=2) == []
        assert repo.deleted_before(T0, 10) == []  # strictly before
    with pytest.raises(Conflict), uow.transaction(caller) as repo:
        repo.save(rec(ALICE, "k", id="reborn"), None)  # a deleted secret still holds its place
    with uow.transaction(caller) as repo:
        assert repo.mark_deleted(ALICE, "k", None) is True
        assert repo.mark_deleted(ALICE, "k", None) is False
    assert get(uow, caller, ALICE, "k") == rec(ALICE, "k")


def _three_versions(uow: UnitOfWork, caller: Principal, scope: Scope, key: str) -> None:
    put(uow, caller, rec(scope, key))
    with uow.transaction(caller) as repo:
        for version in (2, 3):
            repo.archive(rec(scope, key, version - 1))
            repo.save(rec(scope, key, version, version_by="alice"), version - 1)


def test_archive_keeps_old_versions_that_read_back_exactly(uow: UnitOfWork, caller: Principal) -> None:
    _three_versions(uow, caller, ALICE, "k")
    _three_versions(uow, caller, SYSTEM, "k")
    with uow.transaction(caller, readonly=True) as repo:
        assert repo.get(ALICE, "k") == rec(ALICE, "k", 3, version_by="alice")
        assert repo.versions(ALICE, "k") == [rec(ALICE, "k", 2), rec(ALICE, "k", 1)]
        assert repo.get_version(SYSTEM, "k", 1) == rec(SYSTEM, "k", 1)
        assert repo.get_version(ALICE, "k", 3) is None  # the current one is not a kept version
        assert repo.versions(BOB, "k") == []
        assert [(r.scope, r.version) for r in repo.scan_versions(None, 10)] == [
            (SYSTEM, 1), (SYSTEM, 2), (ALICE, 1), (ALICE, 2)]  # ordered by (secret id, version)
        first = repo.scan_versions(None, 1)[0]
        assert [(r.scope, r.version) for r in repo.scan_versions((first.id, first.version), 2)] == [
            (SYSTEM, 2), (ALICE, 1)]
    assert uow.count_by_master_key(caller) == {"memory:v1": 6}
    with uow.transaction(caller) as repo:
        repo.archive(rec(ALICE, "k", 2, ciphertext=b"another"))  # archiving a kept number again changes nothing
        assert repo.prune(ALICE, "k", 2) == [1]
        assert repo.prune(ALICE, "k", 2) == []
        assert repo.versions(ALICE, "k") == [rec(ALICE, "k", 2)]
        assert repo.save_version(rec(ALICE, "k", 2, master="kms:v2"), "sha256:stale") is False
        assert repo.save_version(rec(ALICE, "k", 2, master="kms:v2"), rec(ALICE, "k", 2).checksum) is True
        assert repo.save_version(rec(ALICE, "k", 1), rec(ALICE, "k", 1).checksum) is False  # pruned
    assert uow.count_by_master_key(caller) == {"memory:v1": 4, "kms:v2": 1}


def test_purge_destroys_every_version_and_remembers_the_last_number(uow: UnitOfWork, caller: Principal) -> None:
    _three_versions(uow, caller, ALICE, "k")
    _three_versions(uow, caller, SYSTEM, "k")
    put(uow, caller, rec(BOB, "k"))
    with uow.transaction(caller) as repo:
        assert repo.mark_deleted(SYSTEM, "k", T0)
        assert repo.purge(ALICE, "k", T0) == [3, 2, 1]
        assert repo.purge(SYSTEM, "k", T0) == [3, 2, 1]  # deleted or not
        assert repo.purge(ALICE, "k", T0) == []
        assert repo.purge(P1, "k", T0) == []
    with uow.transaction(caller, readonly=True) as repo:
        for scope in (ALICE, SYSTEM):
            assert repo.get_any(scope, "k") is None and repo.versions(scope, "k") == []
            assert repo.last_purged_version(scope, "k") == 3
        assert repo.last_purged_version(BOB, "k") == 0 and repo.last_purged_version(ALICE, "other") == 0
        assert repo.scan_versions(None, 10) == []
        assert repo.scan(None, 10) == [rec(BOB, "k")]
    put(uow, caller, rec(ALICE, "k", 4, id="reborn"))  # the place is free again
    with uow.transaction(caller) as repo:
        assert repo.purge(ALICE, "k", T0 + timedelta(days=1)) == [4]
        assert repo.last_purged_version(ALICE, "k") == 4


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
    put(uow, caller, rec(ALICE, "updated"), rec(SYSTEM, "purged"), rec(BOB, "untouched"), rec(BOB, "deleted"))
    with uow.transaction(caller) as repo:
        repo.archive(rec(SYSTEM, "purged"))
        repo.save(rec(SYSTEM, "purged", 2), 1)
        assert repo.mark_deleted(BOB, "deleted", T0)
    before = all_rows(uow, caller)
    with uow.transaction(caller) as repo:
        versions_before = repo.scan_versions(None, 100)
    with pytest.raises(RuntimeError), uow.transaction(caller) as repo:
        repo.save(rec(ALICE, "inserted"), None)
        repo.archive(rec(ALICE, "updated"))
        repo.save(rec(ALICE, "updated", 2), 1)
        repo.archive(rec(ALICE, "updated", 2))
        repo.save(rec(ALICE, "updated", 3), 2)
        assert repo.prune(ALICE, "updated", 2) == [1]
        assert repo.purge(SYSTEM, "purged", T0) == [2, 1]
        repo.save(rec(SYSTEM, "purged", 3, id="replacement"), None)
        assert repo.mark_deleted(BOB, "untouched", T0)
        assert repo.mark_deleted(BOB, "deleted", None)
        raise RuntimeError("crash mid-transaction")
    assert all_rows(uow, caller) == before
    assert get(uow, caller, ALICE, "inserted") is None
    with uow.transaction(caller) as repo:
        assert repo.scan_versions(None, 100) == versions_before == [rec(SYSTEM, "purged")]
        assert repo.versions(ALICE, "updated") == []
        assert repo.last_purged_version(SYSTEM, "purged") == 0
        assert repo.get(BOB, "untouched") == rec(BOB, "untouched") and repo.get(BOB, "deleted") is None
    assert uow.count_by_master_key(caller) == {"memory:v1": 5}


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
