"""Outage drills on a real gunicorn (2 workers): Postgres and Redis behind TCP proxies that the tests kill, freeze
and restart, while gunicorn keeps running.

What must hold: the request that meets an outage answers 503 within seconds (never a hang), /v1/health/ready
answers 503 naming the dependency while /v1/health/live stays 200, and once the dependency is back every request
succeeds again without a restart. Terminated backends (`pg_terminate_backend`) cost no request at all.

The stack uses short timeouts (statement 1 s, so the client gives up after 3 s; connect 2 s) and no readiness
cache, so the drills stay fast.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from tests.e2e.conftest import Machine
from tests.e2e.gunicorn.conftest import b64key, redis_database, start_gunicorn, stop
from tests.e2e.gunicorn.tcp_proxy import TcpProxy
from tests.pg import HOST, PORT, PgDatabase, fresh_database

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn")

PROBLEM_JSON = "application/problem+json"
BOUND = 10.0  # seconds: the slowest outage answer allowed (the stack's own bound is about 3 s)
KEY = "/v1/secrets/user/{subject}/drill.key"


@dataclass
class Drill:
    url: str
    log: Path
    pg: PgDatabase
    pg_proxy: TcpProxy
    redis_proxy: TcpProxy
    token: str
    subject: str
    keys: dict[str, str] = field(default_factory=dict)

    def restart(self, name: str) -> None:
        """A new proxy on the killed one's port: the outage is over, gunicorn was never touched."""
        old: TcpProxy = getattr(self, name)
        old.kill()
        setattr(self, name, TcpProxy(old.target, old.port))

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: object) -> tuple[requests.Response, float]:
        """One request on a new connection (either worker may take it): the answer and how long it took."""
        headers = {"Connection": "close", **({"Authorization": f"Bearer {self.token}"} if auth else {})}
        started = time.monotonic()
        response = requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]
        return response, time.monotonic() - started

    @property
    def key(self) -> str:
        return KEY.format(subject=self.subject)

    def read(self) -> tuple[requests.Response, float]:
        return self.call("GET", self.key)

    def write(self, value: str = "v") -> tuple[requests.Response, float]:
        return self.call("PUT", self.key, json={"value": value})


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    root = tmp_path_factory.mktemp("drills")
    with ExitStack() as stack:
        pg = stack.enter_context(fresh_database(migrated=True))
        redis_url = urlsplit(stack.enter_context(redis_database()))
        pg_proxy = TcpProxy((HOST, PORT))
        redis_proxy = TcpProxy((redis_url.hostname or "127.0.0.1", redis_url.port or 6379))
        machine = Machine(root)
        settings = {"SPRONGUS_ENV": "dev", "SPRONGUS_MASTER_KEYS": f"k1:{b64key()}",
                    "SPRONGUS_HMAC_KEYS": f"h1:{b64key()}"}
        subject = f"drill-{uuid.uuid4().hex[:8]}"
        made = machine.run("tokens", "create", "--subject", subject, "--scope", "secrets:read", "--scope",
                           "secrets:write", "--ttl", "1h",
                           env={**settings, "SPRONGUS_DATABASE_URL": pg.maintenance_url})
        assert made.returncode == 0, made.stderr
        server = {**settings, "SPRONGUS_DATABASE_URL": f"postgresql://{pg.app_role}@127.0.0.1:{pg_proxy.port}/{pg.name}",
                  "SPRONGUS_RATE_LIMIT_STORAGE": f"redis://127.0.0.1:{redis_proxy.port}{redis_url.path}",
                  "SPRONGUS_DB_STATEMENT_TIMEOUT": "1", "SPRONGUS_DB_CONNECT_TIMEOUT": "2",
                  "SPRONGUS_READY_MAX_AGE": "0",
                  "SPRONGUS_RATE_LIMIT_WRITE": "100000/minute"}  # the load drill writes fast; limits are not tested
        log = root / "gunicorn.log"
        proc, url = start_gunicorn(machine, server, log)
        stack.callback(stop, proc)
        both_workers_serve(url, log, proc)
        keys = {k: v for k, v in settings.items() if k.endswith("_KEYS")}
        result = Drill(url, log, pg, pg_proxy, redis_proxy, made.stdout.strip(), subject, keys)
        stack.callback(lambda: (result.pg_proxy.kill(), result.redis_proxy.kill()))
        yield result
        stack.close()
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert result.token not in text


def both_workers_serve(url: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
    """start_gunicorn waits for one worker only. A worker still loading the app when a drill cuts the database
    off cannot start (the schema check needs the database), and gunicorn then stops altogether: wait for both."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        requests.get(f"{url}/v1/openapi.json", headers={"Connection": "close"}, timeout=10)
        pids = {line.split("[", 1)[1].split("]", 1)[0] for line in log.read_text(errors="replace").splitlines()
                if " sprongus.api.access: " in line and '"/v1/openapi.json"' in line}
        if len(pids) == 2:
            return
        time.sleep(0.05)
    pytest.fail("the second gunicorn worker did not serve within 30 s")


def unavailable(response: requests.Response, seconds: float, kind: str = "storage-unavailable") -> dict[str, object]:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert seconds < BOUND, seconds
    body: dict[str, object] = response.json()
    assert str(body["type"]).endswith(f":{kind}"), body
    return body


def assert_ready(drill: Drill) -> None:
    response, _ = drill.call("GET", "/v1/health/ready", auth=False)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok",
                               "checks": {"database": "ok", "rateLimitStore": "ok", "keyProvider": "ok"}}


def assert_not_ready(drill: Drill, dependency: str) -> None:
    response, seconds = drill.call("GET", "/v1/health/ready", auth=False)
    body = unavailable(response, seconds, "not-ready")
    assert body["detail"] == f"{dependency} unavailable", body
    live, seconds = drill.call("GET", "/v1/health/live", auth=False)
    assert (live.status_code, live.json(), seconds < 1) == (200, {"status": "ok"}, True)


def all_succeed(request: Callable[[], tuple[requests.Response, float]], times: int = 6) -> None:
    """Several requests on new connections, so both workers (and their pools) answer some."""
    statuses = [request()[0].status_code for _ in range(times)]
    assert all(status in (200, 201) for status in statuses), statuses


def test_a_lost_database_answers_503_at_once_and_the_next_request_after_it_is_back_succeeds(drill: Drill) -> None:
    assert drill.write()[0].status_code in (200, 201)
    all_succeed(drill.read)
    assert_ready(drill)

    drill.pg_proxy.kill()
    for _ in range(4):
        unavailable(*drill.read())
    assert_not_ready(drill, "database")

    drill.restart("pg_proxy")
    all_succeed(drill.read)  # the very first request after the outage already succeeds: no restart, no retry
    assert_ready(drill)


def test_terminated_backends_cost_no_request(drill: Drill) -> None:
    all_succeed(drill.read)  # both workers hold pooled connections
    with psycopg.connect(drill.pg.admin_url, autocommit=True) as admin:
        ended = admin.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                              "WHERE usename = %s", (drill.pg.app_role,)).fetchone()
    assert ended is not None and ended[0] >= 1
    drill.pg_proxy.wait_for_connections(0)  # the proxy saw every terminated backend hang up

    all_succeed(drill.read)
    all_succeed(drill.write)


def test_a_frozen_database_answers_503_within_the_timeouts_not_a_hang(drill: Drill) -> None:
    all_succeed(drill.read)
    drill.pg_proxy.freeze()

    unavailable(*drill.read())  # a pooled connection: no answer within 1 s + 2 s; or a new one: connect timeout
    unavailable(*drill.read())
    assert_not_ready(drill, "database")

    drill.restart("pg_proxy")  # the frozen connections end with it
    all_succeed(drill.read)
    assert_ready(drill)


def test_a_lost_rate_limit_store_fails_closed_and_recovers_without_a_restart(drill: Drill) -> None:
    all_succeed(drill.write)

    drill.redis_proxy.kill()
    unavailable(*drill.write())  # a write is rate limited: without its counter it is refused, never let through
    all_succeed(drill.read)  # masked reads are not rate limited
    assert_not_ready(drill, "rate-limit store")

    drill.restart("redis_proxy")
    all_succeed(drill.write)
    assert_ready(drill)


def test_a_server_started_during_a_database_outage_serves_503s_and_recovers_with_the_database(
        drill: Drill, tmp_path: Path) -> None:
    """Workers used to fail to load the app while the database was down, and gunicorn then stopped altogether."""
    proxy = TcpProxy((HOST, PORT))
    port = proxy.port
    proxy.kill()
    settings = {"SPRONGUS_ENV": "dev", "SPRONGUS_DATABASE_URL":
                f"postgresql://{drill.pg.app_role}@127.0.0.1:{port}/{drill.pg.name}",
                "SPRONGUS_RATE_LIMIT_STORAGE": "memory://", "SPRONGUS_DB_CONNECT_TIMEOUT": "2",
                "SPRONGUS_READY_MAX_AGE": "0", **drill.keys}
    log = tmp_path / "gunicorn.log"
    proc, url = start_gunicorn(Machine(tmp_path), settings, log)
    other = Drill(url, log, drill.pg, proxy, drill.redis_proxy, drill.token, drill.subject)
    try:
        unavailable(*other.read())
        assert_not_ready(other, "database")
        proxy = TcpProxy((HOST, PORT), port)
        all_succeed(other.read)
        all_succeed(other.write)
        assert proc.poll() is None
    finally:
        stop(proc)
        proxy.kill()


def test_a_database_outage_under_load_loses_no_acknowledged_write(drill: Drill) -> None:
    """Writers keep writing (each to keys of its own) while the database goes away and comes back: every write that
    was answered 2xx is there afterwards with that version, and every other answer was a quick 503."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    stop_writing = Event()

    def writer(index: int) -> list[tuple[str, int, int]]:
        answers = []
        n = 0
        while not stop_writing.is_set():
            path = f"/v1/secrets/user/{drill.subject}/load.w{index}.k{n % 5}"
            response, seconds = drill.call("PUT", path, json={"value": f"v{n}"})
            assert seconds < BOUND, seconds
            version = response.json().get("version", 0) if response.status_code in (200, 201) else 0
            answers.append((path, response.status_code, version))
            n += 1
        return answers

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(writer, i) for i in range(4)]
        time.sleep(1.0)
        drill.pg_proxy.kill()
        time.sleep(1.5)
        drill.restart("pg_proxy")
        time.sleep(1.5)
        stop_writing.set()
        answers = [answer for future in futures for answer in future.result()]

    statuses = {status for _, status, _ in answers}
    assert statuses <= {200, 201, 503}, statuses
    assert 503 in statuses and {200, 201} & statuses  # the outage was met, and writes went on after it
    acknowledged: dict[str, int] = {}
    for path, status, version in answers:
        if status in (200, 201):
            acknowledged[path] = max(acknowledged.get(path, 0), version)
    for path, version in acknowledged.items():
        stored, _ = drill.call("GET", path)
        assert stored.status_code == 200 and stored.json()["version"] >= version, (path, stored.text)
