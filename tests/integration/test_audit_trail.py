"""The durable audit trail: one chained row per action, tampering detected, and fail-closed when it cannot write."""

from __future__ import annotations

import json
import sqlite3
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sprongus.adapters.peewee.audit import GENESIS, chain_hash
from sprongus.domain.errors import AuditUnavailable, NotFound
from sprongus.domain.import_item import ImportItem
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import Stack, alice, new_key, owner, sqlite_url, stack
from tests.pg import PgDatabase

SYSTEM = Scope.system()
COLUMNS = ("time", "actor", "action", "scope", "key_name", "version", "outcome", "request_id", "client_address",
           "detail", "prev_hash", "hash")


class Raw:
    """Raw SQL on the vault's database as an attacker with file or superuser access would have it."""

    def __init__(self, engine: str, target: Any) -> None:
        self.engine = engine
        self.target = target

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.engine == "sqlite":
            with closing(sqlite3.connect(self.target)) as conn, conn:
                return conn.execute(sql, params).fetchall()
        with psycopg.connect(self.target, autocommit=True) as pg:
            cur = pg.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def drop_append_only_guard(self) -> None:
        if self.engine == "sqlite":
            self.run("DROP TRIGGER audit_event_no_update")
            self.run("DROP TRIGGER audit_event_no_delete")
        else:
            self.run("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")

    def row(self, seq: int) -> tuple[Any, ...]:
        return self.run(f"SELECT {', '.join(COLUMNS)} FROM audit_event WHERE seq = ?", (seq,))[0]

    def overwrite(self, seq: int, values: tuple[Any, ...]) -> None:
        sets = ", ".join(f"{c} = ?" for c in COLUMNS)
        if self.engine == "postgres":
            values = tuple(psycopg.types.json.Jsonb(v) if c == "detail" else v for c, v in zip(COLUMNS, values,
                                                                                                 strict=True))
        self.run(f"UPDATE audit_event SET {sets} WHERE seq = ?", (*values, seq))


@pytest.fixture(params=["sqlite", "postgres"])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Stack, Raw]]:
    if request.param == "sqlite":
        made = stack(sqlite_url(tmp_path), new_key())
        raw = Raw("sqlite", tmp_path / "vault.db")
    else:
        pg: PgDatabase = request.getfixturevalue("pg_db")
        made = stack(pg.maintenance_url, new_key())
        raw = Raw("postgres", pg.admin_url)
    try:
        yield made, raw
    finally:
        made.close()


def audit_rows(raw: Raw) -> list[tuple[Any, ...]]:
    return raw.run("SELECT seq, actor, action, scope, key_name, version, outcome, prev_hash, hash "
                   "FROM audit_event ORDER BY seq")


def some_history(vault: Stack, events: int = 6) -> None:
    for i in range(events):
        vault.secrets.set(owner(), SYSTEM, f"k{i % 2}", SecretValue(f"v{i}"))


def test_every_action_writes_one_chained_row(vault: tuple[Stack, Raw]) -> None:
    made, raw = vault
    service = made
    service.secrets.set(owner(), SYSTEM, "smtp.password", SecretValue("one"))
    service.secrets.set(owner(), SYSTEM, "smtp.password", SecretValue("two"), meta={"provider": "smtp"})
    service.secrets.get(owner(), SYSTEM, "smtp.password", reveal=True)
    service.rotation.rotate(owner(), SYSTEM, "smtp.password")
    service.transfer.export(owner(), SYSTEM)
    service.transfer.import_(owner(), items=[ImportItem(SYSTEM, "db.url", SecretValue("postgres://x"))],
                             allow_plaintext=True)
    service.secrets.unset(owner(), SYSTEM, "db.url")
    service.rotation.rotate_master(owner())
    with pytest.raises(NotFound):
        service.secrets.get(alice(), Scope.user("bob"), "smtp.password", reveal=True)
    with pytest.raises(NotFound):
        service.secrets.unset(owner(), SYSTEM, "missing")
    assert service.rotation.verify(owner()).ok

    rows = [r for r in audit_rows(raw) if r[2] not in ("read", "list")]
    assert [(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("owner", "create", "system", "smtp.password", 1, "success"),
        ("owner", "update", "system", "smtp.password", 2, "success"),
        ("owner", "reveal", "system", "smtp.password", 2, "success"),
        ("owner", "rotate", "system", "smtp.password", 3, "success"),
        ("owner", "export", "system", None, None, "success"),
        ("owner", "import", "system", "db.url", 1, "success"),  # one row per key imported, then the summary
        ("owner", "import", None, None, None, "success"),
        ("owner", "delete", "system", "db.url", 1, "success"),
        ("owner", "rotate_master", None, None, None, "success"),
        ("alice", "reveal", "user:bob", "smtp.password", None, "denied"),
        ("owner", "delete", "system", "missing", None, "not_found"),
        ("owner", "verify", None, None, None, "success"),
    ]
    everything = audit_rows(raw)
    assert everything[0][7] == GENESIS
    for before, after in pairwise(everything):
        assert after[7] == before[8]
    assert len({r[8] for r in everything}) == len(everything)
    report = made.audit.verify_chain()
    assert report.checked == len(everything) and report.problems == []


def test_the_database_refuses_updates_and_deletes_of_audit_rows(vault: tuple[Stack, Raw]) -> None:
    made, raw = vault
    some_history(made, 2)
    error: type[Exception] = sqlite3.IntegrityError if raw.engine == "sqlite" else psycopg.errors.RaiseException
    for statement in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event WHERE seq = 1"):
        with pytest.raises(error, match="append-only"):
            raw.run(statement)
    assert [r[1] for r in audit_rows(raw)] == ["owner", "owner"]


def edit(raw: Raw) -> None:
    raw.run("UPDATE audit_event SET actor = 'mallory' WHERE seq = 3")


def rehashed(row: tuple[Any, ...], prev_hash: str) -> tuple[Any, ...]:
    """The row with prev_hash set and its own hash recomputed, as anyone can: the chain has no secret key."""
    fields = list(row)
    detail = fields[9] if isinstance(fields[9], dict) else json.loads(fields[9])
    moment = fields[0] if isinstance(fields[0], datetime) else datetime.fromisoformat(fields[0])
    fields[10] = prev_hash
    fields[11] = chain_hash(prev_hash, [moment.isoformat(), *fields[1:9], detail])
    return tuple(fields)


def edit_and_rehash(raw: Raw) -> None:
    """A smarter attacker recomputes the edited row's own hash: the next row no longer follows it."""
    row = list(raw.row(3))
    row[1] = "mallory"
    raw.overwrite(3, rehashed(tuple(row), row[10]))


def delete_middle(raw: Raw) -> None:
    raw.run("DELETE FROM audit_event WHERE seq = 3")


def swap(raw: Raw) -> None:
    second, third = raw.row(2), raw.row(3)
    raw.run("UPDATE audit_event SET hash = 'tmp' WHERE seq = 2")  # hash is UNIQUE: free it first
    raw.overwrite(3, second)
    raw.overwrite(2, third)


FOLLOW = "does not follow the previous row (deleted or reordered)"
TAMPERING: dict[str, tuple[Callable[[Raw], None], list[str]]] = {
    "edited": (edit, ["audit row 3: contents do not match its hash (edited)"]),
    "edited-and-rehashed": (edit_and_rehash, [f"audit row 4: {FOLLOW}"]),
    "deleted": (delete_middle, [f"audit row 4: {FOLLOW}"]),
    "swapped": (swap, [f"audit row 2: {FOLLOW}", f"audit row 3: {FOLLOW}", f"audit row 4: {FOLLOW}"]),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_with_the_trail_is_detected(vault: tuple[Stack, Raw], kind: str) -> None:
    made, raw = vault
    some_history(made)
    assert made.audit.verify_chain().problems == []
    raw.drop_append_only_guard()
    tamper, expected = TAMPERING[kind]
    tamper(raw)
    problems = made.audit.verify_chain().problems
    assert problems == expected
    report = made.rotation.verify(owner())
    assert not report.ok and report.audit_problems == problems


def test_rewriting_every_row_after_an_edit_is_not_detectable_from_the_chain_alone(vault: tuple[Stack, Raw]) -> None:
    """The documented limit: with write access and the trigger off, the chain can be rebuilt from the edit on."""
    made, raw = vault
    some_history(made)
    raw.drop_append_only_guard()
    last = int(raw.run("SELECT max(seq) FROM audit_event")[0][0])
    prev = raw.row(2)[11]
    raw.run("UPDATE audit_event SET hash = 'tmp-' || seq WHERE seq >= 3")  # hash is UNIQUE: free the old values
    for seq in range(3, last + 1):
        row = list(raw.row(seq))
        if seq == 3:
            row[1] = "mallory"
        new = rehashed(tuple(row), prev)
        raw.overwrite(seq, new)
        prev = new[11]
    assert made.audit.verify_chain().problems == []
    assert raw.row(3)[1] == "mallory"


def test_truncating_the_newest_rows_is_not_detectable_from_the_chain_alone(vault: tuple[Stack, Raw]) -> None:
    """The documented limit (docs/operations.md): anchor the latest hash elsewhere to catch this."""
    made, raw = vault
    some_history(made)
    raw.drop_append_only_guard()
    raw.run("DELETE FROM audit_event WHERE seq >= 5")
    report = made.audit.verify_chain()
    assert report.problems == [] and report.checked == 4


# --- fail closed ---------------------------------------------------------------------------------------------------

def assert_no_value_in(exc: BaseException, value: str) -> None:
    text = "".join(traceback.format_exception(exc))
    assert value not in text and value not in repr(exc)


OLD, NEW = "old-value-123", "new-value-456"  # constants: a traceback quotes source lines, so no literals below


def check_fail_closed(made: Stack, raw: Raw, caller: Any, scope: Scope, block: Callable[[], None]) -> None:
    service = made
    service.secrets.set(caller, scope, "api.token", SecretValue(OLD))
    before = audit_rows(raw)
    block()

    with pytest.raises(AuditUnavailable) as revealed:
        service.secrets.get(caller, scope, "api.token", reveal=True)
    assert_no_value_in(revealed.value, OLD)

    with pytest.raises(AuditUnavailable) as written:
        service.secrets.set(caller, scope, "api.token", SecretValue(NEW))
    assert_no_value_in(written.value, NEW)
    with pytest.raises(AuditUnavailable):
        service.secrets.set(caller, scope, "brand.new", SecretValue("never-stored"))
    with pytest.raises(AuditUnavailable):
        service.secrets.unset(caller, scope, "api.token")
    with pytest.raises(AuditUnavailable):
        service.rotation.rotate(caller, scope, "api.token")
    with pytest.raises(AuditUnavailable):
        service.transfer.import_(caller, items=[ImportItem(scope, "imported", SecretValue("x"))], allow_plaintext=True)

    # Nothing happened: same version, same value, no new rows, no audit rows.
    view = service.secrets.get(caller, scope, "api.token")
    assert view.version == 1
    assert [v.key for v in service.secrets.list(caller, scope).items] == ["api.token"]
    assert audit_rows(raw) == before


def test_sqlite_fails_closed_when_the_audit_row_cannot_be_written(tmp_path: Path) -> None:
    made = stack(sqlite_url(tmp_path), new_key())
    raw = Raw("sqlite", tmp_path / "vault.db")
    try:
        check_fail_closed(made, raw, owner(), SYSTEM, lambda: raw.run(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_event BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
        raw.run("DROP TRIGGER audit_down")
        view = made.secrets.get(owner(), SYSTEM, "api.token", reveal=True)
        assert view.value is not None and view.value.reveal() == OLD
    finally:
        made.close()


def test_postgres_fails_closed_when_the_app_role_cannot_write_audit_rows(pg_db: PgDatabase) -> None:
    made = stack(pg_db.app_url, new_key())
    raw = Raw("postgres", pg_db.admin_url)
    try:
        check_fail_closed(made, raw, alice(), Scope.user("alice"), lambda: raw.run(
            "REVOKE INSERT ON audit_event FROM sprongus_app"))
        raw.run("GRANT INSERT ON audit_event TO sprongus_app")
        view = made.secrets.get(alice(), Scope.user("alice"), "api.token", reveal=True)
        assert view.value is not None and view.value.reveal() == OLD
    finally:
        made.close()
