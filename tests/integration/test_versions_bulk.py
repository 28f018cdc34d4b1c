"""Bulk and crypto paths over kept versions, on the in-memory harness, real SQLite and real Postgres.

rotate-master re-wraps kept versions too (and resumes), per-secret rotation re-seals them, verify finds a
tampered old version (raw SQL) and reading it fails closed, bundles round-trip with and without history, and
import, export and bulk rotation write one audit row per key that never holds a value.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.keys_local import KeyVersions
from sprongus.domain.envelope import Envelope, aad_for
from sprongus.domain.errors import IntegrityError, NotFound
from sprongus.domain.import_item import ImportItem
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import UnitOfWork
from sprongus.service.history import HistoryOps
from sprongus.service.rotation import RotationOps
from sprongus.service.sealing import sealed_of
from sprongus.service.secrets import SecretOps
from sprongus.service.transfer import TransferOps
from tests.harness import CANARY, make_harness
from tests.integration.stack import alice, build, environment, new_key, owner, sqlite_url

ALICE = Scope.user("alice")
BACKENDS = ["memory", "sqlite", "postgres"]
Event = tuple[str, str | None, str | None, int | None, dict[str, Any]]  # action, scope, key, version, detail


@dataclass
class Vault:
    secrets: SecretOps
    history: HistoryOps
    transfer: TransferOps
    rotation: RotationOps
    uow: UnitOfWork
    envelope: Envelope
    events: Callable[[], list[Event]]
    tamper: Callable[[str, str, int | None], None]  # (table, key, version): flip a ciphertext byte (raw SQL)
    close: Callable[[], None] = field(default=lambda: None)

    def set(self, key: str, value: str, scope: Scope = ALICE) -> int:
        return self.secrets.set(owner(), scope, key, SecretValue(value)).view.version

    def reveal(self, key: str, version: int | None = None, scope: Scope = ALICE) -> str:
        view = self.secrets.get(owner(), scope, key, reveal=True, version=version)
        assert view.value is not None
        return view.value.reveal()

    def numbers(self, key: str, scope: Scope = ALICE) -> list[int]:
        return [i.version for i in self.history.history(owner(), scope, key).items]

    def records(self, key: str, scope: Scope = ALICE) -> tuple[SecretRecord, list[SecretRecord]]:
        with self.uow.transaction(owner(), readonly=True) as repo:
            current = repo.get_any(scope, key)
            assert current is not None
            return current, repo.versions(scope, key)

    def dek(self, r: SecretRecord) -> bytes:
        return self.envelope.unwrap_dek(sealed_of(r), aad_for(r.scope, r.key, r.version))

    def current_key(self) -> str:
        return self.envelope.current_master_key_id()


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def _detail(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value or {})


# Opens a vault of the test's backend: (master keys, batch size) -> Vault. The same keys reopen the same storage.
Opener = Callable[[str, int], Vault]


def _memory_opener() -> Callable[[], Opener]:
    """Each call of the outer function is one vault (one harness); its opener gives the harness again, with a new
    current master key when the keys say so. Harnesses opened with the same keys share their key versions."""
    shared: dict[str, KeyVersions] = {}

    def fresh() -> Opener:
        state: dict[str, Any] = {}

        def open_(keys: str, batch: int) -> Vault:
            if "h" not in state:
                versions = shared.setdefault(keys, KeyVersions.fresh())
                state["h"], state["keys"] = make_harness(versions, batch_size=batch, write_limit="10000/minute",
                                                         reveal_limit="10000/minute"), keys
            h = state["h"]
            if keys != state["keys"]:  # a new master key first: the harness's own key rotation
                h.add_master_key()
                state["keys"] = keys
            deps = replace(h.deps, batch_size=batch)

            def tamper(table: str, key: str, version: int | None) -> None:
                repo = h.uow.repository
                if table == "secret_version":
                    assert version is not None
                    r = repo.kept[(ALICE, key, version)]
                    repo.kept[(ALICE, key, version)] = replace(r, ciphertext=_flip(r.ciphertext))
                else:
                    r = repo.rows[ALICE][key]
                    repo.rows[ALICE][key] = replace(r, ciphertext=_flip(r.ciphertext))

            def events() -> list[Event]:
                return [(e.action.value, e.scope, e.key_name, e.version, dict(e.detail)) for e in h.audit.events]

            return Vault(SecretOps(deps), HistoryOps(deps), TransferOps(deps), RotationOps(deps), h.uow,
                         deps.sealer.envelope, events, tamper)
        return open_
    return fresh


def _sql_opener(url: str, raw: Callable[[str, list[Any]], list[tuple[Any, ...]]], p: str,
                decode: Callable[[Any], bytes], encode: Callable[[bytes], Any]) -> Opener:
    def open_(keys: str, batch: int) -> Vault:
        stack = build(environment(url, keys, batch_size=batch))
        c = stack.container

        def tamper(table: str, key: str, version: int | None) -> None:
            where = f"owner_type = 'user' AND owner_id = 'alice' AND key_name = {p}"
            params: list[Any] = [key]
            if version is not None:
                where += f" AND version = {p}"
                params.append(version)
            (ct,) = raw(f"SELECT ciphertext FROM {table} WHERE {where}", params)[0]
            raw(f"UPDATE {table} SET ciphertext = {p} WHERE {where}", [encode(_flip(decode(ct))), *params])

        def events() -> list[Event]:
            rows = raw("SELECT action, scope, key_name, version, detail FROM audit_event ORDER BY seq", [])
            return [(a, s, k, v, _detail(d)) for a, s, k, v, d in rows]

        return Vault(c.secret_ops(), c.history_ops(), c.transfer_ops(), c.rotation_ops(), c.unit_of_work(),
                     c.envelope(), events, tamper, close=stack.close)
    return open_


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Opener]]:
    """A factory of fresh vaults (storage) of one backend; each gives an opener for that storage."""
    if request.param == "memory":
        yield _memory_opener()
        return
    with ExitStack() as cleanup:
        made = [0]

        def fresh() -> Opener:
            made[0] += 1
            if request.param == "sqlite":
                directory = tmp_path / f"v{made[0]}"
                directory.mkdir()
                path = directory / "vault.db"

                def raw_sqlite(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                    with closing(sqlite3.connect(path)) as conn, conn:
                        return conn.execute(sql, params).fetchall()
                return _sql_opener(sqlite_url(directory), raw_sqlite, "?", base64.b64decode,
                                   lambda b: base64.b64encode(b).decode("ascii"))
            from tests.pg import fresh_database

            pg = cleanup.enter_context(fresh_database(migrated=True))

            def raw_pg(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                with pg.admin() as conn:
                    cur = conn.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            return _sql_opener(pg.maintenance_url, raw_pg, "%s", bytes, lambda b: b)
        yield fresh


@pytest.fixture
def opened() -> Iterator[list[Vault]]:
    """Vaults a test opened, closed at its end (a Postgres database cannot be dropped under an open connection)."""
    vaults: list[Vault] = []
    yield vaults
    for vault in vaults:
        vault.close()


def _open(opened: list[Vault], opener: Opener, keys: str, batch: int = 500) -> Vault:
    vault = opener(keys, batch)
    opened.append(vault)
    return vault


# --- rotate-master ------------------------------------------------------------------------------------------------

def test_rotate_master_rewraps_kept_versions_and_deleted_secrets_and_old_versions_still_reveal(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    opener, old, new = backend(), new_key("k1"), new_key("k2")
    vault = _open(opened, opener, old)
    for n in (1, 2, 3):
        vault.set("api.token", f"{CANARY}-{n}")
    vault.set("plain", "p1")
    vault.set("gone", "g1")
    vault.set("gone", "g2")
    vault.secrets.unset(owner(), ALICE, "gone")
    old_id = vault.current_key()
    before = {v.version: v for v in vault.records("api.token")[1]}
    vault = _open(opened, opener, f"{new},{old}")
    new_id = vault.current_key()
    assert new_id != old_id and vault.uow.count_by_master_key(owner()) == {old_id: 6}
    report = vault.rotation.rotate_master(owner())
    assert (report.rotated, report.skipped) == (6, 0)  # 3 current rows (one deleted) and 3 kept versions
    assert vault.uow.count_by_master_key(owner()) == {new_id: 6}
    for kept in vault.records("api.token")[1]:  # re-wrapped only: the same ciphertext under a moved DEK
        assert kept.master_key_id == new_id and kept.ciphertext == before[kept.version].ciphertext
        assert kept.dek_wrapped != before[kept.version].dek_wrapped
    for n in (1, 2, 3):
        assert vault.reveal("api.token", version=n) == f"{CANARY}-{n}"
    vault.history.restore(owner(), ALICE, "gone")
    assert (vault.reveal("gone", version=1), vault.reveal("gone")) == ("g1", "g2")
    assert vault.rotation.rotate_master(owner()).rotated == 0
    assert vault.rotation.verify(owner()).ok


class Interrupted(Exception):
    pass


def test_rotate_master_resumes_after_an_interruption_among_the_versions(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    opener, old, new = backend(), new_key("k1"), new_key("k2")
    vault = _open(opened, opener, old, batch=2)
    for key in ("a", "b", "c"):
        vault.set(key, f"{key}1")
    for key in ("a", "b"):
        vault.set(key, f"{key}2")
        vault.set(key, f"{key}3")  # 3 current rows, 4 kept versions
    old_id = vault.current_key()
    vault = _open(opened, opener, f"{new},{old}", batch=2)
    new_id = vault.current_key()
    calls: list[tuple[int, int | None]] = []

    def crash_on_the_third_page(done: int, total: int | None) -> None:
        calls.append((done, total))
        if len(calls) == 3:  # pages: 2 + 1 current rows, then the first page of kept versions
            raise Interrupted()

    with pytest.raises(Interrupted):
        vault.rotation.rotate_master(owner(), progress=crash_on_the_third_page)
    assert calls == [(2, 7), (3, 7), (5, 7)]
    assert vault.uow.count_by_master_key(owner()) == {new_id: 5, old_id: 2}  # committed pages stay done
    report = vault.rotation.rotate_master(owner())
    assert report.rotated == 2
    assert vault.uow.count_by_master_key(owner()) == {new_id: 7}
    for key in ("a", "b"):
        assert [vault.reveal(key, version=n) for n in (1, 2, 3)] == [f"{key}1", f"{key}2", f"{key}3"]
    assert vault.reveal("c") == "c1"


# --- per-secret rotation ------------------------------------------------------------------------------------------

def test_rotating_a_secret_reseals_every_kept_version_under_a_fresh_dek(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    vault = _open(opened, backend(), new_key("k1"))
    for n in (1, 2, 3):
        vault.set("k", f"value-{n}")
    current, kept = vault.records("k")
    before = {r.version: (r, vault.dek(r)) for r in [current, *kept]}
    view = vault.rotation.rotate_key(alice(), ALICE, "k")
    assert view.version == 4
    now, kept = vault.records("k")
    assert now.version_by == "alice" and now.last_rotated_at is not None
    assert [r.version for r in kept] == [3, 2, 1]  # the old current is kept, re-sealed like the others
    deks = {vault.dek(now)}
    for r in kept:
        old, old_dek = before[r.version]
        assert r.dek_wrapped != old.dek_wrapped and r.nonce != old.nonce and r.ciphertext != old.ciphertext
        assert vault.dek(r) != old_dek
        deks.add(vault.dek(r))
    assert len(deks) == 4 and not deks & {d for _, d in before.values()}  # every DEK retired
    assert [vault.reveal("k", version=n) for n in (1, 2, 3, 4)] == ["value-1", "value-2", "value-3", "value-3"]
    rotations = [e for e in vault.events() if e[0] == "rotate"]
    assert [(e[2], e[3], e[4].get("versions_resealed")) for e in rotations] == [("k", 4, 2)]
    assert vault.rotation.verify(owner()).ok


def test_bulk_rotation_reseals_versions_and_audits_one_row_per_key_without_values(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    vault = _open(opened, backend(), new_key("k1"), batch=2)
    for key in ("a", "b", "c"):
        vault.set(key, f"{CANARY}-{key}-1")
    vault.set("b", f"{CANARY}-b-2")
    before = {r.version: r.dek_wrapped for r in vault.records("b")[1]}
    report = vault.rotation.rotate(owner(), ALICE)
    assert report.rotated == 3
    assert all(r.dek_wrapped != before[r.version] for r in vault.records("b")[1] if r.version in before)
    assert vault.reveal("b", version=1) == f"{CANARY}-b-1"
    rows = [e for e in vault.events() if e[0] == "rotate"]
    assert sorted((e[1], e[2], e[3]) for e in rows) == [("user:alice", "a", 2), ("user:alice", "b", 3),
                                                       ("user:alice", "c", 2)]
    assert CANARY not in json.dumps(vault.events(), default=str)


# --- verify and tampered old versions -----------------------------------------------------------------------------

def test_verify_finds_a_tampered_old_version_and_reading_it_fails_closed(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    vault = _open(opened, backend(), new_key("k1"))
    for n in (1, 2, 3):
        vault.set("k", f"value-{n}")
    vault.set("deleted", "d1")
    vault.secrets.unset(owner(), ALICE, "deleted")
    vault.tamper("secret_version", "k", 2)
    vault.tamper("secret_kv", "deleted", None)  # a deleted secret's row is checked too
    report = vault.rotation.verify(owner())
    assert report.checked == 4 and not report.ok
    assert sorted(report.failures) == [("user:alice", "deleted", "checksum mismatch"),
                                       ("user:alice", "k", "v2: checksum mismatch")]
    with pytest.raises(IntegrityError):
        vault.reveal("k", version=2)
    with pytest.raises(IntegrityError):
        vault.history.rollback(owner(), ALICE, "k", 2)
    with pytest.raises(IntegrityError):  # rotation cannot retire a DEK it cannot open: nothing is written
        vault.rotation.rotate_key(owner(), ALICE, "k")
    assert vault.numbers("k") == [3, 2, 1]
    assert (vault.reveal("k"), vault.reveal("k", version=1)) == ("value-3", "value-1")
    outcomes = [(e[0], e[2]) for e in vault.events() if e[0] in ("reveal", "rollback", "rotate") and e[3] is None]
    assert outcomes == [("reveal", "k"), ("rollback", "k"), ("rotate", "k")]  # the failures, audited


# --- bundles ------------------------------------------------------------------------------------------------------

def _bundle_items(doc: dict[str, Any]) -> list[tuple[str, int]]:
    return [(i["key"], i["version"]) for i in doc["items"]]


def test_bundle_round_trip_with_and_without_history_and_never_a_deleted_secret(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    keys = new_key("k1")
    fresh = backend
    source = _open(opened, fresh(), keys)
    for n in (1, 2, 3):
        source.set("a", f"a{n}")
    source.set("b", "b1")
    source.set("c", "c1")
    source.secrets.unset(owner(), ALICE, "c")

    plain = source.transfer.export(owner(), ALICE, bundle=True)
    assert plain.bundle is not None and "history" not in plain.bundle
    assert _bundle_items(plain.bundle) == [("a", 3), ("b", 1)]
    full = source.transfer.export(owner(), ALICE, bundle=True, all_versions=True)
    assert full.bundle is not None and full.bundle["history"] is True
    assert _bundle_items(full.bundle) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert [v.key for v in full.items] == ["a", "b"]

    target = _open(opened, fresh(), keys)  # the same master key: a master-key bundle opens there
    report = target.transfer.import_(owner(), bundle=plain.bundle)
    assert report.added == [("user:alice", "a"), ("user:alice", "b")]
    assert (target.numbers("a"), target.reveal("a")) == ([1], "a3")  # the target numbers a current-only import

    target = _open(opened, fresh(), keys)
    target.transfer.import_(owner(), bundle=full.bundle)
    assert target.numbers("a") == [3, 2, 1]  # no such secret there: the versions keep their numbers
    assert [target.reveal("a", version=n) for n in (1, 2, 3)] == ["a1", "a2", "a3"]
    assert target.numbers("b") == [1]
    with pytest.raises(NotFound):
        target.secrets.get(owner(), ALICE, "c")
    assert target.rotation.verify(owner()).ok

    target = _open(opened, fresh(), keys)
    target.set("a", "mine")
    target.transfer.import_(owner(), bundle=full.bundle)
    assert target.numbers("a") == [4, 3, 2, 1]  # it exists: appended in order, the bundle's current last
    assert [target.reveal("a", version=n) for n in (1, 2, 3, 4)] == ["mine", "a1", "a2", "a3"]


# --- audit rows per key -------------------------------------------------------------------------------------------

def test_import_and_export_write_one_audit_row_per_key_and_never_a_value(
        backend: Callable[[], Opener], opened: list[Vault]) -> None:
    vault = _open(opened, backend(), new_key("k1"))
    vault.set("old", f"{CANARY}-old")
    vault.set("kept", f"{CANARY}-kept")
    items = [ImportItem(ALICE, "kept", SecretValue(f"{CANARY}-kept-2")),
             ImportItem(ALICE, "new", SecretValue(f"{CANARY}-new"))]
    vault.transfer.import_(owner(), items, mode="replace", allow_plaintext=True)
    events = vault.events()
    per_key = [(e[0], e[1], e[2], e[3], e[4].get("change")) for e in events if e[2] is not None
               and e[0] in ("import", "delete")]
    assert sorted(per_key) == [("delete", "user:alice", "old", 1, "removed"),
                               ("import", "user:alice", "kept", 2, "updated"),
                               ("import", "user:alice", "new", 1, "added")]
    summary = [e for e in events if e[0] == "import" and e[2] is None]
    assert [(s[4]["added"], s[4]["updated"], s[4]["removed"]) for s in summary] == [(1, 1, 1)]

    doc = vault.transfer.export(owner(), ALICE, bundle=True, all_versions=True).bundle
    assert doc is not None
    exported = [(e[1], e[2], e[3]) for e in vault.events() if e[0] == "export" and e[2] is not None]
    assert sorted(exported) == [("user:alice", "kept", 2), ("user:alice", "new", 1)]
    assert [e[4]["count"] for e in vault.events() if e[0] == "export" and e[2] is None] == [2]

    vault.transfer.import_(owner(), bundle=doc)  # a bundle import: the same rows, per key
    assert sum(1 for e in vault.events() if e[0] == "import" and e[2] is not None) == 4
    assert CANARY not in json.dumps(vault.events(), default=str)
