"""The client's retries against a scripted server on loopback: 429 and 503 are waited out (the server's
Retry-After, else a back-off), a lost answer is retried only where a repeat is harmless, and a keyed PUT is
retried with the same Idempotency-Key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprongus.client import Client, Conflict, RateLimited, RemoteUnavailable, Unavailable
from sprongus.client.retry import BACKOFF, JITTER
from tests.harness import CANARY
from tests.unit.client_fake import DROP, FakeApi, Reply, problem, record

REVEAL = "/v1/secrets/project/shop/notion.api_token:reveal"
PUT = "/v1/secrets/project/shop/notion.api_token"
TOKEN = "spr_" + "t" * 43
REVEALED = Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY, "masked": False})


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


def test_a_429_is_retried_after_its_retry_after_and_succeeds(fake: FakeApi) -> None:
    fake.then("POST", REVEAL, problem(429, "rate-limited", "rate limit 'reveal' exceeded; retry after 1 s",
                                      {"Retry-After": "1", "RateLimit-Policy": '"reveal";q=5;w=60'}))
    fake.always("POST", REVEAL, REVEALED)
    client = Client(fake.url, TOKEN)

    started = time.monotonic()
    value = client.reveal("project:shop", "notion.api_token")
    waited = time.monotonic() - started

    assert value == CANARY
    assert len(fake.calls("POST", REVEAL)) == 2
    assert 1.0 <= waited < 1.0 * (1 + JITTER) + 0.5  # never before Retry-After; jitter adds at most a quarter


def test_a_503_without_retry_after_is_retried_after_a_back_off(fake: FakeApi) -> None:
    fake.then("GET", PUT, problem(503, "storage-unavailable"), problem(503, "storage-unavailable"))
    fake.always("GET", PUT, Reply(200, record("project:shop", "notion.api_token", 4)))
    client = Client(fake.url, TOKEN)

    started = time.monotonic()
    info = client.get("project:shop", "notion.api_token")
    waited = time.monotonic() - started

    assert info.version == 4 and len(fake.calls("GET", PUT)) == 3
    assert BACKOFF * 3 <= waited < BACKOFF * 3 * (1 + JITTER) + 0.5  # 0.5 s, then 1 s


def test_retries_end_after_retries_attempts_with_the_servers_error(fake: FakeApi) -> None:
    fake.always("POST", REVEAL, problem(503, "storage-unavailable", headers={"Retry-After": "0"}))
    client = Client(fake.url, TOKEN, retries=2)

    with pytest.raises(Unavailable) as caught:
        client.reveal("project:shop", "notion.api_token")

    assert len(fake.calls("POST", REVEAL)) == 3  # the first try and two retries
    assert type(caught.value).__name__ == "StorageUnavailable"
    assert caught.value.__suppress_context__  # a traceback shows the API's error, not the client's plumbing


def test_retries_zero_tries_once(fake: FakeApi) -> None:
    fake.always("POST", REVEAL, problem(429, "rate-limited", headers={"Retry-After": "0"}))

    with pytest.raises(RateLimited):
        Client(fake.url, TOKEN, retries=0).reveal("project:shop", "notion.api_token")

    assert len(fake.calls()) == 1


def test_a_retry_after_longer_than_the_cap_is_not_waited_for(fake: FakeApi) -> None:
    fake.always("POST", REVEAL, problem(429, "rate-limited", headers={
        "Retry-After": "3600", "RateLimit-Policy": '"reveal";q=10;w=3600'}))
    client = Client(fake.url, TOKEN, max_retry_wait=30)

    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        client.reveal("project:shop", "notion.api_token")

    assert time.monotonic() - started < 1.0
    assert len(fake.calls()) == 1
    assert (caught.value.retry_after, caught.value.policy, caught.value.limit) == (3600, "reveal", 10)


def test_a_reveal_that_got_no_answer_is_retried(fake: FakeApi) -> None:
    fake.then("POST", REVEAL, DROP)
    fake.always("POST", REVEAL, REVEALED)

    assert Client(fake.url, TOKEN).reveal("project:shop", "notion.api_token") == CANARY
    assert len(fake.calls("POST", REVEAL)) == 2


def test_a_set_that_got_no_answer_is_retried_with_the_same_idempotency_key(fake: FakeApi) -> None:
    fake.then("PUT", PUT, DROP)
    fake.always("PUT", PUT, Reply(201, record("project:shop", "notion.api_token")))
    client = Client(fake.url, TOKEN)

    info = client.set("project:shop", "notion.api_token", CANARY, meta={"provider": "notion"})
    client.set("project:shop", "notion.api_token", CANARY)

    first, retried, second = fake.calls("PUT", PUT)
    assert info.created and info.version == 1
    assert first.headers["idempotency-key"] == retried.headers["idempotency-key"]
    assert len(first.headers["idempotency-key"]) >= 32
    assert second.headers["idempotency-key"] != first.headers["idempotency-key"]  # a new key per call
    assert first.json() == {"value": CANARY, "meta": {"provider": "notion"}} and second.json() == {"value": CANARY}


def test_a_keyed_set_waits_out_its_own_first_attempt_still_in_flight(fake: FakeApi) -> None:
    fake.then("PUT", PUT, DROP, problem(409, "conflict", "a request with this Idempotency-Key is still in progress"))
    fake.always("PUT", PUT, Reply(200, record("project:shop", "notion.api_token", 2)))

    info = Client(fake.url, TOKEN).set("project:shop", "notion.api_token", "v")

    assert (info.created, info.version) == (False, 2)
    assert len({s.headers["idempotency-key"] for s in fake.calls("PUT", PUT)}) == 1


def test_a_conflict_on_a_first_attempt_is_not_retried(fake: FakeApi) -> None:
    fake.always("PUT", PUT, problem(409, "conflict"))

    with pytest.raises(Conflict):
        Client(fake.url, TOKEN).set("project:shop", "notion.api_token", "v")

    assert len(fake.calls()) == 1


def test_a_token_exchange_that_got_no_answer_is_not_retried(fake: FakeApi, tmp_path: Path) -> None:
    """The API may have exchanged the JWT before the answer was lost: a retry would be refused (and wasted)."""
    jwt_file = tmp_path / "token"
    jwt_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2ln")
    fake.always("POST", "/v1/auth/token", DROP)

    with pytest.raises(RemoteUnavailable, match="cannot reach the API"):
        Client(fake.url, token_file=jwt_file).reveal("project:shop", "notion.api_token")

    assert len(fake.calls()) == 1


def test_a_token_exchange_answered_429_is_retried(fake: FakeApi, tmp_path: Path) -> None:
    """The API answers 429 before it reads the JWT: it is not used up."""
    jwt_file = tmp_path / "token"
    jwt_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2ln")
    fake.then("POST", "/v1/auth/token", problem(429, "rate-limited", headers={"Retry-After": "0"}))
    fake.always("POST", "/v1/auth/token", Reply(200, {"access_token": TOKEN, "expires_in": 900}))
    fake.always("POST", REVEAL, REVEALED)

    assert Client(fake.url, token_file=jwt_file).reveal("project:shop", "notion.api_token") == CANARY
    assert len(fake.calls("POST", "/v1/auth/token")) == 2
    assert fake.calls("POST", REVEAL)[0].bearer == TOKEN


def test_retries_are_logged_without_values_or_tokens(fake: FakeApi, caplog: pytest.LogCaptureFixture) -> None:
    fake.then("POST", REVEAL, problem(503, "unavailable", headers={"Retry-After": "0"}), DROP)
    fake.always("POST", REVEAL, REVEALED)
    client = Client(fake.url, TOKEN)

    with caplog.at_level("DEBUG"):
        assert client.reveal("project:shop", "notion.api_token") == CANARY

    lines = [r.getMessage() for r in caplog.records if r.name == "sprongus.client"]
    assert len(lines) == 2 and "retry 1 of 3" in lines[0] and "no answer" in lines[1]
    assert CANARY not in caplog.text and TOKEN not in caplog.text
    assert CANARY not in repr(client) and TOKEN not in repr(client)
