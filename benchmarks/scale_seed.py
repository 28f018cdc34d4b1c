"""Bulk population of a Postgres vault for bench_scale.py: bench_history's approach (every row really sealed with
the vault's own envelope, its own DEK, nonce, AAD, HMAC and checksum), sent with COPY instead of executemany, and
one chained `create` audit row per secret written by the vault's own audit sink, as a `secrets set` leaves it.

Sealing runs in this process while the server takes the COPY stream on the other core.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from bench_history import KV_COLS, NOW, SCOPE, VALUE

from sprongus.adapters.peewee.audit import PeeweeAuditSink
from sprongus.domain.envelope import Envelope, aad_for, checksum
from sprongus.domain.records import AuditAction, AuditEvent, Outcome

AUDIT_CHUNK = 10_000  # events per record_many: one transaction, one chain lock, 80-row INSERTs
SIZED = ("secret_kv", "secret_version", "audit_event", "audit_checkpoint", "vault_key")


def sealed_rows(envelope: Envelope, keys: Iterable[str]) -> Iterator[tuple[Any, ...]]:
    """secret_kv rows (KV_COLS) of version 1 in bench_history's SCOPE, each sealed under its own AAD."""
    owner_id = SCOPE.owner_id
    for key in keys:
        aad = aad_for(SCOPE, key, 1)
        sealed = envelope.seal(VALUE, aad)
        yield (str(uuid.uuid4()), SCOPE.owner_type.value, owner_id, key, sealed.ciphertext, sealed.dek_wrapped,
               sealed.nonce, sealed.alg, sealed.master_key_id, 1, NOW, NOW, None, "{}", sealed.hmac,
               checksum(sealed, aad), None, None)


def copy_secrets(conninfo: str, envelope: Envelope, keys: list[str]) -> float:
    """COPY every key's sealed row into secret_kv in one transaction; seconds taken (sealing included)."""
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur, \
            cur.copy(f"COPY secret_kv ({', '.join(KV_COLS)}) FROM STDIN") as copy:
        for row in sealed_rows(envelope, keys):
            copy.write_row(row)
    return time.perf_counter() - started


def seed_audit(sink: PeeweeAuditSink, keys: list[str]) -> float:
    """One `create` event per secret, chained and checkpointed by the sink itself; seconds taken."""
    started = time.perf_counter()
    when = datetime(2026, 1, 1, tzinfo=UTC)
    detail = {"restored": False}  # one dict for all: the sink serializes a shared detail once
    for start in range(0, len(keys), AUDIT_CHUNK):
        sink.record_many([AuditEvent(when, "owner", AuditAction.CREATE, str(SCOPE), key, 1, Outcome.SUCCESS,
                                     detail=detail) for key in keys[start:start + AUDIT_CHUNK]])
    return time.perf_counter() - started


def vacuum_analyze(admin_url: str) -> float:
    """A vault filled over months, not minutes ago: what autovacuum would have done (visibility map, statistics),
    and the seeding's WAL checkpointed, so that no checkpoint it triggered runs during the measurements."""
    started = time.perf_counter()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def sizes(admin_url: str) -> dict[str, int]:
    """Bytes on disk: each table with its indexes and TOAST (pg_total_relation_size), secret_kv's heap and indexes
    apart, the whole database, and the row counts."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        got: dict[str, int] = {}
        for table in SIZED:
            row = conn.execute("SELECT pg_total_relation_size(%s::regclass), pg_indexes_size(%s::regclass), "
                               f"(SELECT count(*) FROM {table})", (table, table)).fetchone()
            assert row is not None
            got[table], got[f"{table}.indexes"], got[f"{table}.rows"] = int(row[0]), int(row[1]), int(row[2])
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        got["database"] = int(row[0])
    return got
