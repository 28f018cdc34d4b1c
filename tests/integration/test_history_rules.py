"""Every version kept: the rules of history on real SQLite and Postgres containers and on the in-memory harness.

Pruning at the window, destroy audit rows, version numbers never reused, rollback re-seals, soft delete hides a
secret from everything but history, restore, purge (checked with raw SQL), purge_expired's retention and its owner
check, and a tampered old version failing closed.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.envelope import aad_for, checksum
from sprongus.domain.errors import IntegrityError, NotFound, PermissionDenied
from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import UnitOfWork
from sprongus.service.batch_reveal import BatchRevealOps
from sprongus.service.history import HistoryOps
from sprongus.service.rotation import RotationOps
from sprongus.service.sealing import sealed_of
from sprongus.service.secrets import SecretOps
from sprongus.service.transfer import TransferOps
from tests.harness import make_harness
from tests.integration.stack import alice, bob, build, environment, new_key, owner, sqlite_url

MAX = 3
RETENTION = 3600  # seconds
ALICE = Scope.user("alice")
CANARY = "CANARY-history-7f3a9c-"
BACKENDS = ["memory", "sqlite", "postgres"]


@dataclass
class Vault:
    """One backend's use cases plus what a test needs below them: raw SQL, the audit rows, time."""

    name: str
    secrets: SecretOps
    history: HistoryOps
    transfer: TransferOps
    rotation: RotationOps
    batch: BatchRevealOps
    uow: UnitOfWork
    events: Callable[[], list[tuple[str, str | None, int | None, dict[str, Any], str]]]  # ... outcome
    age_deletion: Callable[[Scope, str, timedelta], None]  # move a deleted_at back in time
    tamper_version: Callable[[Scope, str, int], None]  # flip a byte of a kept version's ciphertext
    raw: Callable[[str], list[tuple[Any, ...]]] | None = None  # SQL as a superuser (None: memory)
    audit_ok: Callable[[], bool] = lambda: True

    def set(self, key: str, value: str, scope: Scope = ALICE, who: Principal | None = None) -> int:
        return self.secrets.set(who or owner(), scope, key, SecretValue(value)).view.version

    def reveal(self, key: str, scope: Scope = ALICE, version: int | None = None,
               who: Principal | None = None) -> str:
        view = self.secrets.get(who or owner(), scope, key, reveal=True, version=version)
        assert view.value is not None
        return view.value.reveal()

    def numbers(self, key: str, scope: Scope = ALICE) -> list[int]:
        return [item.version for item in self.history.history(owner(), scope, key).items]

    def records(self, key: str, scope: Scope = ALICE) -> tuple[SecretRecord | None, list[SecretRecord]]:
        with self.uow.transaction(owner(), readonly=True) as repo:
            current = repo.get_any(scope, key)
            return current, repo.versions(scope, key)


def _frozen(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def _memory() -> Iterator[Vault]:
    h = make_harness(reveal_limit="10000/minute", write_limit="10000/minute")
    deps = replace(h.deps, max_versions=MAX, delete_retention=timedelta(seconds=RETENTION))

    def age(scope: Scope, key: str, by: timedelta) -> None:
        h.clock.advance(by.total_seconds())

    def tamper(scope: Scope, key: str, version: int) -> None:
        place = (scope, key, version)
        record = h.uow.repository.kept[place]
        h.uow.repository.kept[place] = replace(record, ciphertext=_flip(record.ciphertext))

    def events() -> list[tuple[str, str | None, int | None, dict[str, Any], str]]:
        return [(e.action.value, e.key_name, e.version, dict(e.detail), e.outcome.value) for e in h.audit.events]

    yield Vault("memory", SecretOps(deps), HistoryOps(deps), TransferOps(deps), RotationOps(deps),
                BatchRevealOps(deps), h.uow, events, age, tamper,
                audit_ok=lambda: h.audit.verify_chain().problems == [])


def _sql_vault(name: str, env: dict[str, str], raw: Callable[[str, list[Any]], list[tuple[Any, ...]]],
               decode_ct: Callable[[Any], bytes], encode_ct: Callable[[bytes], Any]) -> Iterator[Vault]:
    stack = build({**env, "SPRONGUS_MAX_VERSIONS": str(MAX), "SPRONGUS_DELETE_RETENTION": str(RETENTION)})
    c = stack.container
    p = "?" if name == "sqlite" else "%s"
    time_field = stack.models.secret._meta.fields["deleted_at"]

    def where(scope: Scope) -> tuple[str, list[Any]]:
        if scope.owner_id is None:
            return f"owner_type = {p} AND owner_id IS NULL", [scope.owner_type.value]
        return f"owner_type = {p} AND owner_id = {p}", [scope.owner_type.value, scope.owner_id]

    def age(scope: Scope, key: str, by: timedelta) -> None:
        place, params = where(scope)
        (stamp,) = raw(f"SELECT deleted_at FROM secret_kv WHERE {place} AND key_name = {p}", [*params, key])[0]
        moved = time_field.db_value(time_field.python_value(stamp) - by)
        raw(f"UPDATE secret_kv SET deleted_at = {p} WHERE {place} AND key_name = {p}", [moved, *params, key])

    def tamper(scope: Scope, key: str, version: int) -> None:
        place, params = where(scope)
        sel = f"{place} AND key_name = {p} AND version = {p}"
        (ct,) = raw(f"SELECT ciphertext FROM secret_version WHERE {sel}", [*params, key, version])[0]
        raw(f"UPDATE secret_version SET ciphertext = {p} WHERE {sel}",
            [encode_ct(_flip(decode_ct(ct))), *params, key, version])

    def events() -> list[tuple[str, str | None, int | None, dict[str, Any], str]]:
        rows = raw("SELECT action, key_name, version, detail, outcome FROM audit_event ORDER BY seq", [])
        return [(a, k, v, _frozen(d), o) for a, k, v, d, o in rows]

    try:
        yield Vault(name, c.secret_ops(), c.history_ops(), c.transfer_ops(), c.rotation_ops(),
                    c.batch_reveal_ops(), c.unit_of_work(), events, age, tamper,
                    raw=lambda sql: raw(sql, []), audit_ok=lambda: stack.audit.verify_chain().problems == [])
    finally:
        stack.close()


def _sqlite(tmp: Path) -> Iterator[Vault]:
    path = tmp / "vault.db"

    def raw(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(path)) as conn, conn:
            return conn.execute(sql, params).fetchall()

    yield from _sql_vault("sqlite", environment(sqlite_url(tmp), new_key()), raw,
                          lambda ct: base64.b64decode(ct), lambda ct: base64.b64encode(ct).decode("ascii"))


def _postgres(request: pytest.FixtureRequest) -> Iterator[Vault]:
    pg = request.getfixturevalue("pg_db")

    def raw(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with pg.admin() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    yield from _sql_vault("postgres", environment(pg.maintenance_url, new_key()), raw, bytes, lambda ct: ct)


@pytest.fixture(params=BACKENDS)
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    if request.param == "memory":
        yield from _memory()
    elif request.param == "sqlite":
        yield from _sqlite(tmp_path)
    else:
        yield from _postgres(request)


def _count(vault: Vault, table: str, key: str) -> int:
    assert vault.raw is not None
    return int(vault.raw(f"SELECT count(*) FROM {table} WHERE key_name = '{key}'")[0][0])


# --- retention window ---------------------------------------------------------------------------------------------

def test_the_window_keeps_max_versions_and_audits_each_destroyed_one_by_number(vault: Vault) -> None:
    for n in range(1, 6):
        assert vault.set("api.token", f"{CANARY}{n}") == n
    assert vault.numbers("api.token") == [5, 4, 3]
    for n in (3, 4, 5):
        assert vault.reveal("api.token", version=n) == f"{CANARY}{n}"
    for gone in (1, 2):
        with pytest.raises(NotFound):
            vault.secrets.get(owner(), ALICE, "api.token", version=gone)
    destroyed = [e for e in vault.events() if e[0] == "destroy"]
    assert [(k, v, d.get("reason")) for _, k, v, d, _o in destroyed] == [("api.token", 1, "retention"),
                                                                      ("api.token", 2, "retention")]
    assert CANARY not in json.dumps(vault.events(), default=str)
    if vault.raw is not None:
        assert _count(vault, "secret_version", "api.token") == MAX - 1
        assert _count(vault, "secret_kv", "api.token") == 1
    assert vault.audit_ok()


def test_history_names_authors_and_the_current_version(vault: Vault) -> None:
    vault.set("k", "one", who=alice())
    vault.set("k", "two", who=owner())
    items = vault.history.history(owner(), ALICE, "k").items
    assert [(i.version, i.created_by, i.current) for i in items] == [(2, "owner", True), (1, "alice", False)]


# --- version numbers are never reused -----------------------------------------------------------------------------

def test_numbers_continue_after_a_purge(vault: Vault) -> None:
    for n in range(1, 5):
        vault.set("k", f"v{n}")
    assert vault.history.purge(owner(), ALICE, "k") == [4, 3, 2]
    with pytest.raises(NotFound):
        vault.history.history(owner(), ALICE, "k")
    result = vault.secrets.set(owner(), ALICE, "k", SecretValue("after"))
    assert (result.created, result.view.version) == (True, 5)
    assert vault.numbers("k") == [5]
    assert vault.reveal("k") == "after"
    vault.history.purge(owner(), ALICE, "k")
    assert vault.set("k", "again") == 6  # the tombstone moved on


def test_numbers_continue_after_delete_and_restore_and_after_set_on_deleted(vault: Vault) -> None:
    vault.set("a", "a1")
    vault.set("a", "a2")
    vault.secrets.unset(owner(), ALICE, "a")
    restored = vault.history.restore(owner(), ALICE, "a")
    assert restored.version == 2 and vault.reveal("a") == "a2"
    assert vault.set("a", "a3") == 3
    assert vault.numbers("a") == [3, 2, 1]

    vault.set("b", "b1")
    vault.set("b", "b2")
    vault.secrets.unset(owner(), ALICE, "b")
    again = vault.secrets.set(owner(), ALICE, "b", SecretValue("b3"))
    assert (again.created, again.view.version) == (True, 3)  # live again, with a new number
    assert vault.numbers("b") == [3, 2, 1]
    assert vault.reveal("b", version=2) == "b2" and vault.reveal("b") == "b3"
    assert vault.history.history(owner(), ALICE, "b").deleted_at is None


# --- rollback -----------------------------------------------------------------------------------------------------

def test_rollback_writes_latest_plus_one_sealed_afresh(vault: Vault) -> None:
    for value in ("first", "second", "third"):
        vault.set("db.url", value)
    _, older = vault.records("db.url")
    source = next(r for r in older if r.version == 1)
    result = vault.history.rollback(owner(), ALICE, "db.url", 1)
    assert (result.created, result.view.version) == (False, 4)
    assert vault.reveal("db.url") == "first"
    current, kept = vault.records("db.url")
    assert current is not None and current.version == 4
    assert [r.version for r in kept] == [3, 2]  # version 1 fell out of the window of 3
    for field in ("ciphertext", "dek_wrapped", "nonce"):
        assert getattr(current, field) != getattr(source, field), field
    assert current.checksum == checksum(sealed_of(current), aad_for(ALICE, "db.url", 4))
    assert current.checksum != checksum(sealed_of(current), aad_for(ALICE, "db.url", 1))
    assert current.id == source.id
    rollback = [e for e in vault.events() if e[0] == "rollback"]
    assert [(k, v, d.get("from_version")) for _, k, v, d, _o in rollback] == [("db.url", 4, 1)]
    # Rolling back to the current version is a new version too; to a destroyed one is not found.
    assert vault.history.rollback(owner(), ALICE, "db.url", 4).view.version == 5
    with pytest.raises(NotFound):
        vault.history.rollback(owner(), ALICE, "db.url", 1)
    assert vault.audit_ok()


def test_a_tampered_old_version_fails_closed_and_writes_nothing(vault: Vault) -> None:
    vault.set("k", "one")
    vault.set("k", "two")
    vault.tamper_version(ALICE, "k", 1)
    before = vault.records("k")
    successes = [e for e in vault.events() if e[4] == "success"]
    with pytest.raises(IntegrityError):
        vault.reveal("k", version=1)
    with pytest.raises(IntegrityError):
        vault.history.rollback(owner(), ALICE, "k", 1)
    assert vault.records("k") == before
    after = vault.events()
    assert [e for e in after if e[4] == "success"] == successes
    assert [(e[0], e[1]) for e in after if e[4] != "success"] == [("reveal", "k"), ("rollback", "k")]
    assert vault.reveal("k") == "two" and vault.numbers("k") == [2, 1]


# --- soft delete, restore, purge ----------------------------------------------------------------------------------

def test_a_deleted_secret_is_invisible_except_to_history_and_deleted_listings(vault: Vault) -> None:
    project = Scope.project("p1")
    for scope, who in ((ALICE, alice()), (project, alice())):
        vault.set("gone", "g1", scope, who)
        vault.set("gone", "g2", scope, who)
        vault.set("kept", "k1", scope, who)
        vault.secrets.unset(who, scope, "gone")
    for scope, who in ((ALICE, alice()), (project, alice()), (ALICE, owner())):
        for reveal in (False, True):
            with pytest.raises(NotFound):
                vault.secrets.get(who, scope, "gone", reveal=reveal)
        with pytest.raises(NotFound):
            vault.secrets.get(who, scope, "gone", reveal=True, version=1)
        assert [v.key for v in vault.secrets.list(who, scope).items] == ["kept"]
        deleted = vault.secrets.list(who, scope, deleted=True).items
        assert [v.key for v in deleted] == ["gone"] and deleted[0].deleted_at is not None
        batch = vault.batch.reveal_many(who, scope, keys=["gone", "kept"])
        assert [v.key for v in batch.items] == ["kept"] and batch.missing == ["gone"]
        assert [v.key for v in vault.batch.reveal_many(who, scope, prefix="").items] == ["kept"]
        assert [v.key for v in vault.transfer.export(who, scope).items] == ["kept"]
        with pytest.raises(NotFound):
            vault.rotation.rotate(who, scope, "gone")
        history = vault.history.history(who, scope, "gone")
        assert [i.version for i in history.items] == [2, 1] and history.deleted_at is not None
    assert vault.rotation.rotate(owner(), ALICE).rotated == 1  # the live one only
    for what in (lambda: vault.history.history(bob(), ALICE, "gone"),
                 lambda: vault.history.restore(bob(), ALICE, "gone"),
                 lambda: vault.history.rollback(bob(), ALICE, "gone", 1),
                 lambda: vault.secrets.list(bob(), ALICE, deleted=True),
                 lambda: vault.secrets.get(bob(), project, "gone")):
        with pytest.raises(NotFound):
            what()
    with pytest.raises(NotFound):  # a deleted secret cannot be rolled back: restore it first
        vault.history.rollback(owner(), ALICE, "gone", 1)


def test_restore_brings_back_every_version(vault: Vault) -> None:
    vault.set("k", "one")
    vault.set("k", "two")
    vault.secrets.unset(owner(), ALICE, "k")
    with pytest.raises(NotFound):
        vault.secrets.unset(owner(), ALICE, "k")
    view = vault.history.restore(owner(), ALICE, "k")
    assert (view.version, view.deleted_at) == (2, None)
    assert vault.reveal("k") == "two" and vault.reveal("k", version=1) == "one"
    with pytest.raises(NotFound):
        vault.history.restore(owner(), ALICE, "k")  # not deleted
    with pytest.raises(NotFound):
        vault.history.restore(owner(), ALICE, "never")
    writes = [e[0] for e in vault.events() if e[1] == "k" and e[4] == "success" and e[0] != "reveal"]
    assert writes == ["create", "update", "delete", "restore"]


def test_purge_removes_every_row_live_or_deleted(vault: Vault) -> None:
    for n in range(1, 4):
        vault.set("live", f"{CANARY}{n}")
        vault.set("dead", f"{CANARY}{n}")
    vault.set("live", "other scope", Scope.project("p1"))
    vault.secrets.unset(owner(), ALICE, "dead")
    with pytest.raises(PermissionDenied):
        vault.history.purge(alice(), ALICE, "live")  # needs secrets:admin besides write
    with pytest.raises(NotFound):
        vault.history.purge(bob(), ALICE, "live")
    assert vault.history.purge(owner(), ALICE, "live") == [3, 2, 1]
    assert vault.history.purge(owner(), ALICE, "dead") == [3, 2, 1]
    with pytest.raises(NotFound):
        vault.history.purge(owner(), ALICE, "dead")
    for key in ("live", "dead"):
        assert vault.records(key) == (None, [])
        with pytest.raises(NotFound):
            vault.history.history(owner(), ALICE, key)
    assert vault.reveal("live", Scope.project("p1")) == "other scope"
    if vault.raw is not None:
        assert vault.raw("SELECT count(*) FROM secret_kv WHERE owner_id = 'alice'") == [(0,)]
        assert vault.raw("SELECT count(*) FROM secret_version WHERE owner_id = 'alice'") == [(0,)]
        assert sorted(vault.raw("SELECT key_name, last_version FROM secret_tombstone")) == [("dead", 3), ("live", 3)]
    destroyed = [(k, v, d.get("reason")) for a, k, v, d, o in vault.events()
                 if a == "destroy" and o == "success"]
    assert destroyed == [(k, v, "purge") for k in ("live", "dead") for v in (3, 2, 1)]
    purges = [(k, v, d.get("versions")) for a, k, v, d, o in vault.events()
              if a == "purge" and o == "success"]
    assert purges == [("live", 3, 3), ("dead", 3, 3)]
    assert CANARY not in json.dumps(vault.events(), default=str)
    assert vault.audit_ok()


def test_purge_expired_honours_the_retention_and_only_the_owner_may_run_it(vault: Vault) -> None:
    for key in ("old", "young", "alive"):
        vault.set(key, "v1")
        vault.set(key, "v2")
    vault.secrets.unset(owner(), ALICE, "old")
    with pytest.raises(PermissionDenied):
        vault.history.purge_expired(alice())
    report = vault.history.purge_expired(owner())
    assert (report.secrets, report.versions) == (0, 0)
    vault.age_deletion(ALICE, "old", timedelta(seconds=RETENTION + 60))
    vault.secrets.unset(owner(), ALICE, "young")  # deleted just now (memory: after the clock moved)
    report = vault.history.purge_expired(owner())
    assert (report.secrets, report.versions) == (1, 2)
    assert vault.records("old") == (None, [])
    assert vault.numbers("young") == [2, 1] and vault.numbers("alive") == [2, 1]
    assert vault.reveal("alive") == "v2"
    assert [v.key for v in vault.secrets.list(owner(), ALICE, deleted=True).items] == ["young"]
    assert vault.set("old", "reborn") == 3
    expired = [d for a, k, v, d, o in vault.events() if a == "purge" and k is None and o == "success"]
    assert [(d.get("secrets"), d.get("versions")) for d in expired] == [(0, 0), (1, 2)]
    destroyed = [(k, v, d.get("reason")) for a, k, v, d, o in vault.events()
                 if a == "destroy" and o == "success"]
    assert destroyed == [("old", 2, "expired"), ("old", 1, "expired")]
    denied = [e[4] for e in vault.events() if e[0] == "purge" and e[1] is None and e[4] != "success"]
    assert denied == ["denied"]  # the refused run is audited as a failure, not as a purge with counts
    assert vault.audit_ok()
