"""Two versions of the code side by side under wrk: another tree's `src` (before) against this checkout (after).

Run from the repository root:
    git archive <rev> src | tar -x -C /tmp/before
    .venv/bin/python benchmarks/bench_ab.py /tmp/before/src [--store postgres|sqlite] [--ops reveal,masked,write]
                                            [--rounds 8] [--seconds 4]

What it isolates: on the shared 2-vCPU machine one bench_peers.py run swings by 10-20% from the next, more than
most changes. Here both versions serve at once, started as bench_peers.py starts sprongus (the same gunicorn
settings, `-w 2 --threads 4`; the same store shape: the embedded SQLite vault, or Postgres as the RLS app role with
limits in Redis, each version with its own database), the older one importing its code through PYTHONPATH. wrk
drives each op on one server and then the other, with the order swapped every round, so a neighbour's burst of
load lands on both. The table gives each version's mean rate, the ratio, in how many rounds the newer one was
faster, and the median p99. Needs what bench_peers.py needs for the store (wrk; Postgres and Redis); always exits 0.

Measured 2026-12-07, ed9a19d (before) against 537d615 (a reveal's audit rows sent with their group's COMMIT,
adapters/peewee/send_later.py), Postgres: `--ops reveal,masked --rounds 8`: reveal 659 -> 670 req/s (1.02, faster
in 5 of 8 rounds), masked 1,406 -> 1,542 (1.10, 6 of 8: the code of that path did not change, so this is the
spread); `--ops reveal --rounds 12`: 615 -> 706 (1.15, 12 of 12). The same method in a script before this one: 610
-> 673 (1.10, 8 of 8), writes 279 -> 284 (untouched). After its review (cf54bef: each statement bound on its own),
`--ops reveal --rounds 12`: 676 -> 751 (1.11, 12 of 12).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers as peers


def serve(stack: ExitStack, work: Path, name: str, store: str, pythonpath: str | None) -> peers.Target:
    """One version's server, started as bench_peers starts it; `pythonpath`: the older version's code."""
    work.mkdir()
    start = peers.sqlite_target if store == "sqlite" else peers.postgres_target
    target = start(stack, work, {"PYTHONPATH": pythonpath} if pythonpath else None)
    if target.ops is None:
        raise SystemExit(f"bench_ab: {name}: {target.note}")
    return replace(target, name=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the other version's src directory (it holds the sprongus package)")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--ops", default="reveal,masked,write", help="comma-separated, of " + ", ".join(peers.OPS))
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="per op, server and round (default 4)")
    args = parser.parse_args(argv)
    ops = [op for op in args.ops.split(",") if op]
    wrk = shutil.which("wrk")
    if wrk is None or not (Path(args.before) / "sprongus").is_dir() or not set(ops) <= set(peers.OPS):
        print("bench_ab: needs wrk on PATH, a src directory holding `sprongus`, and ops among "
              + ", ".join(peers.OPS))
        return 0
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        servers = [serve(stack, work / "before", "before", args.store, str(Path(args.before).resolve())),
                   serve(stack, work / "after", "after", args.store, None)]
        scripts = {(s.name, op): peers.write_lua(work, f"{s.name}-{op}", s.ops[op]) for s in servers for op in ops
                   if s.ops is not None}
        for (name, _op), script in scripts.items():  # warm both
            peers.run_wrk(wrk, next(s for s in servers if s.name == name).port, script, 1)
        runs: dict[tuple[str, str], list[peers.Measure]] = {key: [] for key in scripts}
        for round_ in range(args.rounds):
            for op in ops:
                for server in servers if round_ % 2 == 0 else servers[::-1]:
                    runs[(server.name, op)].append(peers.run_wrk(wrk, server.port, scripts[(server.name, op)],
                                                                 args.seconds))
    print(f"bench_ab: {args.store}, {args.rounds} rounds of {args.seconds:g} s per op and version; before = "
          f"{args.before}, after = this checkout")
    print(f"{'op':8s} {'before req/s':>13s} {'after req/s':>12s} {'ratio':>6s} {'after won':>10s} "
          f"{'p99 ms before':>14s} {'after':>6s} {'bad':>4s}")
    for op in ops:
        before, after = runs[("before", op)], runs[("after", op)]
        won = sum(a.rate > b.rate for a, b in zip(after, before, strict=True))
        mean_b, mean_a = statistics.mean(m.rate for m in before), statistics.mean(m.rate for m in after)
        print(f"{op:8s} {mean_b:13,.0f} {mean_a:12,.0f} {mean_a / mean_b:6.2f} {won:>5d} of {len(after):<2d} "
              f"{statistics.median(m.p99 for m in before):14.1f} {statistics.median(m.p99 for m in after):6.1f} "
              f"{sum(m.bad for m in before + after):4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
