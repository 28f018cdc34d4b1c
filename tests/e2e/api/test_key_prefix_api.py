"""Key-prefix tokens over HTTP: a token made with key prefix `notion.` on project:shop gets, for any other key of
project:shop, byte for byte the 404 it gets for a key that does not exist and for another tenant's secret (no
existence oracle); its listings and exports stop at the prefix. On memory, SQLite and Postgres (as the app role,
where row-level security holds the prefix too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import TestResponse

from sprongus.domain.principal import TokenKind
from tests.e2e.api.conftest import TENANT_SCOPES, ApiClient, problem
from tests.e2e.api.pg_api import PgApiClient, pg_api_client
from tests.pg import PgDatabase, fresh_database

NOTION_KEYS = ["notion.admin", "notion.api_token", "notion.bot"]
HIDDEN_KEYS = ["notion", "notion-old", "stripe.key", "stripe.webhook"]
SHOP = "/v1/secrets/project/shop/"
OTHER = "/v1/secrets/project/other/"
LIST = "/v1/secrets?ownerType=project&ownerId=shop"
EXPORT = "/v1/secrets:export?ownerType=project&ownerId=shop"
# Headers that differ from one response to the next whatever the answer.
PER_REQUEST = {"X-Request-ID", "Date"}


@pytest.fixture(scope="module")
def shared_pg() -> Iterator[PgDatabase]:
    """One migrated database for the module (a fresh one per test costs more than the tests)."""
    with fresh_database(migrated=True) as db:
        yield db


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, make_api: Callable[..., ApiClient]) -> Iterator[ApiClient]:
    """An app with NOTION_KEYS and HIDDEN_KEYS in project:shop and notion.api_token in project:other."""
    if request.param == "postgres":
        pg: PgDatabase = request.getfixturevalue("shared_pg")
        with pg.admin() as conn:
            conn.execute("DELETE FROM secret_kv")
        with pg_api_client(pg) as on_pg:
            _seed(on_pg)
            yield on_pg
        return
    api = make_api(sqlite=request.param == "sqlite")
    _seed(api)
    yield api


def _seed(api: ApiClient) -> None:
    for key in NOTION_KEYS + HIDDEN_KEYS:
        api.seed("project:shop", key, f"value of {key}")
    api.seed("project:other", "notion.api_token", "other tenant's")


def prefixed(api: ApiClient, key_prefix: str = "notion.", kind: TokenKind = TokenKind.OPERATOR,
             projects: tuple[str, ...] = ("shop",)) -> str:
    """A token (read, write, reveal) on `projects`, limited to keys starting with `key_prefix`."""
    container = api.maintenance if isinstance(api, PgApiClient) else api.container
    secret, record = container.token_service().create("svc", list(TENANT_SCOPES), list(projects), 3600, kind,
                                                      key_prefix)
    assert record.key_prefix == key_prefix
    return str(secret.reveal())


def _answer(response: TestResponse) -> tuple[int, bytes, list[tuple[str, str]]]:
    """What a client could compare: status, body and headers (bar those that change with every request)."""
    headers = sorted((k, v) for k, v in response.headers.items() if k not in PER_REQUEST)
    return response.status_code, response.get_data(), headers


# (name, method, path suffix, request body); the path is SHOP or OTHER + key + suffix.
PROBES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("get", "GET", "", None),
    ("reveal", "POST", ":reveal", None),
    ("mint", "POST", ":reveal", {"oneTime": True, "ttlSeconds": 60}),
    ("delete", "DELETE", "", None),
    ("rotate", "POST", ":rotate", None),
]


@pytest.mark.parametrize(("name", "method", "suffix", "body"), PROBES, ids=[p[0] for p in PROBES])
@pytest.mark.parametrize("kind", [TokenKind.OPERATOR, TokenKind.WORKLOAD])
def test_a_hidden_key_answers_like_an_absent_one_and_like_another_tenants(
        shop: ApiClient, kind: TokenKind, name: str, method: str, suffix: str, body: dict[str, Any] | None) -> None:
    token = prefixed(shop, kind=kind)
    full = shop.token("svc", projects=("shop",))  # the control: the same token without a prefix

    def call(path: str) -> TestResponse:
        return shop.call(method, path + suffix, token, json=body)

    assert shop.call("GET", SHOP + "stripe.key", full).status_code == 200
    hidden = call(SHOP + "stripe.key")
    problem(hidden, 404)
    answers = {
        "hidden, exists": _answer(hidden),
        "hidden, absent": _answer(call(SHOP + "stripe.absent")),
        "hidden, same letters": _answer(call(SHOP + "notion-old")),
        "visible, absent": _answer(call(SHOP + "notion.absent")),
        "another tenant's": _answer(call(OTHER + "notion.api_token")),
        "a scope never granted": _answer(call("/v1/secrets/project/nowhere/notion.api_token")),
    }
    assert all(answer == answers["hidden, exists"] for answer in answers.values()), answers
    # Nothing moved: the secrets are where they were, at the versions they had.
    for key in ("stripe.key", "notion-old"):
        revealed = shop.reveal(SHOP + key, full).get_json()
        assert (revealed["value"], revealed["version"]) == (f"value of {key}", 1)


@pytest.mark.parametrize("headers", [{}, {"If-Match": '"1"'}, {"If-Match": "garbage"}, {"Idempotency-Key": "k-1"}],
                         ids=["plain", "If-Match", "malformed If-Match", "Idempotency-Key"])
def test_writing_a_hidden_key_answers_like_writing_another_tenants(shop: ApiClient, headers: dict[str, str]) -> None:
    token = prefixed(shop)

    def put(path: str) -> TestResponse:
        return shop.call("PUT", path, token, json={"value": "planted"}, headers=headers)

    hidden = put(SHOP + "stripe.key")
    problem(hidden, 404)
    assert _answer(put(SHOP + "stripe.absent")) == _answer(hidden)
    assert _answer(put(OTHER + "notion.api_token")) == _answer(hidden)
    full = shop.token("svc", projects=("shop",))
    assert shop.call("GET", SHOP + "stripe.absent", full).status_code == 404
    assert shop.reveal(SHOP + "stripe.key", full).get_json()["value"] == "value of stripe.key"


def test_without_a_permission_a_hidden_key_is_still_404_and_a_visible_one_403(shop: ApiClient) -> None:
    """The key prefix is checked with the scope, before the permissions: a read-only prefixed token learns
    nothing from a 403 about keys it may not see."""
    container = shop.maintenance if isinstance(shop, PgApiClient) else shop.container
    secret, _ = container.token_service().create("svc", ["secrets:read"], ["shop"], 3600, TokenKind.OPERATOR,
                                                 "notion.")
    reader = secret.reveal()
    hidden = shop.put(SHOP + "stripe.key", "planted", reader)
    problem(hidden, 404)
    assert _answer(shop.put(OTHER + "notion.api_token", "planted", reader)) == _answer(hidden)
    problem(shop.put(SHOP + "notion.api_token", "planted", reader), 403)
    problem(shop.reveal(SHOP + "notion.api_token", reader), 403)
    assert _answer(shop.reveal(SHOP + "stripe.key", reader)) == _answer(hidden)


def test_importing_a_hidden_key_answers_like_importing_another_tenants(shop: ApiClient) -> None:
    token = prefixed(shop)

    def import_(scope: str, key: str) -> TestResponse:
        items = [{"scope": "project:shop", "key": "notion.new", "value": "x"},
                 {"scope": scope, "key": key, "value": "planted"}]
        return shop.call("POST", "/v1/secrets:import", token, json={"allowPlaintext": True, "items": items})

    hidden = import_("project:shop", "stripe.key")
    problem(hidden, 404)
    assert _answer(import_("project:shop", "stripe.absent")) == _answer(hidden)
    assert _answer(import_("project:other", "notion.api_token")) == _answer(hidden)
    assert _names(shop, token) == NOTION_KEYS  # notion.new was not written either


def test_keys_under_the_prefix_work_over_http(shop: ApiClient) -> None:
    token = prefixed(shop, kind=TokenKind.WORKLOAD)
    revealed = shop.reveal(SHOP + "notion.api_token", token)
    assert revealed.status_code == 200 and revealed.get_json()["value"] == "value of notion.api_token"
    assert shop.put(SHOP + "notion.new", "fresh", token).status_code == 201
    assert shop.call("POST", SHOP + "notion.new:rotate", token).get_json()["version"] == 2
    assert shop.redeem(shop.mint(SHOP + "notion.new", token=token)).get_json()["value"] == "fresh"
    assert shop.call("DELETE", SHOP + "notion.new", token).status_code == 204


def _names(api: ApiClient, token: str, query: str = "") -> list[str]:
    names: list[str] = []
    cursor = ""
    while True:
        response = api.call("GET", LIST + query + cursor, token)
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        names += [item["keyName"] for item in page["items"]]
        if not page.get("nextCursor"):
            return names
        cursor = f"&cursor={page['nextCursor']}"


@pytest.mark.parametrize(("query", "expected"), [
    ("", NOTION_KEYS),
    ("&prefix=notion", NOTION_KEYS),
    ("&prefix=notion.a", ["notion.admin", "notion.api_token"]),
    ("&prefix=stripe", []),
    ("&prefix=notion-", []),
    ("&limit=1", NOTION_KEYS),
])
def test_listing_shows_only_the_prefix(shop: ApiClient, query: str, expected: list[str]) -> None:
    assert _names(shop, prefixed(shop), query) == expected
    full = shop.token("svc", projects=("shop",))
    assert set(_names(shop, full, query)) >= set(expected)
    assert len(_names(shop, full)) == len(NOTION_KEYS + HIDDEN_KEYS)


def test_an_empty_listing_under_a_foreign_prefix_looks_like_an_empty_one(shop: ApiClient) -> None:
    token = prefixed(shop)
    stripe = shop.call("GET", LIST + "&prefix=stripe", token)
    nothing = shop.call("GET", LIST + "&prefix=zzz", token)
    assert _answer(stripe) == _answer(nothing)


@pytest.mark.parametrize("bundle", [False, True], ids=["metadata", "bundle"])
def test_export_holds_only_the_prefix(shop: ApiClient, bundle: bool) -> None:
    response = shop.call("GET", EXPORT + ("&bundle=true" if bundle else ""), prefixed(shop))
    assert response.status_code == 200, response.get_data(as_text=True)
    doc = response.get_json()
    keys = [item["key"] if bundle else item["keyName"] for item in doc["items"]]
    assert keys == NOTION_KEYS
    body = response.get_data(as_text=True)
    for key in HIDDEN_KEYS:
        assert f'"{key}"' not in body
