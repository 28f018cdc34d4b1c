"""State the workers must share: rate-limit windows (Redis) and idempotency keys (Postgres).

Each request below goes out on its own TCP connection, in concurrent bursts, so both gunicorn workers take some;
the worker that served each request is read back from its access line (pid and request id). A burst that happens
to land on one worker only is retried with a fresh subject: every burst is still checked in full.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.e2e.gunicorn.conftest import REVEAL_LIMIT, Api, Stack
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn and a bao binary")

ATTEMPTS = 3


def burst(count: int, send: Callable[[dict[str, str]], requests.Response]) -> list[tuple[str, requests.Response]]:
    """`count` requests released at once, each with its own request id: [(request id, response)]."""
    gate = threading.Barrier(count, timeout=30)

    def one(_: int) -> tuple[str, requests.Response]:
        request_id = f"e2e-{uuid.uuid4().hex}"
        gate.wait()
        return request_id, send({"X-Request-ID": request_id})

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def workers_of(stack: Stack, request_ids: list[str]) -> set[int]:
    """The pids of the workers that served these requests (their access lines may trail the responses a little)."""
    deadline = time.monotonic() + 5
    while True:
        served = {line["requestId"]: pid for pid, line in stack.access_lines()}
        if all(rid in served for rid in request_ids) or time.monotonic() > deadline:
            assert all(rid in served for rid in request_ids), "an access line is missing"
            return {served[rid] for rid in request_ids}
        time.sleep(0.05)


def owner(stack: Stack) -> tuple[Api, str]:
    """A fresh subject (its own rate-limit windows) with a fresh project; (client, the project's key path)."""
    project = stack.unique("proj")
    api = stack.api(stack.token(stack.unique("limits"), projects=(project,)))
    return api, f"/v1/secrets/project/{project}/k"


def reveal_burst(stack: Stack) -> set[int]:
    """12 reveals at once by a fresh subject: exactly the policy's count succeed. Returns the workers used."""
    api, path = owner(stack)
    assert api.put(path, json={"value": CANARY}).status_code == 201

    results = burst(12, lambda headers: api.post(path + ":reveal", json={}, fresh=True, headers=headers))

    allowed = [r for _, r in results if r.status_code == 200]
    limited = [r for _, r in results if r.status_code == 429]
    assert (len(allowed), len(limited)) == (REVEAL_LIMIT, 12 - REVEAL_LIMIT)
    assert all(r.json()["value"] == CANARY for r in allowed)
    for response in limited:
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "urn:sprongus:problem:rate-limited"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert response.headers["RateLimit-Policy"] == f'"reveal";q={REVEAL_LIMIT};w=60'
        assert re.fullmatch(r'"reveal";r=0;t=\d+', response.headers["RateLimit"])
        assert response.headers["Cache-Control"] == "no-store"
    return workers_of(stack, [rid for rid, _ in results])


def test_the_reveal_limit_holds_across_both_workers(stack: Stack) -> None:
    if not any(len(reveal_burst(stack)) == 2 for _ in range(ATTEMPTS)):
        pytest.fail(f"{ATTEMPTS} bursts of reveals never reached both workers")
    windows = redis.Redis.from_url(stack.redis_url).keys("*reveal*")
    assert windows, "the reveal windows are not in the configured Redis database"


def replay_burst(stack: Stack) -> tuple[set[int], Api, str, dict[str, str]]:
    """A PUT with an Idempotency-Key, then 8 replays at once: all replay the first answer."""
    api, path = owner(stack)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.put(path, json={"value": CANARY}, fresh=True, headers=key)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers

    replays = burst(8, lambda headers: api.put(path, json={"value": CANARY}, fresh=True, headers={**headers, **key}))

    for _, replay in replays:
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.text == first.text  # the masked first response, as stored
        assert replay.headers["ETag"] == first.headers["ETag"] == '"1"'
    return workers_of(stack, [rid for rid, _ in replays]), api, path, key


def test_a_replayed_put_bumps_the_version_once_whichever_worker_answers(stack: Stack) -> None:
    for _ in range(ATTEMPTS):
        workers, api, path, key = replay_burst(stack)
        if len(workers) == 2:
            break
    else:
        pytest.fail(f"{ATTEMPTS} bursts of replays never reached both workers")
    assert api.get(path).json()["version"] == 1

    other_body = api.put(path, json={"value": "another value"}, fresh=True, headers=key)
    assert other_body.status_code == 422
    assert other_body.json()["type"] == "urn:sprongus:problem:validation"
    assert "Idempotency-Key" in other_body.text
    assert "another value" not in other_body.text
    assert api.get(path).json()["version"] == 1
    assert api.put(path, json={"value": CANARY}, headers={"Idempotency-Key": str(uuid.uuid4())}).json()[
        "version"] == 2


def test_concurrent_first_uses_of_a_key_write_once(stack: Stack) -> None:
    api, path = owner(stack)
    key = {"Idempotency-Key": str(uuid.uuid4())}

    results = burst(6, lambda headers: api.put(path, json={"value": CANARY}, fresh=True, headers={**headers, **key}))

    statuses = sorted((r.status_code, r.headers.get("Idempotent-Replayed", "")) for _, r in results)
    originals = [s for s in statuses if s == (201, "")]
    assert len(originals) == 1, statuses
    assert set(statuses) <= {(201, ""), (201, "true"), (409, "")}, statuses  # replays once it is done
    assert api.get(path).json()["version"] == 1
