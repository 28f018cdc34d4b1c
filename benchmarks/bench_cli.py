"""Cold-start time of the `sprongus` command, the heavy modules it must not import, and a 10,000-line .env import.

Run from the repository root:  .venv/bin/python benchmarks/bench_cli.py [--runs 10] [--env-lines 10000] [--with-update]
                                   [--instructions]

Each command is a fresh process, run `--runs` times round-robin with `python -c pass` (the interpreter's own start)
so that all four see the same machine load; the table gives the best and the median wall time, the median as a ratio
to `python -c pass`'s median and as milliseconds over it (the command's own cost: the machine is shared and noisy,
and the interpreter's start swings with it). The vault is a temporary SPRONGUS_HOME prepared once, with no OS
keychain, so the master key sits in the key file: a real keychain adds its own latency to `get`. Targets, on the
median over python: `--help` <= +60 ms, `get` <= +100 ms, `get --reveal --yes` <= +110 ms. Always exits 0.

Bytecode: sprongus is compiled first (`fresh_bytecode`). With PYTHONDONTWRITEBYTECODE=1 (set on the dev machine) an
editable install whose .pyc files are missing or stale recompiles those modules in every run: with no .pyc for any
sprongus module a masked `get` took +245 ms over python instead of +150 ms (same run, 11 runs each). A wheel install
compiles at install time, so the table measures that case; site-packages and the standard library have their .pyc.

Measured on the shared 2-vCPU dev machine (Linux, Python 3.11.7, editable install): milliseconds over python -c
pass. Round 1: the median of each run, then the median of the runs (before: 5, after: 6; load average 1.8-3.4,
python -c pass 23-33 ms). Round 2, on a quieter machine (python -c pass 16-17 ms, load average 2.1-3.7, so its
"before" is round 1's "after" measured again): 40 cold starts of each, the old and the new code alternated in one
run (the old tree imported through PYTHONPATH), and this script 5 times on each (the range).

    command                               round 1: before -> after   round 2: before -> after          target
    sprongus --help                        +66 -> +46                 +30 (+30..+58) -> +28 (+28..+42)  +60  PASS
    sprongus secrets get (masked)         +211 -> +152                +96 (+97..+128) -> +80 (+82..+122) +100  PASS
    sprongus secrets get --reveal --yes   +210 -> +154                +98 (+101..+149) -> +83 (+85..+136) +110  PASS
    import of a 10,000-line .env          1.2-1.4 s (~7,000-8,000 secrets/s, create); round 2: 0.8-0.9 s
    flask, flask_smorest, google, azure, boto3, botocore, hvac: imported by none of the commands; asyncio: neither

Round 3 (2026-12-07), on a slow machine (python -c pass 29-48 ms; load 0.9-1.0): milliseconds over python
+67, +199, +200, all MISS. The same commands counted by --instructions (PYTHONHASHSEED=0, millions of instructions,
`python -m sprongus.entrypoints.cli` with PYTHONPATH at each tree; python -c pass 89), before (fcff9c2) -> after:
--help 283.0 -> 267.4, masked get 687.6 -> 657.5, get --reveal 692.1 -> 659.8. What changed: the container names
the use cases other than the secrets one by "module:Class" (entrypoints/deferred.py) and LocalSecretsApi holds
their providers, so a masked get no longer loads history, transfer, rotation, batch reveal, tokens or trusts (their
dataclasses: in Python 3.11 each costs ~5 exec() calls of generated code, the single biggest item left, ~40 ms of
a slow machine's masked get over 41 classes); --help reads the log level from env_flags.py, not config.py (whose
Settings class it never needs). Python 3.13 was tried: 709 Minstr for the masked get, no better.

Round 4 (2026-12-07, later; same method, before (c155305) -> after): --help 267.3 -> 266.3, masked get 657.6 ->
570.7, get --reveal 662.0 -> 577.0 Minstr (over python: a masked get 569 -> 482, -15%). Cold starts of the two trees
alternated, 60 of each, twice (python -c pass 42-44 ms, a slow machine): the masked get's CPU (user + sys, mean)
254 -> 223 and 257 -> 233 ms, its median wall time 261 -> 229 and 250 -> 237 ms; this script's own run the same
hour: +80, +179, +188 ms, all MISS (the machine's speed swings more than the change). What changed, by instructions:
the peewee models bind to their database on first use (~15 M: binding deep-copies every field, and a get uses three
of the ten models); the API's stores (tokens, trusts, replayed JWTs, Idempotency-Keys) are built by
Storage.api_stores() on first call, so a get loads neither their adapters nor their ports and records (~27 M); the
rarer use cases' answers moved to domain/reports.py (a page and a write's result to records.py) and the version
rules to domain/names.py, apart from history's records (~23 M); concurrent.futures loads when a pool first runs
(~6 M); the walk of the audit trail and its report load with `audit verify` (~8 M); the history commands load when
named; 17 dataclasses got a docstring, which spares dataclasses an inspect.signature() per class to write one
(~6 M). What is left is mostly imports every get needs (click, peewee, cryptography, dependency-injector; `import
click` alone is ~100 M) and 27 dataclasses, ~3-4 M each.

Round 5 (2026-12-07, a fast machine: python -c pass 22-24 ms, load 0.4-0.8; before (5c05221) -> after): --help
266.0 -> 266.0, masked get 570.0 -> 532.3, get --reveal 578.5 -> 538.7 Minstr (`python -m`; over python: a masked
get 481 -> 443, -8%). Cold starts of the two trees alternated, 80 of each: the masked get's median 117.5 -> 112.3 ms,
the reveal's 120.7 -> 116.6 ms (CPU mean 116.9 -> 112.6 and 118.8 -> 115.7). This script, the same hour: +38, +93,
+99 ms, all PASS (before the change, the same morning: +40, +102, +105: the masked get missed by 2 ms). What changed:
peewee loads with stand-ins for socket and calendar (lean_imports.py; ~15 M: it reads them only in IPField and
TimestampField, which the vault's models do not have); five more dataclasses that neither get builds moved to the
modules of the commands that do (~23 M): the API's stores to ports/tokens.py, the trail's events as readers get them
and their filter to domain/audit_rows.py, an import's seal job to domain/import_item.py, `keys status`'s key state to
domain/reports.py. Measured, and left: `import click` is ~95 M, peewee ~44 M, dependency-injector ~35 M and the AES-GCM
part of cryptography ~22 M; all the rest of a get's start-up after its imports (the container, the vault's database,
the key check, the output) is ~13 M. A frozen dataclass costs ~4 M to create (~2 M of it for being frozen), a
NamedTuple ~0.75 M; the 21 left that a get loads stay dataclasses.

Round 6 (2026-12-07, python -c pass 23-27 ms, load 0.8-0.9; before (38b00b4) -> after): --help 266.0 -> 227.7 Minstr
(over python: 177 -> 139, -22%), the gets unchanged (532.4 and 541.0 before, 532.6 and 538.9 after); `sprongus <TAB>`
(zsh) 258.2 -> 220.1. This script: +62, +122, +127 before (10:00 UTC, a slower moment); after, three runs: +30..+32,
+96..+116, +103..+137 (help PASS each time; the gets either side of their targets). What changed: the root lists its
commands for help and completion from their summaries, so --help loads none of their modules (~38 M), and `hmac`
(OpenSSL's hashlib, ~2-3 ms) loads with the first SecretValue comparison, not with the redaction filter --help
installs. Tried, and left: loading cryptography on the first encryption (the vault's key check unwraps with the
master key at every container start: a get needs it anyway); deferring uuid (click.types subscripts uuid.UUID at
import), decimal (peewee registers a sqlite3 adapter with it at import) or configparser (~1%). Of the 21 dataclasses
a masked get creates, 9 build no instance (AuditEvent, Page, SetResult, AuditCheckpoint, WrappedKey,
RateLimitDecision, Sealed, StoredDataKey, SealedAhead: ~34 M, 8% of its start-up over python); each is imported at
run time by modules a get loads, so moving them means lazy imports in about 15 modules and the ports.

Where the time went, and what changed. `-X importtime` undercounts here: peewee and dependency_injector.containers
are loaded through importlib.import_module, which it does not report; in-process timers and A/B runs give these.
Round 1:
- Interpreter shutdown: ~40 ms of every command was the final garbage collection searching the ~40,000 long-lived
  objects of the modules and the container for cycles. `main` now closes the vault's database itself (SQLite
  checkpoints its WAL then) and `gc.freeze()`s the heap. Start-up runs with the cyclic collector off until the
  container or the remote API is ready (~10-15 ms of gen0/gen1 collections among objects that all survive).
- The schema check: playhouse.migrations (with playhouse.migrate, argparse, pickle, the cockroach and postgres_ext
  modules) and its Runner ran on every start, ~9 ms; a current vault is now recognized with one SELECT.
- `--help` no longer imports the domain's records or subprocess (the CLI modules import them where used).
Round 2 (A/B runs of 25 alternated cold starts of a masked get; the audit reader by in-process timers):
- asyncio (with ssl and subprocess), ~10 ms: dependency-injector 4.49+ imports it for
  Future, ensure_future and gather, which only async providers call; lean_imports loads it with a stand-in that
  imports asyncio on their first call (tests/unit/test_lean_imports.py runs an async provider after it).
- ~6 ms: turning the collector back on after start-up left ~50,000 objects in the youngest generation, and the
  first collection searched them all; `CliState.started` freezes them first.
- ~5 ms: every command module loaded for every command; the root and the `secrets` group now load a module when
  the command line names it (cli/lazy.py; help, completion and `.commands` still see every command).
- ~1.5 ms: a local command builds the audit reader, the token services and the use cases it does not call on
  first use, not at start-up (container.py: PORTS, SERVER_PORTS); the audit trail's signer is still set first.
- Still there, for a masked `get` (~80 ms over python), in-process: click 13 ms; the CLI root (logging, the log
  redaction's hashlib/OpenSSL, errors, state) 8; the `secrets` commands' modules, the settings and
  service.local_api (which imports every use case, and the domain's dataclasses at ~0.3 ms a class) 23;
  dependency_injector + peewee + sqlite3 13; the container module 10.5 (cryptography's AES-GCM 4, ports.storage 3.4,
  the key material 1.4, the container class 1); building it 10.5 (the peewee adapters' modules 4.6, instantiating
  the container, a deep copy of its providers, 1.8, binding the ten models 1.7, the SQLite open, pragmas, schema
  SELECT and master-key check ~3); the get and its output <1; the interpreter's exit ~4.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HEAVY = ("flask", "flask_smorest", "google", "azure", "boto3", "botocore", "hvac")
# Imported on purpose only where needed; reported for information.
WATCH = ("psycopg", "psycopg2", "keyring", "peewee", "cryptography", "dependency_injector", "dotenv", "limits",
         "asyncio")
SCOPE, KEY = "project:bench", "notion.api_token"
# Milliseconds over `python -c pass`, median against median (the same run): the command's own cost.
TARGETS_OVER_PYTHON_MS = {"help": 60.0, "get": 100.0, "reveal": 110.0}


def sprongus_command() -> list[str]:
    script = Path(sys.executable).parent / "sprongus"
    if script.exists():
        return [str(script)]
    found = shutil.which("sprongus")
    return [found] if found else [sys.executable, "-m", "sprongus.entrypoints.cli"]


def bench_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update(SPRONGUS_HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return env


def run(argv: list[str], env: dict[str, str], stdin: str | None = None, cwd: Path | None = None) -> float:
    """Wall time of one process, in seconds; fails loudly if the command fails (a broken bench is no bench)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin, text=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False, cwd=cwd)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


def cold_starts(commands: dict[str, list[str]], env: dict[str, str], runs: int,
                cwd: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for argv in commands.values():  # one warm-up each: page cache, .pyc files
        run(argv, env, cwd=cwd)
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(run(argv, env, cwd=cwd))
    return times


# `python -X importtime -m sprongus.entrypoints.cli ARGS`, plus a look at sys.modules when it exits: importtime
# also lists imports that failed or were blocked (the CLI blocks psycopg when no Postgres is configured).
PROBE = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["sprongus", *sys.argv[2:]]
try:
    runpy.run_module("sprongus.entrypoints.cli", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    with open(out, "w") as handle:
        json.dump(sorted({name.split(".")[0] for name, m in sys.modules.items() if m is not None}), handle)
"""


def group_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "sprongus" and len(parts) > 1 else parts[0]


def import_profile(args: list[str], env: dict[str, str], cwd: Path) -> tuple[set[str], dict[str, float]]:
    """Top-level packages loaded by the command, and import self time (ms) per package (sprongus per subpackage)."""
    out = cwd / "modules.json"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, str(out), *args], env=env, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, cwd=cwd)
    self_ms: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| ( *)(\S+)", line)
        if match:
            self_ms[group_of(match.group(3))] += int(match.group(1)) / 1000
    return set(json.loads(out.read_text())), dict(self_ms)


def env_import(home: Path, lines: int, work: Path, with_update: bool) -> tuple[float, float | None]:
    path = work / "big.env"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("# generated by bench_cli.py\n")
        for i in range(lines):
            handle.write(f'SERVICE_{i % 10}_KEY_{i:05d}="value-{i:05d}-{"x" * 40}"\n')
    argv = [*sprongus_command(), "secrets", "import", "--file", str(path), "--scope", "project:bulk",
            "--allow-plaintext"]
    create = run(argv, bench_env(home), cwd=work)
    update = run(argv, bench_env(home), cwd=work) if with_update else None  # again: every key gets version 2
    return create, update


def instructions(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Instructions one run executes, counted by valgrind's callgrind: the same count for the same code and inputs
    however busy the machine is, so an A/B of a change needs no quiet machine (milliseconds do)."""
    env = {**env, "PYTHONHASHSEED": "0"}  # string hashing (so set and dict layouts) the same in every run
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], env=env,
                          text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, cwd=cwd)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"valgrind {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return int(match.group(1))


def instruction_table(commands: dict[str, list[str]], labels: dict[str, str], env: dict[str, str],
                      cwd: Path) -> None:
    counts = {name: instructions(argv, env, cwd) / 1e6 for name, argv in commands.items()}
    print("\ninstructions (valgrind --tool=callgrind, one run each; repeatable to ~0.1%)")
    print(f"{'command':<38} {'Minstr':>8} {'over py':>8} {'x py':>6}")
    for name, count in counts.items():
        over = "" if name == "python" else f"+{count - counts['python']:.0f}"
        print(f"{labels[name]:<38} {count:>8.1f} {over:>8} {count / counts['python']:>5.1f}x")


def fresh_bytecode() -> None:
    """Compile sprongus' modules first: with PYTHONDONTWRITEBYTECODE=1 (set on some machines) a module edited since
    its .pyc was written is compiled again in every run, and that compile time is not start-up."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("sprongus")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            compileall.compile_dir(location, quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--env-lines", type=int, default=10_000)
    parser.add_argument("--with-update", action="store_true", help="Also time importing the same .env again.")
    parser.add_argument("--instructions", action="store_true",
                        help="Also count each command's instructions under valgrind (~30 s; needs valgrind).")
    args = parser.parse_args()

    fresh_bytecode()
    with tempfile.TemporaryDirectory(prefix="sprongus-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        env = bench_env(home)
        cli = sprongus_command()
        run([*cli, "secrets", "set", SCOPE, KEY, "--meta", "provider=notion"], env, stdin="secret_bench\n", cwd=work)

        commands = {
            "python": [sys.executable, "-c", "pass"],
            "help": [*cli, "--help"],
            "get": [*cli, "secrets", "get", SCOPE, KEY],
            "reveal": [*cli, "secrets", "get", SCOPE, KEY, "--reveal", "--yes"],
        }
        labels = {"python": "python -c pass", "help": "sprongus --help", "get": "sprongus secrets get (masked)",
                  "reveal": "sprongus secrets get --reveal --yes"}
        times = cold_starts(commands, env, args.runs, work)
        py_median = statistics.median(times["python"]) * 1000

        print(f"sprongus CLI cold start: {args.runs} runs each, Python {platform.python_version()}, "
              f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
        print(f"command: {' '.join(cli)}\n")
        header = (f"{'command':<38} {'best ms':>8} {'median ms':>10} {'med/py':>7} {'over py':>8} {'target':>8}"
                  "  ok")
        print(header)
        print("-" * len(header))
        misses = []
        for name, samples in times.items():
            best, median = min(samples) * 1000, statistics.median(samples) * 1000
            over = median - py_median
            target = TARGETS_OVER_PYTHON_MS.get(name)
            ok = "" if target is None else ("PASS" if over <= target else "MISS")
            if ok == "MISS":
                misses.append(name)
            print(f"{labels[name]:<38} {best:>8.0f} {median:>10.0f} {median / py_median:>6.1f}x "
                  f"{'' if name == 'python' else f'+{over:.0f}':>8} {'' if target is None else f'<= +{target:.0f}':>8}"
                  f"  {ok}")
        print("\n(over py: the median minus python -c pass's median, in the same run; the target is on it)")
        if hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
            print("(the machine is busy: compare the ratios to python -c pass rather than milliseconds)")
        if args.instructions:
            instruction_table(commands, labels, env, work)
        print()

        print("modules imported (python -X importtime -m sprongus.entrypoints.cli ...)")
        profiles = {}
        for name, argv in (("help", ["--help"]), ("get", ["secrets", "get", SCOPE, KEY]),
                           ("reveal", ["secrets", "get", SCOPE, KEY, "--reveal", "--yes"])):
            roots, self_ms = import_profile(argv, env, work)
            profiles[name] = self_ms
            heavy = sorted(roots & set(HEAVY))
            watched = [m for m in WATCH if m in roots]
            print(f"  {labels[name]:<38} heavy: {', '.join(heavy) if heavy else 'none (ok)'}")
            print(f"  {'':<38} also: {', '.join(watched) if watched else '-'}")
        for name in ("help", "get"):
            top = sorted(profiles[name].items(), key=lambda kv: -kv[1])[:10]
            total = sum(profiles[name].values())
            print(f"  biggest import self-time under importtime (inflated), {labels[name]}:\n    "
                  + ", ".join(f"{root} {ms:.0f}" for root, ms in top) + f" ms; total {total:.0f} ms")
        if misses:
            print(f"  target missed by: {', '.join(labels[m] for m in misses)}; see the contributors above")

        create, update = env_import(home, args.env_lines, work, args.with_update)
        print(f"\nimport of a {args.env_lines:,}-line .env (one process each, end to end)")
        print(f"  create: {create:6.2f} s  {args.env_lines / create:8,.0f} secrets/s")
        if update is not None:
            print(f"  update: {update:6.2f} s  {args.env_lines / update:8,.0f} secrets/s  (same file, version 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
