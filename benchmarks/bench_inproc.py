"""CPU per request inside the app, without gunicorn or a network: masked read, reveal and write beside bare Flask.

Run from the repository root:  .venv/bin/python benchmarks/bench_inproc.py [--requests 2000] [--rounds 6]

What it isolates: under gunicorn on a small machine the server is CPU-bound, and wrk's figures swing more from one
run to the next than a 10% saving in the app. Here each op is sent through Flask's test client in one thread and
timed with `time.process_time` (this process's CPU only); every round measures every op once, and the table shows
each op's minimum over the rounds (the house method for a noisy machine, benchmarks/README.md). The floor is Flask
alone (bench_api.bare_app) in the same rounds. The vault is bench_peers' embedded shape: SQLite in a temporary
SPRONGUS_HOME, a file key, a workload token, limits raised.

To compare two versions of the code, run it twice with PYTHONPATH pointing at each version's `src` (an export of
an older commit: `git archive <rev> src | tar -x -C /tmp/old`), alternating, and compare each op's ratio to the
floor. Measured 2026-12-06 (the machine at less than half its afternoon speed), minimum of six alternating runs,
the session's starting code (936f816) / the fast lane and one-append write audit: masked 0.688 / 0.596 ms,
reveal 1.263 / 1.106, write 1.646 / 1.468; bare Flask 0.223-0.235. Always exits 0: a measurement, not a test.

`--postgres`: bench_peers' production shape instead (a fresh database served as the RLS app role, limits in Redis),
timed by the wall clock, since there a request mostly waits for the database. 2026-12-07, two alternating runs of
each (`--requests 1000 --rounds 4`), before (7f0e1ae) / after (3771b1d) a single secret's read became one message
(READ COMMITTED READ ONLY, the caller's settings and the SELECT, UnitOfWork.current; it was BEGIN with the
settings, the SELECT, COMMIT): masked 1.412 and 1.515 / 1.146 and 1.201 ms, reveal 3.813 and 3.698 / 3.032 and
3.119 ms, write 5.134 and 4.783 / 4.138 and 4.420 (not this path: the spread); bare Flask 0.227-0.277.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import bench_api
import bench_peers


def app_ops(home: Path, stack: ExitStack | None = None) -> dict[str, Callable[[], Any]]:
    """The embedded vault; with `stack`, bench_peers' production shape on Postgres instead (a fresh database served
    as the RLS app role, limits in Redis), entered on it."""
    settings: dict[str, str] = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), "SPRONGUS_KEY_PROVIDER": "file",
                                **bench_peers.ROOMY}
    maintenance = settings
    if stack is not None:
        prepared = bench_peers.prod_postgres(stack, home)
        if isinstance(prepared, str):
            raise SystemExit(f"bench_inproc: Postgres {prepared}")
        db, shape = prepared
        settings = {**shape, "SPRONGUS_DATABASE_URL": db.app_url}
        maintenance = {**shape, "SPRONGUS_DATABASE_URL": db.maintenance_url}
    token = bench_peers.create_token(maintenance, home)
    bench_peers.seed(maintenance, home)
    os.environ.update(bench_api.clean_env(settings))
    from sprongus.entrypoints.api.app import create_app

    client = create_app().test_client()
    bare = bench_api.bare_app().test_client()
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/v1/secrets/{bench_peers.SCOPE}/{bench_peers.KEY}"
    return {"masked": lambda: client.get(path, headers=headers),
            "reveal": lambda: client.post(path + ":reveal", json={}, headers=headers),
            "write": lambda: client.put(path, json={"value": bench_peers.VALUE}, headers=headers),
            "bare Flask": lambda: bare.get("/ping")}


def measure(ops: dict[str, Callable[[], Any]], requests: int, rounds: int,
            clock: Callable[[], float] = time.process_time) -> dict[str, list[float]]:
    for name, op in ops.items():
        answer = op()
        if answer.status_code >= 300:
            raise RuntimeError(f"{name} answered {answer.status_code}")
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            for _ in range(requests // 10):  # warm
                op()
            started = clock()
            for _ in range(requests):
                op()
            samples[name].append((clock() - started) / requests * 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per op and round (default 2000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds; the table shows each op's minimum (default 6)")
    parser.add_argument("--postgres", action="store_true",
                        help="the production shape on Postgres, timed by the wall clock: a request's wait for the "
                             "database (its round trips, the server's own work) is most of what it costs")
    args = parser.parse_args(argv)
    clock, what = (time.perf_counter, "Wall time") if args.postgres else (time.process_time, "CPU")
    with tempfile.TemporaryDirectory() as home, ExitStack() as stack:
        samples = measure(app_ops(Path(home), stack if args.postgres else None), args.requests, args.rounds, clock)
    import sprongus

    floor = min(samples["bare Flask"])
    print(f"{what} per request in the app{' (Postgres, app role)' if args.postgres else ''}, Flask test client, one "
          f"thread; minimum of {args.rounds} rounds of {args.requests}")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"sprongus from {Path(sprongus.__file__).parent}")
    print(f"{'op':12s} {'min ms':>8s} {'median ms':>10s} {'x bare Flask':>13s}")
    for name, values in samples.items():
        ordered = sorted(values)
        print(f"{name:12s} {ordered[0]:8.3f} {ordered[len(ordered) // 2]:10.3f} {ordered[0] / floor:12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
