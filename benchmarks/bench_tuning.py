"""gunicorn tuning under wrk: masked GET, reveal and PUT for several `--workers` x `--threads` settings.

Run from the repository root:  .venv/bin/python benchmarks/bench_tuning.py [--seconds 5] [--warmup 1]
                               [--sqlite 1x1,1x4,1x8,2x1,2x4,2x8,4x1,4x4,4x8] [--postgres 2x1,2x4,4x4]

Each setting `WxT` is `gunicorn -c src/sprongus/entrypoints/api/gunicorn_conf.py --workers W --threads T` (the
config's gthread workers), started, measured and stopped on its own, one after the other; nothing else of this
script runs while wrk does. Each op is `wrk -t2 -c16 -d5s --latency` (2 threads, 16 keep-alive connections) after a
discarded `--warmup` run, with bench_peers.py's requests and Lua scripts:

    masked   GET  /v1/secrets/project/bench/KEY
    reveal   POST /v1/secrets/project/bench/KEY:reveal {}     (one audit row each)
    put      PUT  /v1/secrets/project/bench/KEY {"value"}     (a new version each; 64-byte values)

KEY is new for each setting (made by one PUT before the measurement), so every setting starts from one version.

- sqlite: the dev vault, as bench_peers.py serves it: SPRONGUS_ENV=dev, a temporary SPRONGUS_HOME, the file key
  provider (the key made by a `sprongus secrets set` before any server starts), in-memory rate limits raised to
  100000000/minute (dev allows them with several workers, each worker counting alone), and a workload token.
- postgres: bench_peers.py's production shape: SPRONGUS_ENV=prod, a fresh migrated database on 127.0.0.1:5432
  served as the RLS app role, rate limits in Redis (127.0.0.1:6379, a free database 1-15) raised the same way, the
  file key provider admitted by SPRONGUS_ALLOW_LOCAL_KEYS=1. The `pg conns` column is the app role's connections
  in pg_stat_activity after the setting's three ops: what the pool (one connection per serving thread, no cap)
  kept open. Skipped with a note without Postgres or Redis; `--postgres ''` skips it.

No KMS is involved (a KMS call per reveal is bench_dek_cache.py's subject): this measures the server's own CPU
and database work. wrk shares the machine's CPUs with gunicorn. Needs wrk (apt-get install wrk); nothing is
installed by the script, a missing piece skips its rows with a note, and it always exits 0. Takes about
(3 x (seconds + warmup) + 3) s per setting: ~4.5 minutes with the defaults.

docs/deploy.md ("Tuning") has the table of the last run and what it means for sizing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_api import start_gunicorn
from bench_peers import (
    APP,
    CONNECTIONS,
    ROOMY,
    SCOPE,
    THREADS,
    VALUE,
    Measure,
    Op,
    call,
    create_token,
    prod_postgres,
    run_wrk,
    seed,
    write_lua,
)

OPS = ("masked", "reveal", "put")
SQLITE_DEFAULT = "1x1,1x4,1x8,2x1,2x4,2x8,4x1,4x4,4x8"
POSTGRES_DEFAULT = "2x1,2x4,4x4"


@dataclass
class Store:
    """How to serve one store: the server's settings, or the reason it is absent."""

    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    token: str = ""
    note: str = ""
    connections: object = None  # () -> int: the app role's open connections (Postgres only)


@dataclass
class Row:
    store: str
    workers: int
    threads: int
    results: dict[str, Measure] = field(default_factory=dict)
    connections: int | None = None
    load: float = 0.0
    note: str = ""


def parse_settings(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        workers, _, threads = item.partition("x")
        if not (workers.isdigit() and threads.isdigit() and int(workers) > 0 and int(threads) > 0):
            raise argparse.ArgumentTypeError(f"{item!r}: expected WORKERSxTHREADS, e.g. 2x4")
        out.append((int(workers), int(threads)))
    return out


def ops_for(token: str, key: str) -> dict[str, Op]:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/v1/secrets/{SCOPE}/{key}"
    return {"masked": Op("GET", path, None, {"Authorization": f"Bearer {token}"}),
            "reveal": Op("POST", f"{path}:reveal", "{}", auth),
            "put": Op("PUT", path, json.dumps({"value": VALUE}), auth)}


# --- the stores ------------------------------------------------------------------------------------------------


def sqlite_store(work: Path) -> Store:
    home = work / "home"
    home.mkdir()
    settings = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), "SPRONGUS_KEY_PROVIDER": "file", **ROOMY}
    try:
        token = create_token(settings, work)
        seed(settings, work)
    except Exception as exc:
        return Store("sqlite", note=f"skipped: {str(exc)[:300]}")
    return Store("sqlite", settings, token)


@contextmanager
def postgres_store(work: Path) -> Iterator[Store]:
    with ExitStack() as stack:
        prepared = prod_postgres(stack, work)
        if isinstance(prepared, str):
            yield Store("postgres", note=prepared)
            return
        db, settings = prepared
        operator = {**settings, "SPRONGUS_DATABASE_URL": db.maintenance_url}
        try:
            token = create_token(operator, work)
            seed(operator, work)
        except Exception as exc:
            yield Store("postgres", note=f"skipped: {str(exc)[:300]}")
            return

        def connections() -> int:
            with db.admin() as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                                   (db.name, db.app_role)).fetchone()
            return int(row[0]) if row else 0

        yield Store("postgres", {**settings, "SPRONGUS_DATABASE_URL": db.app_url}, token, connections=connections)


# --- one setting -----------------------------------------------------------------------------------------------


def measure_setting(wrk: str, store: Store, workers: int, threads: int, work: Path, seconds: float,
                    warmup: float) -> Row:
    row = Row(store.name, workers, threads)
    name = f"{store.name}-{workers}x{threads}"
    key = f"tune{workers}x{threads}"
    try:
        server = start_gunicorn(APP, store.settings, work / f"{name}.log", "--workers", str(workers),
                                "--threads", str(threads), timeout=60)
    except Exception as exc:
        row.note = f"gunicorn did not start: {str(exc)[-300:]}"
        return row
    try:
        ops = ops_for(store.token, key)
        put = ops["put"]
        status, body = call(server.port, put.method, put.path, {"value": VALUE}, put.headers)
        if status not in (200, 201):
            row.note = f"first PUT answered {status}: {body[:200]!r}"
            return row
        for op in OPS:
            script = write_lua(work, f"{name}-{op}", ops[op])
            if warmup > 0:
                run_wrk(wrk, server.port, script, warmup)
            got = row.results[op] = run_wrk(wrk, server.port, script, seconds)
            extra = (f"  ({got.bad} non-2xx/errors)" if got.bad else "") + (f"  {got.note}" if got.note else "")
            print(f"  {name:<14} {op:<6} {got.rate:>7,.0f} req/s  p50 {got.p50:7.2f} ms  p99 {got.p99:7.2f} ms"
                  f"{extra}", file=sys.stderr, flush=True)
        if store.connections is not None:
            row.connections = store.connections()  # type: ignore[operator]
        row.load = os.getloadavg()[0]
    finally:
        server.stop()
    return row


# --- the run ---------------------------------------------------------------------------------------------------


def run(seconds: float, warmup: float, sqlite: list[tuple[int, int]], postgres: list[tuple[int, int]]
        ) -> tuple[list[Row], list[str]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return [], ["skipped every row: no wrk (apt-get install wrk)"]
    work = Path(tempfile.mkdtemp(prefix="sprongus-bench-tuning-"))
    work.chmod(0o700)  # the Lua scripts hold a bearer token
    rows: list[Row] = []
    notes: list[str] = []
    try:
        if sqlite:
            store = sqlite_store(work)
            if store.note:
                notes.append(f"sqlite: {store.note}")
            else:
                rows += [measure_setting(wrk, store, w, t, work, seconds, warmup) for w, t in sqlite]
        if postgres:
            with postgres_store(work) as store:
                if store.note:
                    notes.append(f"postgres: {store.note}")
                else:
                    rows += [measure_setting(wrk, store, w, t, work, seconds, warmup) for w, t in postgres]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows, notes


def report(rows: list[Row], notes: list[str], seconds: float, load_before: float) -> None:
    print(f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs (nproc), load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"wrk -t{THREADS} -c{CONNECTIONS} -d{max(1, round(seconds))}s --latency per op")
    for note in notes:
        print(note)
    header = (f"{'store':<9} {'-w':>3} {'--threads':>9}  {'masked req/s':>12} {'p99 ms':>7}  {'reveal req/s':>12} "
              f"{'p99 ms':>7}  {'PUT req/s':>9} {'p99 ms':>7}  {'pg conns':>8}  {'load':>4}")
    print(header)
    print("-" * len(header))
    widths = {"masked": 12, "reveal": 12, "put": 9}
    for row in rows:
        cells = []
        for op in OPS:
            got = row.results.get(op)
            if got is None or got.note:
                cells.append(f"{'-':>{widths[op]}} {'-':>7}")
            else:
                cells.append(f"{got.rate:>{widths[op]},.0f} {got.p99:>7.1f}")
        conns = f"{row.connections:>8}" if row.connections is not None else f"{'':>8}"
        bad = sum(m.bad for m in row.results.values())
        tail = (f"  ({bad} non-2xx/errors)" if bad else "") + (f"  {row.note}" if row.note else "")
        print(f"{row.store:<9} {row.workers:>3} {row.threads:>9}  {'  '.join(cells)}  {conns}  {row.load:>4.1f}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of wrk per op and setting (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="a discarded wrk run before each (default 1)")
    parser.add_argument("--sqlite", type=parse_settings, default=parse_settings(SQLITE_DEFAULT),
                        help=f"WxT settings on the SQLite dev vault (default {SQLITE_DEFAULT}; '' for none)")
    parser.add_argument("--postgres", type=parse_settings, default=parse_settings(POSTGRES_DEFAULT),
                        help=f"WxT settings on Postgres, prod shape (default {POSTGRES_DEFAULT}; '' for none)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on the way out
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        rows, notes = run(args.seconds, args.warmup, args.sqlite, args.postgres)
    except Exception as exc:
        print(f"bench_tuning: failed: {exc}", file=sys.stderr)
        return 0
    report(rows, notes, args.seconds, load_before)
    print(f"({time.monotonic() - started:.0f} s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
