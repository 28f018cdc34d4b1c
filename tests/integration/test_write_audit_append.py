"""A write past its version window appends its retention rows and its own row in one go (real SQLite and Postgres).

Every write of a key that already has SPRONGUS_MAX_VERSIONS versions destroys one, so this is the common case of a
hot key. The destroy row and the update row used to be two appends (two reads of the chain head, two INSERTs) while
the write held SQLite's one writer; they are one now, in the same order, at one instant, and the chain verifies.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import Stack, build, environment, new_key, owner, sqlite_url

CANARY = "CANARY-append-5d1e0b-"
SCOPE = Scope.user("alice")
HEAD_READ = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Stack]:
    stack = build({**environment(sqlite_url(tmp_path), new_key()), "SPRONGUS_MAX_VERSIONS": "2"})
    try:
        yield stack
    finally:
        stack.close()


def _statements_of_one_write(stack: Stack, value: str) -> list[str]:
    seen: list[str] = []
    conn: sqlite3.Connection = stack.db.connection()
    conn.set_trace_callback(seen.append)
    try:
        stack.secrets.set(owner(), SCOPE, "api.token", SecretValue(value))
    finally:
        conn.set_trace_callback(None)
    return seen


def test_a_write_past_its_window_reads_the_chain_head_once_and_inserts_once(vault: Stack) -> None:
    for n in range(1, 3):
        _statements_of_one_write(vault, f"{CANARY}{n}")
    statements = _statements_of_one_write(vault, f"{CANARY}3")
    assert any(s.startswith("DELETE FROM secret_version") for s in statements)  # it did prune a version
    assert [s for s in statements if s == HEAD_READ] == [HEAD_READ]
    assert len([s for s in statements if s.startswith("INSERT INTO audit_event")]) == 1


def _sqlite_rows(tmp_path: Path) -> tuple[list[tuple[Any, ...]], bytes]:
    with closing(sqlite3.connect(tmp_path / "vault.db")) as conn:
        rows = conn.execute("SELECT action, version, time, detail FROM audit_event ORDER BY seq").fetchall()
        stored = b"".join(line.encode() for line in conn.iterdump())
    return rows, stored


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_rows_keep_their_order_and_one_instant_and_the_chain_verifies(engine: str, tmp_path: Path,
                                                                          request: pytest.FixtureRequest) -> None:
    if engine == "sqlite":
        stack = build({**environment(sqlite_url(tmp_path), new_key()), "SPRONGUS_MAX_VERSIONS": "2"})
    else:
        pg = request.getfixturevalue("pg_db")
        stack = build({**environment(pg.maintenance_url, new_key()), "SPRONGUS_MAX_VERSIONS": "2"})
    try:
        for n in range(1, 5):
            stack.secrets.set(owner(), SCOPE, "api.token", SecretValue(f"{CANARY}{n}"))
        assert stack.audit.verify_chain().problems == []
    finally:
        stack.close()
    if engine == "sqlite":
        rows, stored = _sqlite_rows(tmp_path)
    else:
        with pg.admin() as conn:
            rows = conn.execute("SELECT action, version, time, detail::text FROM audit_event ORDER BY seq").fetchall()
            stored = repr(conn.execute("SELECT * FROM audit_event").fetchall()).encode()
    assert [(a, v) for a, v, _t, _d in rows] == [("create", 1), ("update", 2), ("destroy", 1), ("update", 3),
                                                 ("destroy", 2), ("update", 4)]
    for destroy, update in ((rows[2], rows[3]), (rows[4], rows[5])):
        assert destroy[2] == update[2]  # the same time: one write, one instant
        assert "retention" in destroy[3]
    assert CANARY.encode() not in stored
