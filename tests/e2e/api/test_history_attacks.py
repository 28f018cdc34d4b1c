"""An attacker's and a demanding user's pass over the history routes and GET /v1/audit (docs/history.md,
docs/operations.md#5): tenancy, scopes, key prefixes, existence oracles, step-up, deleted secrets through every
other door, parameter pollution and out-of-range audit times. Each answer is searched for the canary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import TestResponse

from sprongus.domain.principal import Principal, TokenKind
from sprongus.domain.scope import Scope
from sprongus.service.audit_query import encode_cursor
from tests.e2e.api.conftest import ADMIN, KEY, READ, REVEAL, WRITE, ApiClient, problem
from tests.e2e.api.pg_api import PgApiClient, pg_api_client
from tests.harness import CANARY

SHOP = "/v1/secrets/project/shop/"
OTHER = "/v1/secrets/project/other/"
PER_REQUEST = {"X-Request-ID", "Date"}
ALL = (READ, WRITE, REVEAL, ADMIN)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, make_api: Callable[..., ApiClient]) -> Iterator[ApiClient]:
    """project:shop holds notion.a (2 versions), stripe.key (2 versions) and stripe.gone (deleted, 2 versions);
    project:other holds notion.a. The current versions are the canary."""
    if request.param == "postgres":
        with pg_api_client(request.getfixturevalue("pg_db")) as api:
            _seed(api)
            yield api
        return
    api = make_api(sqlite=request.param == "sqlite")
    _seed(api)
    yield api


def _container(api: ApiClient) -> Any:
    return api.maintenance if isinstance(api, PgApiClient) else api.container


def _seed(api: ApiClient) -> None:
    for key in ("notion.a", "stripe.key", "stripe.gone"):
        api.seed("project:shop", key, "old value")
        api.seed("project:shop", key, CANARY)
    api.seed("project:other", "notion.a", CANARY)
    _container(api).secret_ops().unset(Principal.local_owner("ops"), Scope.parse("project:shop"), "stripe.gone")


def _token(api: ApiClient, scopes: tuple[str, ...] = ALL, key_prefix: str = "",
           kind: TokenKind = TokenKind.OPERATOR) -> str:
    secret, _ = _container(api).token_service().create("svc", list(scopes), ["shop"], 3600, kind, key_prefix)
    return str(secret.reveal())


def _answer(response: TestResponse) -> tuple[int, bytes, list[tuple[str, str]]]:
    assert CANARY not in response.get_data(as_text=True)
    headers = sorted((k, v) for k, v in response.headers.items() if k not in PER_REQUEST)
    return response.status_code, response.get_data(), headers


HISTORY_PROBES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/versions", None), ("GET", "?version=1", None), ("POST", ":reveal", {"version": 1}),
    ("POST", ":rollback", {"version": 1}), ("POST", ":restore", None), ("DELETE", "?purge=true", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), HISTORY_PROBES, ids=[p[0] + p[1] for p in HISTORY_PROBES])
def test_a_key_outside_the_prefix_answers_byte_for_byte_like_an_absent_one(
        shop: ApiClient, method: str, suffix: str, body: dict[str, Any] | None) -> None:
    """Live, deleted, absent, another tenant's: a `notion.` token cannot tell them apart on any history route."""
    token = _token(shop, key_prefix="notion.")
    answers = {path: _answer(shop.call(method, path + suffix, token, json=body)) for path in (
        SHOP + "stripe.key", SHOP + "stripe.gone", SHOP + "stripe.absent", SHOP + "notion.absent",
        OTHER + "notion.a", "/v1/secrets/project/nowhere/notion.a")}
    first = answers[SHOP + "stripe.key"]
    assert first[0] == 404
    assert all(answer == first for answer in answers.values()), answers
    full = _token(shop)
    versions = shop.call("GET", SHOP + "stripe.key/versions", full).get_json()
    assert [item["version"] for item in versions["items"]] == [2, 1]  # nothing rolled back or purged
    gone = shop.call("GET", SHOP + "stripe.gone/versions", full).get_json()
    assert gone["deletedAt"] is not None  # nothing restored


def test_a_prefix_token_lists_no_deleted_secret_outside_its_prefix(shop: ApiClient) -> None:
    token = _token(shop, key_prefix="notion.")
    for query in ("", "&prefix=stripe", "&prefix=stripe.gone"):
        response = shop.call("GET", "/v1/secrets?ownerType=project&ownerId=shop&deleted=true" + query, token)
        assert _answer(response)[0] == 200 and response.get_json()["items"] == []


def test_a_prefix_admin_token_reads_no_audit_row_outside_its_prefix(shop: ApiClient) -> None:
    """Every filter, and a forged cursor past the head, stays inside the prefix and the token's projects."""
    full = _token(shop)
    shop.call("POST", SHOP + "stripe.key:reveal", full, json={"version": 1})
    shop.call("GET", OTHER + "notion.a", full)  # a denied probe: a row in project:other
    token = _token(shop, key_prefix="notion.")
    queries: list[dict[str, str]] = [
        {}, {"key": "stripe.key"}, {"key": "stripe.gone"}, {"scope": "project:other"}, {"scope": "user:svc"},
        {"action": "reveal"}, {"action": "delete"}, {"actor": "ops"},
        {"cursor": encode_cursor(2**62)}, {"cursor": encode_cursor(10**6), "limit": "500"}]
    for query in queries:
        response = shop.call("GET", "/v1/audit", token, query_string=query)
        _answer(response)
        items = response.get_json()["items"]
        assert all(str(i["keyName"]).startswith("notion.") and i["scope"] in ("project:shop", "system")
                   for i in items), (query, items)
    everything = shop.call("GET", "/v1/audit", full, query_string={"limit": "500"}).get_json()["items"]
    assert any(i["keyName"] == "stripe.key" and i["action"] == "reveal" for i in everything)  # the control


@pytest.mark.parametrize(("field", "value"), [
    ("cursor", encode_cursor(0)), ("cursor", "YTE6LTE"), ("cursor", encode_cursor(2**63)),
    ("cursor", "YTE6" + "A" * 200), ("limit", "-1"), ("limit", "1e3"), ("limit", "\u0661"),
    ("since", "999999999d"), ("since", "0001-01-01T00:00:00+01:00"), ("until", "9999-12-31T23:59:59-01:00"),
    ("until", "99999999d"), ("actor", "x" * 257), ("key", "a" * 129), ("scope", "project:p1' OR '1'='1"),
    ("action", "reveal' OR 1=1 --")])
def test_out_of_range_or_forged_audit_input_is_a_422_never_a_500(make_api: Callable[..., ApiClient], field: str,
                                                                   value: str) -> None:
    """A year-1 time with a positive offset, a year-9999 one with a negative offset, or an age of 999999999 days
    fall outside datetime's range once moved to UTC or subtracted: they were an OverflowError, a 500."""
    api = make_api(sqlite=True)
    token = api.token("auditor", (READ, ADMIN))
    response = api.call("GET", "/v1/audit", token, query_string={field: value})
    body = problem(response, 422)
    assert list(body["errors"]) == [field], body
    if len(value) > 4:
        assert value not in response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path", "name"), [
    ("GET", KEY + "?version=1&version=2", "version"),
    ("GET", KEY + "?version=2&version=1", "version"),
    ("DELETE", KEY + "?purge=false&purge=true", "purge"),
    ("DELETE", KEY + "?purge=true&purge=false", "purge"),
    ("GET", "/v1/secrets?ownerType=project&ownerId=p1&deleted=false&deleted=true", "deleted"),
])
def test_a_repeated_history_switch_is_a_422_not_the_first_value(any_api: ApiClient, method: str, path: str,
                                                                name: str) -> None:
    """webargs kept the first value of a repeated parameter: `?purge=false&purge=true` soft-deleted while a proxy,
    a WAF or a log reading the last value saw a purge (and `?version=` read another version than the one logged)."""
    for value in ("one", CANARY):
        assert any_api.put(KEY, value).status_code in (200, 201)
    admin = any_api.token("root", ALL)
    response = any_api.call(method, path, admin)
    body = problem(response, 422)
    assert list(body["errors"]) == [name], body
    assert CANARY not in response.get_data(as_text=True)
    versions = any_api.call("GET", KEY + "/versions", admin).get_json()
    assert versions["deletedAt"] is None and len(versions["items"]) == 2  # nothing deleted, nothing purged


def test_a_deleted_secret_is_unreachable_through_every_other_door(shop: ApiClient) -> None:
    full = _token(shop)
    gone = SHOP + "stripe.gone"
    batch = shop.call("POST", "/v1/secrets:reveal", full, json={"ownerType": "project", "ownerId": "shop",
                                                                   "keys": ["stripe.gone"]})
    assert batch.status_code == 200 and batch.get_json() == {"items": [], "missing": ["stripe.gone"]}
    by_prefix = shop.call("POST", "/v1/secrets:reveal", full, json={"ownerType": "project", "ownerId": "shop",
                                                                       "prefix": "stripe"})
    assert [i["keyName"] for i in by_prefix.get_json()["items"]] == ["stripe.key"]
    problem(shop.call("POST", gone + ":reveal", full, json={"oneTime": True, "ttlSeconds": 60}), 404)
    problem(shop.call("POST", gone + ":reveal", full, json={"version": 1}), 404)
    problem(shop.call("GET", gone + "?version=1", full), 404)
    problem(shop.call("POST", gone + ":rollback", full, json={"version": 1}), 404)
    problem(shop.call("POST", gone + ":rotate", full), 404)
    meta = shop.call("GET", "/v1/secrets:export?ownerType=project&ownerId=shop", full).get_json()
    assert "stripe.gone" not in [i["keyName"] for i in meta["items"]]
    bundle = shop.call("GET", "/v1/secrets:export?ownerType=project&ownerId=shop&bundle=true&allVersions=true",
                       full).get_json()
    assert "stripe.gone" not in {i.get("key") for i in bundle["items"]}
    assert CANARY not in str(bundle)
    # A reveal token minted while the secret was live opens nothing once it is deleted.
    minted = shop.mint(SHOP + "stripe.key", token=full)
    assert shop.call("DELETE", SHOP + "stripe.key", full).status_code == 204
    problem(shop.redeem(minted), 410)


def test_an_idempotent_replay_after_a_delete_does_not_claim_a_stored_value(any_api: ApiClient) -> None:
    headers = {"Idempotency-Key": "k-history-1"}
    assert any_api.call("PUT", KEY, json={"value": CANARY}, headers=headers).status_code == 201
    assert any_api.call("DELETE", KEY).status_code == 204
    replay = any_api.call("PUT", KEY, json={"value": CANARY}, headers=headers)
    assert replay.status_code >= 400 and CANARY not in replay.get_data(as_text=True)
    problem(any_api.call("GET", KEY), 404)  # the replay did not bring it back
    stale = any_api.call("PUT", KEY, json={"value": "x"}, headers={"If-Match": '"1"'})  # If-Match on a deleted one
    problem(stale, 412)


def test_a_write_only_token_may_set_a_deleted_secret_again_but_reads_nothing(any_api: ApiClient) -> None:
    """Setting a deleted secret again is a write (docs/history.md): allowed with secrets:write alone. It reads
    nothing: no value, and the kept versions stay behind secrets:read."""
    for value in ("one", CANARY):
        any_api.put(KEY, value)
    any_api.call("DELETE", KEY)
    writer = any_api.token("writer", (WRITE,), ("p1",))
    response = any_api.put(KEY, "fresh", writer)
    assert response.status_code == 201 and CANARY not in response.get_data(as_text=True)
    assert response.get_json()["version"] == 3
    for method, path in (("GET", KEY + "/versions"), ("GET", KEY + "?version=1"), ("GET", KEY)):
        problem(any_api.call(method, path, writer), 403)
    problem(any_api.call("POST", KEY + ":reveal", writer, json={"version": 2}), 403)


def test_reading_an_old_version_keeps_the_step_up_and_the_reveal_limit(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_REVEAL="2/minute")
    for value in ("one", "two", CANARY):
        api.put(KEY, value)
    for version in (1, 2):
        assert api.call("POST", KEY + ":reveal", json={"version": version}).status_code == 200
    limited = api.call("POST", KEY + ":reveal", json={"version": 1})
    problem(limited, 429)
    other = make_api()
    for value in ("one", CANARY):
        other.put(KEY, value)
    other.clock.advance(16 * 60)  # the operator token is older than SPRONGUS_REVEAL_MAX_AGE
    stale = other.call("POST", KEY + ":reveal", json={"version": 1})
    problem(stale, 401)
    assert "old" not in stale.get_json().get("value", "")


def test_a_rollback_without_reveal_moves_a_value_but_never_shows_one(any_api: ApiClient) -> None:
    """Noted, accepted: rollback is a write (secrets:write, no step-up), so a token without secrets:reveal, or with
    a stale sign-in, may make an old value current. It never answers with a value: reading it still takes a
    reveal, with its step-up and limit."""
    for value in ("first-value", CANARY):
        any_api.put(KEY, value)
    writer = any_api.token("rw", (READ, WRITE), ("p1",))
    problem(any_api.call("POST", KEY + ":reveal", writer, json={"version": 1}), 403)
    any_api.clock.advance(16 * 60)
    rolled = any_api.call("POST", KEY + ":rollback", writer, json={"version": 2})
    assert rolled.status_code == 200 and rolled.get_json()["value"] == "********"
    assert CANARY not in rolled.get_data(as_text=True)
    assert rolled.get_json()["version"] == 3
