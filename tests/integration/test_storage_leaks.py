"""The canary, once stored, set, rotated, revealed, exported and imported, never reaches the database in clear.

Searched for: its bytes, its base64 at every alignment (standard and URL-safe) and its hex (Postgres shows BYTEA
as hex), in the SQLite file and its -wal, in every row of every table, and in the DEBUG log of the whole run.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sprongus.domain.errors import ValidationError
from sprongus.domain.import_item import ImportItem
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY
from tests.integration.stack import Stack, alice, new_key, owner, rows_as_text, sqlite_url, stack
from tests.pg import PgDatabase

TABLES = ("secret_kv", "audit_event", "schema_migration")  # must hold rows here; every other table is searched too


def needles(secret: str) -> list[bytes]:
    raw = secret.encode("utf-8")
    found = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for pad in range(3):
        # The middle of the base64 of `raw` placed at this alignment inside any larger blob.
        encoded = base64.b64encode(b"\0" * pad + raw)
        middle = encoded[4 if pad else 0:-4]
        found += [middle, middle.replace(b"+", b"-").replace(b"/", b"_")]
    return found


def assert_absent(blob: bytes, where: str) -> None:
    for needle in needles(CANARY):
        assert needle not in blob, f"canary ({needle[:12]!r}...) found in {where}"


def exercise(vault: Stack, scope: Scope) -> None:
    """Every path the value takes: create, update, rotate, reveal, export, bundle, import, a refused write."""
    service = vault
    canary = SecretValue(CANARY)
    service.secrets.set(owner(), scope, "leak.canary", canary, meta={"provider": "test"})
    service.secrets.set(owner(), scope, "leak.canary", canary)
    service.rotation.rotate(owner(), scope, "leak.canary")
    view = service.secrets.get(owner(), scope, "leak.canary", reveal=True)
    assert view.value is not None and view.value.reveal() == CANARY
    exported = service.transfer.export(owner(), scope)
    assert_absent(json.dumps([v.to_dict() for v in exported.items]).encode(), "the metadata export")
    bundle = service.transfer.export(owner(), scope, bundle=True).bundle
    assert_absent(json.dumps(bundle).encode(), "the encrypted bundle")
    service.transfer.import_(owner(), items=[ImportItem(scope, "leak.imported", canary)], allow_plaintext=True)
    service.transfer.import_(owner(), bundle=bundle, mode="merge")
    with pytest.raises(ValidationError):
        service.secrets.set(owner(), scope, "not a key", canary)


def test_sqlite_file_wal_and_rows_hold_no_plaintext(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    old, new, hmac = new_key("k1"), new_key("k2"), new_key("h1")
    url = sqlite_url(tmp_path)
    vault = stack(url, old, hmac_keys=hmac)
    exercise(vault, Scope.system())
    vault.close()
    vault = stack(url, f"{new},{old}", hmac_keys=hmac)
    try:
        # 2 secrets, 5 stored versions: leak.canary keeps v1-v3 beside its current v4 (set, set, rotate, import)
        assert vault.rotation.rotate_master(owner()).rotated == 5
        assert vault.secrets.get(owner(), Scope.system(), "leak.imported", reveal=True).value == SecretValue(CANARY)
        assert vault.rotation.verify(owner()).ok
        wal = tmp_path / "vault.db-wal"
        assert wal.stat().st_size > 0  # the recent writes are still in the WAL: it is searched as it is
        assert_absent(wal.read_bytes(), "vault.db-wal")
        assert_absent((tmp_path / "vault.db").read_bytes(), "vault.db")
        with closing(sqlite3.connect(tmp_path / "vault.db")) as conn:
            tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert set(TABLES) <= set(tables)
            for table in tables:
                rows = conn.execute(f"SELECT * FROM {table}").fetchall()
                assert rows or table not in TABLES, table
                assert_absent(repr(rows).encode(), f"table {table}")
    finally:
        vault.close()
    assert_absent((tmp_path / "vault.db").read_bytes(), "vault.db after the checkpoint")
    assert_absent(caplog.text.encode(), "the log")


def test_postgres_rows_hold_no_plaintext(pg_db: PgDatabase, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    old, new, hmac = new_key("k1"), new_key("k2"), new_key("h1")
    maintenance = stack(pg_db.maintenance_url, old, hmac_keys=hmac)
    try:
        exercise(maintenance, Scope.system())
    finally:
        maintenance.close()
    app = stack(pg_db.app_url, old, hmac_keys=hmac)
    try:
        app.secrets.set(alice(), Scope.user("alice"), "leak.canary", SecretValue(CANARY))
        app.secrets.get(alice(), Scope.user("alice"), "leak.canary", reveal=True)
    finally:
        app.close()
    maintenance = stack(pg_db.maintenance_url, f"{new},{old}", hmac_keys=hmac)
    try:
        assert maintenance.rotation.rotate_master(owner()).rotated == 6  # 3 secrets, 6 versions (kept ones too)
        assert maintenance.rotation.verify(owner()).ok
    finally:
        maintenance.close()
    with pg_db.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [t for (t,) in cur.fetchall()]
        assert set(TABLES) <= set(tables)
        for table in tables:
            rows = rows_as_text(cur, table)
            assert rows or table not in TABLES, table
            assert_absent(repr(rows).encode(), f"table {table}")
        # The dump-visible form of BYTEA is hex: make sure that form is what was searched.
        cur.execute("SELECT ciphertext::text FROM secret_kv LIMIT 1")
        row = cur.fetchone()
        assert row is not None and row[0].startswith("\\x")
    assert_absent(caplog.text.encode(), "the log")


def test_the_needles_would_find_a_leak() -> None:
    """The search itself: each encoding of the canary, embedded in other bytes, is caught."""
    raw = CANARY.encode()
    for blob in (b"xx" + raw, base64.b64encode(b"a" + raw), base64.urlsafe_b64encode(b"ab" + raw + b"c"),
                 ("\\x" + (b"\x00" + raw).hex()).encode()):
        with pytest.raises(AssertionError):
            assert_absent(b"prefix" + blob + b"suffix", "test")
