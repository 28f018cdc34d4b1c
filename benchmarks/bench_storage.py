"""Storage benchmarks: the service on SQLite and Postgres, each beside the bare engine doing the same statements.

Run from the repository root:
    .venv/bin/python benchmarks/bench_storage.py [--rows 100000] [--ops 2000] [--repeats 3] [--mem-rows 2000,10000]
                                                 [--no-postgres] [--profile]

SQLite: service set/s and masked get/s (one thread, the vault owner: no rate limits), a page of 50 among --rows
secrets (keyset pagination), rotate_master over --rows secrets and its peak traced memory (tracemalloc) at two
sizes. Postgres (if reachable on SPRONGUS_TEST_PG_HOST/PORT as SPRONGUS_TEST_PG_USER; the script creates and drops
its own database and login role): set/s on one connection, as the RLS app role. "bare" runs the statements the
adapter sends (same transactions, savepoints and audit insert, constant values, no crypto) through sqlite3 /
psycopg directly. Best of --repeats; time.perf_counter. Targets are printed PASS/MISS; the script always exits 0.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import platform
import pstats
import sqlite3
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.integration.stack import Stack, new_key, owner, stack  # noqa: E402

from sprongus.domain.envelope import aad_for, checksum  # noqa: E402
from sprongus.domain.scope import Scope  # noqa: E402
from sprongus.domain.values import SecretValue  # noqa: E402
from sprongus.service.secrets import encode_cursor  # noqa: E402

VALUE = SecretValue("v" * 64)  # a typical API token
SCOPE = Scope.project("bench")
PAGE = 50
COLS = ("id", "owner_type", "owner_id", "key_name", "ciphertext", "dek_wrapped", "nonce", "alg", "master_key_id",
        "version", "created_at", "updated_at", "last_rotated_at", "meta", "hmac", "checksum")
SET_COLS = COLS[4:]
AUDIT_COLS = ("time", "actor", "action", "scope", "key_name", "version", "outcome", "request_id", "client_address",
              "detail", "prev_hash", "hash")
NOW = "2026-01-01T00:00:00+00:00"


@dataclass
class Result:
    name: str
    value: float
    bare: float | None
    unit: str  # "/s" (higher is better) or "ms" (lower is better)
    target: float | None = None

    def cells(self) -> list[str]:
        fmt = (lambda v: f"{v:,.0f}/s") if self.unit == "/s" else (lambda v: f"{v:.3f} ms")
        ratio = "" if self.bare is None else (f"{self.bare / self.value:.1f}x" if self.unit == "/s"
                                              else f"{self.value / self.bare:.1f}x")
        if self.target is None:
            verdict = ""
        else:
            ok = self.value >= self.target if self.unit == "/s" else self.value <= self.target
            verdict = f"{'>=' if self.unit == '/s' else '<='} {fmt(self.target)} {'PASS' if ok else 'MISS'}"
        return [self.name, fmt(self.value), "" if self.bare is None else fmt(self.bare), ratio, verdict]


def best_rate(run: Callable[[], int], repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        done = run()
        best = max(best, done / (time.perf_counter() - start))
    return best


def keys(n: int, tag: str = "") -> list[str]:
    return [f"svc{i % 10}.key{tag}_{i:07d}" for i in range(n)]


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


# --- SQLite -------------------------------------------------------------------------------------------------------

def sqlite_vault(directory: Path, master_keys: str, **kw: Any) -> Stack:
    return stack(f"sqlite:///{directory / 'vault.db'}", master_keys, **kw)


def raw_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode = wal", "busy_timeout = 30000", "synchronous = normal", "foreign_keys = 1"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


SELECT_ONE = (f"SELECT {', '.join(COLS)} FROM secret_kv WHERE owner_type = ? AND owner_id = ? AND key_name = ? "
              "LIMIT 1")
INSERT_ROW = f"INSERT INTO secret_kv ({', '.join(COLS)}) VALUES ({', '.join('?' * len(COLS))})"
UPDATE_ROW = (f"UPDATE secret_kv SET {', '.join(f'{c} = ?' for c in SET_COLS)} "
              "WHERE owner_type = ? AND owner_id = ? AND key_name = ? AND version = ?")
INSERT_AUDIT = f"INSERT INTO audit_event ({', '.join(AUDIT_COLS)}) VALUES ({', '.join('?' * len(AUDIT_COLS))})"
LAST_HASH = "SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1"


def fake_row(key: str, version: int = 1) -> tuple[Any, ...]:
    return (str(uuid.uuid4()), "project", "bench", key, b64(80), b64(60), b64(12), "AES-256-GCM", "env:k1",
            version, NOW, NOW, None, "{}", None, "sha256:" + "0" * 64)


def bare_set(conn: sqlite3.Connection, names: list[str], update: bool) -> int:
    """The statements of one service set per key: IMMEDIATE transaction, read, write, chained audit row."""
    ex = conn.execute
    for seq, key in enumerate(names):
        ex("BEGIN IMMEDIATE")
        found = ex(SELECT_ONE, ("project", "bench", key)).fetchone()
        ex('SAVEPOINT "s1"')
        if update:
            changed = ex(UPDATE_ROW, (*fake_row(key, found[9] + 1)[4:], "project", "bench", key, found[9]))
            assert changed.rowcount == 1
        else:
            ex(INSERT_ROW, fake_row(key))
        ex('RELEASE SAVEPOINT "s1"')
        ex('SAVEPOINT "s2"')
        prev = ex(LAST_HASH).fetchone()
        ex(INSERT_AUDIT, (NOW, "owner", "update", "project:bench", key, 1, "success", None, None, "{}",
                          prev[0] if prev else "g", f"h-{update}-{seq}-{uuid.uuid4()}"))
        ex('RELEASE SAVEPOINT "s2"')
        ex("COMMIT")
    return len(names)


def bare_get(conn: sqlite3.Connection, names: list[str]) -> int:
    for key in names:
        conn.execute("BEGIN")
        conn.execute(SELECT_ONE, ("project", "bench", key)).fetchone()
        conn.execute("COMMIT")
    return len(names)


def seed_real_rows(vault: Stack, names: list[str]) -> None:
    """Bulk-insert rows exactly as the service would seal them (fresh DEK, nonce, wrap), without per-row commits."""
    envelope = vault.container.envelope()
    rows = []
    for key in names:
        aad = aad_for(SCOPE, key, 1)
        sealed = envelope.seal(VALUE, aad)
        rows.append((str(uuid.uuid4()), "project", "bench", key, base64.b64encode(sealed.ciphertext).decode(),
                     base64.b64encode(sealed.dek_wrapped).decode(), base64.b64encode(sealed.nonce).decode(),
                     sealed.alg, sealed.master_key_id, 1, NOW, NOW, None, "{}", sealed.hmac, checksum(sealed, aad)))
    with closing(raw_sqlite(Path(vault.db.database))) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_ROW, rows)
        conn.execute("COMMIT")


def bare_rotate(path: Path, batch: int) -> int:
    """rotate_master's statements: a batch select by id, one compare-and-set update per row, a commit per batch."""
    done, after = 0, ""
    with closing(raw_sqlite(path)) as conn:
        target = "bare:" + uuid.uuid4().hex[:6]
        while True:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(f"SELECT {', '.join(COLS)} FROM secret_kv WHERE id > ? AND master_key_id != ? "
                                "ORDER BY id LIMIT ?", (after, target, batch)).fetchall()
            for row in rows:
                conn.execute(UPDATE_ROW, (*row[4:8], target, *row[9:], *row[1:4], row[9]))
            conn.execute("COMMIT")
            done += len(rows)
            if len(rows) < batch:
                return done
            after = rows[-1][0]


def sqlite_benchmarks(args: argparse.Namespace, tmp: Path, out: list[Result], notes: list[str]) -> None:
    names = keys(args.ops)
    master = new_key("k1")

    def service_create() -> float:
        vault = sqlite_vault(Path(tempfile.mkdtemp(dir=tmp)), master)
        try:
            start = time.perf_counter()
            for key in names:
                vault.secrets.set(owner(), SCOPE, key, VALUE)
            return len(names) / (time.perf_counter() - start)
        finally:
            vault.close()

    def bare_create() -> float:
        directory = Path(tempfile.mkdtemp(dir=tmp))
        sqlite_vault(directory, master).close()
        with closing(raw_sqlite(directory / "vault.db")) as conn:
            start = time.perf_counter()
            return bare_set(conn, names, update=False) / (time.perf_counter() - start)

    out.append(Result(f"SQLite set, create ({args.ops:,} keys)", max(service_create() for _ in range(args.repeats)),
                      max(bare_create() for _ in range(args.repeats)), "/s", 2_000))

    directory = Path(tempfile.mkdtemp(dir=tmp))
    vault = sqlite_vault(directory, master)
    bare_dir = Path(tempfile.mkdtemp(dir=tmp))
    sqlite_vault(bare_dir, master).close()
    bare = raw_sqlite(bare_dir / "vault.db")
    bare_set(bare, names, update=False)
    try:
        for key in names:
            vault.secrets.set(owner(), SCOPE, key, VALUE)
        update = best_rate(lambda: sum(vault.secrets.set(owner(), SCOPE, k, VALUE).view.version > 0 for k in names),
                           args.repeats)
        out.append(Result("SQLite set, update (version+1)", update,
                          best_rate(lambda: bare_set(bare, names, update=True), args.repeats), "/s", 2_000))
        get = best_rate(lambda: sum(vault.secrets.get(owner(), SCOPE, k).masked for k in names), args.repeats)
        out.append(Result("SQLite get, masked", get, best_rate(lambda: bare_get(bare, names), args.repeats),
                          "/s", 10_000))
        envelope = vault.container.envelope()
        crypto = best_rate(lambda: sum(bool(envelope.seal(VALUE, aad_for(SCOPE, k, 2))) for k in names),
                           args.repeats)
        notes.append(f"crypto alone (seal: DEK + AES-GCM + wrap + HMAC): {crypto:,.0f}/s, "
                     f"{1e6 / crypto:.0f} µs of each set's {1e6 / update:.0f} µs")
        if args.profile:
            profile("service set (update)", lambda: [vault.secrets.set(owner(), SCOPE, k, VALUE) for k in names])
            profile("service get (masked)", lambda: [vault.secrets.get(owner(), SCOPE, k) for k in names])
    finally:
        vault.close()
        bare.close()

    big_dir = Path(tempfile.mkdtemp(dir=tmp))
    old, new = new_key("k1"), new_key("k2")
    big = sqlite_vault(big_dir, old)
    big_names = sorted(keys(args.rows, "b"))
    started = time.perf_counter()
    seed_real_rows(big, big_names)
    notes.append(f"seeded {args.rows:,} sealed rows by bulk insert in {time.perf_counter() - started:.1f} s")
    try:
        page_ms, bare_ms = paging(big, big_names, args.repeats)
        out.append(Result(f"SQLite page of {PAGE} among {args.rows:,} (keyset)", page_ms, bare_ms, "ms", 2.0))
    finally:
        big.close()

    rotating = sqlite_vault(big_dir, f"{new},{old}")
    try:
        started = time.perf_counter()
        report = rotating.rotation.rotate_master(owner())
        rate = report.rotated / (time.perf_counter() - started)
        assert report.rotated == args.rows, report
        if args.profile:
            rotating.close()
            rotating = sqlite_vault(big_dir, f"{old},{new}")
            profile("rotate_master", lambda: rotating.rotation.rotate_master(owner()))
    finally:
        rotating.close()
    bare_rate = best_rate(lambda: bare_rotate(big_dir / "vault.db", 500), 1)
    out.append(Result(f"SQLite rotate_master, {args.rows:,} rows", rate, bare_rate, "/s", 10_000))
    envelope = rotating.container.envelope()
    sealed = envelope.seal(VALUE, aad_for(SCOPE, "k", 1))
    crypto = best_rate(lambda: sum(bool(envelope.rewrap(sealed, aad_for(SCOPE, "k", 1))) for _ in range(5_000)),
                       args.repeats)
    notes.append(f"crypto alone (rewrap: unwrap + wrap): {crypto:,.0f}/s, {1e6 / crypto:.0f} µs of each rotated "
                 f"row's {1e6 / rate:.0f} µs")
    memory(args, tmp, out, notes)


def paging(vault: Stack, names: list[str], repeats: int) -> tuple[float, float]:
    cursors = [names[len(names) * i // 200] for i in range(1, 200)]
    encoded = [encode_cursor(c) for c in cursors]
    service = vault
    page = service.secrets.list(owner(), SCOPE, cursor=encoded[100], limit=PAGE)
    assert len(page.items) == PAGE and page.items[0].key > cursors[100]

    def one_pass() -> int:
        for cursor in encoded:
            service.secrets.list(owner(), SCOPE, cursor=cursor, limit=PAGE)
        return len(encoded)

    sprongus_ms = 1000 / best_rate(one_pass, repeats)
    sql = (f"SELECT {', '.join(COLS)} FROM secret_kv WHERE owner_type = ? AND owner_id = ? AND key_name > ? "
           "ORDER BY key_name LIMIT ?")
    with closing(raw_sqlite(Path(vault.db.database))) as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("p", "b", "k", 51)))
        assert "secret_kv_place" in plan and "TEMP B-TREE" not in plan, plan

        def bare_pass() -> int:
            for cursor in cursors:
                conn.execute("BEGIN")
                conn.execute(sql, ("project", "bench", cursor, PAGE + 1)).fetchall()
                conn.execute("COMMIT")
            return len(cursors)

        return sprongus_ms, 1000 / best_rate(bare_pass, repeats)


def memory(args: argparse.Namespace, tmp: Path, out: list[Result], notes: list[str]) -> None:
    """Peak traced memory of rotate_master at two sizes: streaming in batches, it must not grow with the rows."""
    peaks = []
    for rows in (int(n) for n in args.mem_rows.split(",")):
        directory = Path(tempfile.mkdtemp(dir=tmp))
        old, new = new_key("k1"), new_key("k2")
        vault = sqlite_vault(directory, old)
        seed_real_rows(vault, keys(rows, "m"))
        vault.close()
        vault = sqlite_vault(directory, f"{new},{old}")
        try:
            tracemalloc.start()
            report = vault.rotation.rotate_master(owner())
            peaks.append((rows, tracemalloc.get_traced_memory()[1]))
            tracemalloc.stop()
            assert report.rotated == rows
        finally:
            vault.close()
    (small, small_peak), (large, large_peak) = peaks
    growth = large_peak / small_peak
    notes.append(f"rotate_master peak traced memory: {small:,} rows {small_peak / 1e6:.2f} MB, {large:,} rows "
                 f"{large_peak / 1e6:.2f} MB ({growth:.2f}x for {large / small:.0f}x the rows): "
                 f"{'PASS' if growth < 1.5 else 'MISS'} (target: flat, < 1.5x)")


def profile(name: str, run: Callable[[], Any]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(run)
    print(f"--- profile: {name} (top 12 by cumulative time)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)


# --- Postgres -----------------------------------------------------------------------------------------------------

def postgres_benchmarks(args: argparse.Namespace, out: list[Result], notes: list[str]) -> None:
    import psycopg

    from sprongus.adapters.peewee.db import open_postgres
    from sprongus.adapters.peewee.migrate import upgrade

    host = os.environ.get("SPRONGUS_TEST_PG_HOST", "127.0.0.1")
    port = os.environ.get("SPRONGUS_TEST_PG_PORT", "5432")
    superuser = os.environ.get("SPRONGUS_TEST_PG_USER", "postgres")
    admin = f"postgresql://{superuser}@{host}:{port}/postgres"
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.Error as exc:
        notes.append(f"Postgres skipped: {str(exc).strip().splitlines()[0]}")
        return
    name = f"sprongus_bench_{uuid.uuid4().hex[:8]}"
    role = f"{name}_app"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        db = open_postgres(f"postgresql://{superuser}@{host}:{port}/{name}")
        upgrade(db)
        db.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN NOBYPASSRLS IN ROLE sprongus_app')
        app_url = f"postgresql://{role}@{host}:{port}/{name}"
        pg_set(args, app_url, out, "")
        # The same with commits that do not wait for the WAL flush: separates the disk's fsync from our overhead.
        pg_set(args, app_url + "?options=-c%20synchronous_commit%3Doff", out, ", no fsync wait")
        with psycopg.connect(admin, autocommit=True) as conn:
            settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                                         "('synchronous_commit', 'fsync', 'server_version')").fetchall())
        notes.append(f"Postgres {settings.get('server_version')}: synchronous_commit="
                     f"{settings.get('synchronous_commit')}, fsync={settings.get('fsync')}; the service and the bare "
                     "engine connect as a login role IN ROLE sprongus_app (RLS on)")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def pg_set(args: argparse.Namespace, url: str, out: list[Result], label: str) -> None:
    import psycopg

    system = Scope.system()
    vault = stack(url, new_key("k1"))
    ops = max(args.ops // 5, 100)
    repeats = min(args.repeats, 2)
    runs = iter(range(1_000_000))

    def service(names: list[str]) -> int:
        for key in names:
            vault.secrets.set(owner(), system, key, VALUE)
        return len(names)

    try:
        with psycopg.connect(url) as conn:
            create = best_rate(lambda: service(keys(ops, f"c{next(runs)}")), repeats)
            bare_create = best_rate(lambda: bare_pg_set(conn, keys(ops, f"b{next(runs)}")), repeats)
            out.append(Result(f"Postgres set, create ({ops:,} keys){label}", create, bare_create, "/s",
                              None if label else 1_000))
            bare_pg_set(conn, keys(ops, "bu"))
            update = best_rate(lambda: service(keys(ops, "c0")), repeats)
            bare_update = best_rate(lambda: bare_pg_set(conn, keys(ops, "bu")), repeats)
            out.append(Result(f"Postgres set, update{label}", update, bare_update, "/s", None if label else 1_000))
    finally:
        vault.close()


PG_SELECT = SELECT_ONE.replace("owner_id = ?", "owner_id IS NULL").replace("?", "%s") + " FOR UPDATE"
PG_INSERT = INSERT_ROW.replace("?", "%s")
PG_UPDATE = UPDATE_ROW.replace("owner_id = ?", "owner_id IS NULL").replace("?", "%s")
PG_AUDIT = INSERT_AUDIT.replace("?", "%s")


def bare_pg_set(conn: Any, names: list[str]) -> int:
    """The adapter's statements for one set, as the app role: caller settings, locked read, write, chained audit."""
    for key in names:
        with conn.transaction():
            conn.execute("SELECT set_config('sprongus.subject', %s, true), set_config('sprongus.projects', %s, true),"
                         " set_config('sprongus.admin', %s, true)", ("owner", "", "on"))
            found = conn.execute(PG_SELECT, ("system", key)).fetchone()
            blob = (os.urandom(80), os.urandom(60), os.urandom(12))
            with conn.transaction():
                if found is not None:
                    conn.execute(PG_UPDATE, (*blob, "AES-256-GCM", "env:k1", found[9] + 1, NOW, NOW, None, "{}",
                                             None, "sha256:x", "system", key, found[9]))
                else:
                    conn.execute(PG_INSERT, (str(uuid.uuid4()), "system", None, key, *blob, "AES-256-GCM", "env:k1",
                                             1, NOW, NOW, None, "{}", None, "sha256:x"))
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x53505241,))
                prev = conn.execute(LAST_HASH).fetchone()
                conn.execute(PG_AUDIT, (NOW, "owner", "update", "system", key, 1, "success", None, None, "{}",
                                        prev[0] if prev else "g", f"h-{uuid.uuid4()}"))
    return len(names)


# --- report -------------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="secrets for the paging and rotate_master runs")
    parser.add_argument("--ops", type=int, default=2_000, help="sets/gets per timed pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mem-rows", default="2000,10000", help="two sizes for the rotate_master memory check")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print cProfile summaries of set, get, rotate")
    args = parser.parse_args()
    results: list[Result] = []
    notes: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sprongus-bench-") as tmp:
        sqlite_benchmarks(args, Path(tmp), results, notes)
    if not args.no_postgres:
        postgres_benchmarks(args, results, notes)

    print(f"sprongus bench_storage: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}, {time.perf_counter() - started:.0f} s in all")
    header = ["measurement", "sprongus", "bare engine", "overhead", "target"]
    rows = [header] + [r.cells() for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                    strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
