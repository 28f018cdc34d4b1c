"""Scale benchmark: a Postgres vault of 1,000,000 secrets (and one of a tenth of that, to show what grows with size).

Run from the repository root:
    .venv/bin/python benchmarks/bench_scale.py [--secrets 1000000] [--small N] [--pages 2000] [--batches 40]

Each size gets a throwaway database (tests/pg.py: migrated, with an app and a maintenance login; dropped at the
end, on Ctrl-C and on errors too), populated by bulk SQL as bench_history does it (scale_seed.py): every secret is
really sealed with the vault's envelope under its own AAD and sent with COPY, and the vault's audit sink chains one
`create` row per secret. Then VACUUM ANALYZE and CHECKPOINT (a settled vault), and on the app login (row-level
security on) as a workload of project `bench` (read + reveal; its batch-reveal limit raised so that the samples are
not refused):

- a page of 50, masked, through SecretOps.list: the first page, pages after a random cursor, the first page under
  a random prefix `svcN.` (a tenth of the keys), round-robin; p50 and p99 of --pages samples each (<= 5 ms p99);
- batch reveal of 1,000 random keys through BatchRevealOps.reveal_many, as POST /v1/secrets:reveal calls it, and
  the document the API builds from it (<= 250 ms p50);

then on the maintenance login (as `sprongus keys rotate-master` runs) with a local key added: rotate-master in rows
re-wrapped per second (>= 10,000/s) and its peak RSS growth (VmHWM reset through /proc/self/clear_refs), which
must be flat between the two sizes. Also database sizes (pg_total_relation_size), scaled per million secrets.
Local keys (SPRONGUS_MASTER_KEYS), time.perf_counter; prints PASS/MISS and always exits 0. gunicorn workers are
bench_tuning.py's subject, not this one's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench_history import PAGE, SCOPE, measured_rotation, names  # noqa: E402
from scale_seed import copy_secrets, seed_audit, sizes, vacuum_analyze  # noqa: E402
from tests.integration.stack import Stack, build, environment, new_key, owner  # noqa: E402

from sprongus.adapters.peewee.db import release_connection  # noqa: E402
from sprongus.domain.principal import Permission, Principal, TokenKind  # noqa: E402
from sprongus.domain.scope import Scope  # noqa: E402
from sprongus.domain.values import SecretValue  # noqa: E402
from sprongus.service.batch_reveal import MAX_BATCH  # noqa: E402
from sprongus.service.secrets import encode_cursor  # noqa: E402

WORKLOAD = Principal("svc-bench", frozenset({Permission.READ, Permission.REVEAL}), frozenset({SCOPE.owner_id or ""}),
                     kind=TokenKind.WORKLOAD, request_id="bench-scale")
ROOMY = {"SPRONGUS_RATE_LIMIT_REVEAL_BATCH": "1000000/minute"}  # the samples, not the limiter, are measured
MB = 1e6
Result = dict[str, Any]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def load() -> float:
    return os.getloadavg()[0]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def pages(app: Stack, keys: list[str], samples: int, rng: random.Random) -> dict[str, list[float]]:
    """ms per page of 50 for the three kinds, sampled round-robin (a neighbour's burst then hits all three)."""
    ops, db = app.secrets, app.db

    def first() -> None:
        assert len(ops.list(WORKLOAD, SCOPE, limit=PAGE).items) == PAGE

    def cursor() -> None:
        ops.list(WORKLOAD, SCOPE, cursor=encode_cursor(rng.choice(keys)), limit=PAGE)

    def prefix() -> None:
        assert len(ops.list(WORKLOAD, SCOPE, prefix=f"svc{rng.randrange(10)}.", limit=PAGE).items) == PAGE

    kinds = {"first": first, "cursor": cursor, "prefix": prefix}
    got: dict[str, list[float]] = {kind: [] for kind in kinds}
    for n in range(samples + samples // 10):  # the first tenth warms the pool, the caches and the plans
        for kind, run in kinds.items():
            ms = timed(run)
            release_connection(db)  # the end of a request: the connection goes back to the pool
            if n >= samples // 10:
                got[kind].append(ms)
    return got


def batches(app: Stack, keys: list[str], count: int, rng: random.Random) -> list[float]:
    """ms per batch reveal of MAX_BATCH random keys, with the JSON document the API answers."""
    ops, db = app.container.batch_reveal_ops(), app.db

    def one(wanted: list[str]) -> None:
        result = ops.reveal_many(WORKLOAD, SCOPE, None, wanted)
        assert len(result.items) == len(wanted) and not result.missing
        json.dumps({"items": [{"keyName": i.key, "value": i.value.reveal(), "version": i.version}
                              for i in result.items], "missing": result.missing})

    got = []
    for n in range(count + 3):  # three to warm up
        ms = timed(lambda: one(rng.sample(keys, MAX_BATCH)))
        release_connection(db)
        if n >= 3:
            got.append(ms)
    return got


def rotate(env: dict[str, str], old: str) -> tuple[float, int, int | None, int]:
    """rotate-master onto a new local key as the CLI runs it: (rows/s, rows, peak RSS growth, rows left on old)."""
    vault = build({**env, "SPRONGUS_MASTER_KEYS": f"{new_key('k2')},{old}"})
    try:
        report, elapsed, growth = measured_rotation(vault)
        left = sum(n for key, n in vault.container.unit_of_work().count_by_master_key(owner()).items()
                   if key != vault.container.envelope().current_master_key_id())
        return report.rotated / elapsed, report.rotated, growth, left
    finally:
        vault.close()


def one_size(n: int, args: argparse.Namespace) -> Result:
    from tests.pg import fresh_database

    keys = names(n)
    rng = random.Random(n)
    out: Result = {"n": n}
    old = new_key("k1")
    with fresh_database(migrated=True) as db:
        print(f"[{n:,}] seeding database {db.name} ... (load {load():.1f})", file=sys.stderr, flush=True)
        out["empty"] = sizes(db.admin_url)["database"]
        maint_env = environment(db.maintenance_url, old)
        maint = build(maint_env)
        try:
            maint.secrets.set(owner(), Scope.system(), "bench.warmup", SecretValue("x"))  # the vault's key records
            out["seed"] = copy_secrets(db.admin_url, maint.container.envelope(), keys)
            out["audit"] = seed_audit(maint.audit, keys)
        finally:
            maint.close()
        out["vacuum"] = vacuum_analyze(db.admin_url)
        out["sizes"] = sizes(db.admin_url)
        print(f"[{n:,}] seeded in {out['seed']:.0f} s + audit {out['audit']:.0f} s + vacuum {out['vacuum']:.0f} s; "
              f"pages ... (load {load():.1f})", file=sys.stderr, flush=True)
        app = build({**environment(db.app_url, old), **ROOMY})
        try:
            out["pages"], out["load_pages"] = pages(app, keys, args.pages, rng), load()
            out["batch"], out["load_batch"] = batches(app, keys, args.batches, rng), load()
        finally:
            app.close()
        print(f"[{n:,}] rotate-master ... (load {load():.1f})", file=sys.stderr, flush=True)
        out["rate"], out["rotated"], out["growth"], out["left"] = rotate(maint_env, old)
        out["load_rotate"] = load()
        out["sizes_after"] = sizes(db.admin_url)
    return out


def report(results: list[Result], started: float) -> None:
    big, counts = results[-1], " and ".join(f"{r['n']:,}" for r in results)
    print(f"bench_scale: Postgres, {counts} secrets; Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load {load():.1f} now; "
          f"{time.perf_counter() - started:.0f} s in all")
    rows: list[list[str]] = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    def row(label: str, cell: Callable[[Result], str], target: str) -> None:
        rows.append([label, *(cell(r) for r in results), target])

    def ms(what: str) -> Callable[[Result], str]:
        def cell(r: Result) -> str:
            got = r["pages"].get(what, r["batch"])
            return f"{pct(got, 0.5):.2f} / {pct(got, 0.99):.2f} ms"
        return cell

    def per_million(r: Result, got: float) -> str:
        return f"{got * 1e6 / r['n'] / MB:,.0f} MB"

    for what, label in (("first", "first page"), ("cursor", "page after a random cursor"),
                        ("prefix", "first page under svcN.")):
        row(f"{label}, p50 / p99", ms(what), f"p99 <= 5 ms {verdict(pct(big['pages'][what], 0.99) <= 5.0)}")
    row(f"batch reveal of {MAX_BATCH:,} keys, p50 / p99", ms("batch"),
        f"p50 <= 250 ms {verdict(pct(big['batch'], 0.5) <= 250)}")
    row("rotate-master, rows/s", lambda r: f"{r['rate']:,.0f}/s", f">= 10,000/s {verdict(big['rate'] >= 10_000)}")
    growths = [r["growth"] for r in results]
    if len(results) > 1 and None not in growths:
        flat = growths[-1] <= max(2 * growths[0], growths[0] + 16 * MB)
        row("rotate-master, peak RSS growth", lambda r: f"{r['growth'] / MB:.1f} MB",
            f"flat (<= 2x or +16 MB) {verdict(flat)}")
    row("secret_kv per million secrets", lambda r: f"{per_million(r, r['sizes']['secret_kv'])} "
        f"({per_million(r, r['sizes']['secret_kv.indexes'])} indexes)", "with its indexes and TOAST")
    row("audit_event per million rows", lambda r: per_million(r, r["sizes"]["audit_event"] * r["n"]
                                                              / r["sizes"]["audit_event.rows"]),
        "one create row per secret, chained")
    row("database growth per million secrets", lambda r: per_million(r, r["sizes"]["database"] - r["empty"]),
        "secrets + their audit rows, from empty")
    row("secret_kv after rotate-master", lambda r: f"{r['sizes_after']['secret_kv'] / MB:,.0f} MB (was "
        f"{r['sizes']['secret_kv'] / MB:,.0f})", "dead row versions until vacuum")
    header = ["measurement", *(f"{r['n']:,} secrets" for r in results), "target (at the largest size)"]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for i, line in enumerate([header, *rows]):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for r in results:
        print(f"- {r['n']:,} secrets: seeded (sealed + COPY) in {r['seed']:.1f} s ({r['n'] / r['seed']:,.0f} rows/s), "
              f"audit rows {r['audit']:.1f} s, VACUUM ANALYZE + CHECKPOINT {r['vacuum']:.1f} s; "
              f"{len(r['pages']['first']):,} samples per page kind, {len(r['batch'])} batches; rotate-master "
              f"re-wrapped {r['rotated']:,} rows ({r['left']:,} left on the old key); load {r['load_pages']:.1f} "
              f"(pages), {r['load_batch']:.1f} (batch), {r['load_rotate']:.1f} (rotate)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=0, help="the smaller vault (default: a tenth, at least 5,000)")
    parser.add_argument("--pages", type=int, default=2000, help="samples per page kind")
    parser.add_argument("--batches", type=int, default=40, help="batch reveals sampled")
    args = parser.parse_args()
    if min(args.secrets, args.small or args.secrets) < 5_000:
        parser.error("at least 5,000 secrets: a batch reveals 1,000 and a prefix page needs 50 under each of 10")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: unwind, dropping the database
    started = time.perf_counter()
    results = []
    try:
        for n in sorted({args.small or max(args.secrets // 10, 5_000), args.secrets}):
            results.append(one_size(n, args))
    except KeyboardInterrupt:  # the database is already dropped: report what was measured
        print("bench_scale: interrupted", file=sys.stderr)
    except Exception as exc:
        print(f"bench_scale: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
    except BaseException as exc:  # pytest's skip when no server answers is no Exception
        if isinstance(exc, SystemExit | GeneratorExit):
            raise
        print(f"bench_scale: skipped: {exc}")
    if results:
        report(results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
