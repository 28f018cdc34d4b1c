"""Reveal, recent authentication (RFC 9470 step-up) and single-use reveal tokens (docs/design.md#api)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from dependency_injector import providers
from werkzeug.test import TestResponse

from sprongus.adapters.memory import ManualClock
from sprongus.domain.api_token import ApiToken
from sprongus.domain.errors import StepUpRequired
from sprongus.domain.times import utc_iso
from sprongus.entrypoints.config import Settings
from tests.e2e.api.conftest import (
    KEY,
    READ,
    ROOMY_LIMITS,
    WRITE,
    ApiClient,
    container_with_clock,
    problem,
    www_authenticate,
)
from tests.harness import CANARY


def test_reveal_answers_the_plaintext_once_and_never_to_be_cached(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "db.password", CANARY, {"provider": "postgres"})
    revealed = any_api.reveal(KEY)
    assert revealed.status_code == 200 and revealed.headers["Cache-Control"] == "no-store"
    record = revealed.get_json()
    assert record["value"] == CANARY and record["masked"] is False
    assert record["keyName"] == "db.password" and record["version"] == 1
    assert any_api.call("GET", KEY).get_json()["value"] == "********"  # the next read is masked again
    problem(any_api.reveal("/v1/secrets/project/p1/missing"), 404)


def test_reveal_needs_the_reveal_scope(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    no_reveal = api.token("alice", (READ, WRITE))
    for body in ({}, {"oneTime": True}):
        response = api.call("POST", KEY + ":reveal", no_reveal, json=body)
        problem(response, 403)
        assert 'error="insufficient_scope"' in www_authenticate(response)
        assert CANARY not in response.get_data(as_text=True)


@pytest.mark.parametrize("max_age", [None, "60"])
def test_reveal_needs_a_recent_authentication(make_api: Callable[..., ApiClient], max_age: str | None) -> None:
    api = make_api(**({"SPRONGUS_REVEAL_MAX_AGE": max_age} if max_age else {}))
    limit = int(max_age or 900)
    api.seed("project:p1", "db.password", CANARY)
    api.clock.advance(limit - 1)
    assert api.reveal(KEY).status_code == 200
    api.clock.advance(2)  # the token is still valid (1 h), but its authentication is too old to reveal
    for body in ({}, {"oneTime": True, "ttlSeconds": 60}):
        stale = api.call("POST", KEY + ":reveal", json=body)
        detail = problem(stale, 401)
        challenge = www_authenticate(stale)
        assert challenge.startswith("Bearer "), challenge
        assert 'error="insufficient_user_authentication"' in challenge
        assert re.search(rf"max_age={limit}\b", challenge), challenge
        assert CANARY not in stale.get_data(as_text=True) and detail["status"] == 401
    assert api.call("GET", KEY).status_code == 200  # masked reads do not need a recent authentication
    assert api.reveal(KEY, api.token("alice")).get_json()["value"] == CANARY  # authenticating again helps


def test_a_step_up_verifier_can_replace_the_auth_time_check() -> None:
    class SecondFactorVerifier:
        def check(self, token: ApiToken) -> None:
            raise StepUpRequired(0)

    clock = ManualClock()
    container = container_with_clock(Settings.from_mapping({"SPRONGUS_ENV": "test", **ROOMY_LIMITS}), clock)
    container.recent_auth.override(providers.Object(SecondFactorVerifier()))
    api = ApiClient(container, clock, None)
    api.seed("project:p1", "db.password", CANARY)
    refused = api.reveal(KEY)
    problem(refused, 401)
    assert 'error="insufficient_user_authentication"' in www_authenticate(refused)


def _same_apart_from_request_id(responses: list[TestResponse]) -> None:
    def shape(response: TestResponse) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
        return response.status_code, headers, response.get_data()

    first = shape(responses[0])
    for response in responses[1:]:
        assert shape(response) == first


def test_a_single_use_token_reveals_once_then_every_dead_token_is_410_alike(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    minted = any_api.call("POST", KEY + ":reveal", json={"oneTime": True, "ttlSeconds": 120})
    assert minted.status_code == 201 and minted.headers["Cache-Control"] == "no-store"
    body = minted.get_json()
    assert set(body) == {"token", "expiresAt"} and CANARY not in minted.get_data(as_text=True)
    expected_expiry = utc_iso(any_api.clock.now() + timedelta(seconds=120))
    assert body["expiresAt"] == expected_expiry
    redeemed = any_api.client.post("/v1/secrets:redeem", json={"token": body["token"]})  # no Authorization
    assert redeemed.status_code == 200 and redeemed.headers["Cache-Control"] == "no-store"
    assert redeemed.get_json()["value"] == CANARY and redeemed.get_json()["masked"] is False
    used = any_api.redeem(body["token"])
    expiring = any_api.mint(ttl=5)
    any_api.clock.advance(6)
    expired = any_api.redeem(expiring)
    unknown = any_api.redeem("sprr_" + "A" * 43)
    garbage = any_api.redeem(CANARY)
    bearer = any_api.redeem(any_api.alice)  # an API token is not a reveal token
    dead = [used, expired, unknown, garbage, bearer]
    for response in dead:
        problem(response, 410)
        assert CANARY not in response.get_data(as_text=True)
    _same_apart_from_request_id(dead)
    problem(any_api.call("GET", KEY, body["token"]), 401)  # nor is a reveal token a bearer token


@pytest.mark.parametrize("ttl", [0, 3601, "60", 1.5, True])
def test_reveal_token_ttl_is_validated(api: ApiClient, ttl: object) -> None:
    api.seed("project:p1", "db.password", CANARY)
    body = problem(api.call("POST", KEY + ":reveal", json={"oneTime": True, "ttlSeconds": ttl}), 422)
    assert "ttlSeconds" in body["errors"]


def _race_redeems(api: ApiClient, reveal_token: str) -> list[TestResponse]:
    """Two clients redeem the same token at the same moment."""
    barrier = threading.Barrier(2)
    results: list[TestResponse] = []

    def redeem() -> None:
        client = api.app.test_client()
        barrier.wait()
        results.append(client.post("/v1/secrets:redeem", json={"token": reveal_token}))

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_concurrent_redeems_give_exactly_one_plaintext(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    for _ in range(6):
        results = _race_redeems(any_api, any_api.mint())
        assert sorted(r.status_code for r in results) == [200, 410], [r.get_data() for r in results]
        assert [r.get_json()["value"] for r in results if r.status_code == 200] == [CANARY]


def test_redeem_is_rate_limited_per_client_address(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_REDEEM="2/minute")
    api.seed("project:p1", "db.password", CANARY)
    good = api.mint()
    problem(api.redeem("sprr_guess1", "198.51.100.7"), 410)
    problem(api.redeem("sprr_guess2", "198.51.100.7"), 410)
    limited = api.redeem(good, "198.51.100.7")  # even a good token: the address is out of attempts
    problem(limited, 429)
    assert CANARY not in limited.get_data(as_text=True)
    assert limited.headers["RateLimit-Policy"] == '"redeem";q=2;w=60'
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    other = api.redeem(good, "198.51.100.8")  # another address has its own budget; the token was not spent
    assert other.status_code == 200 and other.get_json()["value"] == CANARY
