"""A secret's history over the REST API (docs/history.md): versions, ?version=, reveal of a version, rollback, soft
delete, deleted listings, restore and purge, on the in-memory profile, a SQLite vault and Postgres (the app role,
row-level security on).

Every answer that is not a reveal is checked for the canary, error answers included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from werkzeug.test import TestResponse

from tests.e2e.api.conftest import ADMIN, KEY, READ, REVEAL, WRITE, ApiClient, problem
from tests.e2e.api.pg_api import PgApiClient, pg_api_client
from tests.harness import CANARY

VALUES = ("first-value", "second-value", CANARY)  # version 3, the current one, is the canary
LIST = "/v1/secrets?ownerType=project&ownerId=p1"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def hapi(request: pytest.FixtureRequest, make_api: Callable[..., ApiClient]) -> Iterator[ApiClient]:
    if request.param == "postgres":
        with pg_api_client(request.getfixturevalue("pg_db")) as api:
            yield api
        return
    yield make_api(sqlite=request.param == "sqlite")


def masked(response: TestResponse, status: int = 200) -> dict[str, Any]:
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert CANARY not in text
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.get_json()
    if "value" in body:
        assert body["value"] == "********" and body["masked"] is True, body
    return body


def refused(response: TestResponse, status: int) -> dict[str, Any]:
    body = problem(response, status)
    assert CANARY not in response.get_data(as_text=True)
    return body


def three_versions(api: ApiClient, path: str = KEY) -> None:
    for value in VALUES:
        assert api.put(path, value).status_code in (200, 201)


def test_history_lists_every_version_newest_first_and_never_a_value(hapi: ApiClient) -> None:
    three_versions(hapi)
    history = masked(hapi.call("GET", KEY + "/versions"))
    assert set(history) == {"items", "deletedAt"} and history["deletedAt"] is None
    assert [item["version"] for item in history["items"]] == [3, 2, 1]
    assert [item["current"] for item in history["items"]] == [True, False, False]
    for item in history["items"]:
        assert set(item) == {"version", "createdAt", "createdBy", "current"}
        assert item["createdBy"] == "alice" and item["createdAt"].endswith("Z")


def test_a_kept_version_reads_masked_and_reveals_with_its_own_value(hapi: ApiClient) -> None:
    three_versions(hapi)
    old = hapi.call("GET", KEY + "?version=1")
    record = masked(old)
    assert (record["version"], record["keyName"]) == (1, "db.password")
    assert "ETag" not in old.headers  # If-Match compares with the current version: an old one offers no ETag
    assert hapi.call("GET", KEY).headers["ETag"] == '"3"'
    revealed = hapi.call("POST", KEY + ":reveal", json={"version": 2})
    assert revealed.status_code == 200
    assert (revealed.get_json()["value"], revealed.get_json()["version"]) == ("second-value", 2)
    current = hapi.call("POST", KEY + ":reveal", json={})
    assert current.get_json()["value"] == CANARY  # the plain reveal still opens the current version
    refused(hapi.call("GET", KEY + "?version=4"), 404)
    refused(hapi.call("POST", KEY + ":reveal", json={"version": 9}), 404)


def _audit(api: ApiClient, request_id: str) -> list[tuple[str, str, int | None]]:
    """(action, outcome, version) of the audit rows of one request."""
    if isinstance(api, PgApiClient):
        with psycopg.connect(api.pg.admin_url) as conn:
            rows = conn.execute("SELECT action, outcome, version FROM audit_event WHERE request_id = %s ORDER BY seq",
                                (request_id,)).fetchall()
        return [(str(a), str(o), v) for a, o, v in rows]
    return [(e.action.value, e.outcome.value, e.version) for e in api.events() if e.request_id == request_id]


@pytest.mark.parametrize("backend", ["memory", "postgres"])
def test_a_reveal_of_a_version_is_audited_with_that_version(request: pytest.FixtureRequest, backend: str,
                                                            make_api: Callable[..., ApiClient]) -> None:
    def run(api: ApiClient) -> None:
        three_versions(api)
        response = api.call("POST", KEY + ":reveal", json={"version": 1}, headers={"X-Request-ID": "reveal-v1"})
        assert response.get_json()["value"] == "first-value"
        assert _audit(api, "reveal-v1") == [("reveal", "success", 1)]
        refused(api.call("POST", KEY + ":reveal", json={"version": 7}, headers={"X-Request-ID": "reveal-v7"}), 404)
        assert [row[:2] for row in _audit(api, "reveal-v7")] == [("reveal", "not_found")]

    if backend == "postgres":
        with pg_api_client(request.getfixturevalue("pg_db")) as api:
            run(api)
    else:
        run(make_api())


def test_rollback_writes_latest_plus_one_holding_the_old_value(hapi: ApiClient) -> None:
    three_versions(hapi)
    response = hapi.call("POST", KEY + ":rollback", json={"version": 1})
    record = masked(response)
    assert (record["version"], response.headers["ETag"]) == (4, '"4"')
    assert hapi.call("POST", KEY + ":reveal").get_json()["value"] == "first-value"
    history = masked(hapi.call("GET", KEY + "/versions"))
    assert [item["version"] for item in history["items"]] == [4, 3, 2, 1]
    assert hapi.call("POST", KEY + ":reveal", json={"version": 3}).get_json()["value"] == CANARY  # nothing lost
    refused(hapi.call("POST", KEY + ":rollback", json={"version": 11}), 404)
    refused(hapi.call("POST", "/v1/secrets/project/p1/missing:rollback", json={"version": 1}), 404)


def test_delete_is_soft_listed_with_deleted_true_and_restore_brings_every_version_back(hapi: ApiClient) -> None:
    three_versions(hapi)
    hapi.put("/v1/secrets/project/p1/other", "stays")
    assert hapi.call("DELETE", KEY).status_code == 204
    refused(hapi.call("GET", KEY), 404)
    refused(hapi.call("POST", KEY + ":reveal"), 404)
    live = masked(hapi.call("GET", LIST))
    assert [item["keyName"] for item in live["items"]] == ["other"]
    assert all("deletedAt" not in item for item in live["items"])
    gone = masked(hapi.call("GET", LIST + "&deleted=true"))
    assert [(item["keyName"], item["version"]) for item in gone["items"]] == [("db.password", 3)]
    assert gone["items"][0]["deletedAt"].endswith("Z")
    history = masked(hapi.call("GET", KEY + "/versions"))  # what a restore would bring back
    assert history["deletedAt"] is not None and len(history["items"]) == 3

    restored = hapi.call("POST", KEY + ":restore")
    record = masked(restored)
    assert (record["version"], restored.headers["ETag"]) == (3, '"3"') and "deletedAt" not in record
    assert hapi.call("POST", KEY + ":reveal").get_json()["value"] == CANARY
    assert masked(hapi.call("GET", KEY + "/versions"))["deletedAt"] is None
    assert masked(hapi.call("GET", LIST + "&deleted=true"))["items"] == []
    refused(hapi.call("POST", KEY + ":restore"), 404)  # only a deleted secret can be restored


def test_purge_needs_admin_then_destroys_every_version(hapi: ApiClient) -> None:
    three_versions(hapi)
    denied = hapi.call("DELETE", KEY + "?purge=true")  # alice: read, write and reveal, no admin
    body = refused(denied, 403)
    assert body["detail"] == "missing permission secrets:admin"
    assert 'scope="secrets:admin"' in denied.headers["WWW-Authenticate"]
    assert masked(hapi.call("GET", KEY))["version"] == 3  # nothing destroyed

    admin = hapi.token("root", (READ, WRITE, ADMIN))
    purged = hapi.call("DELETE", KEY + "?purge=true", admin)
    assert masked(purged) == {"destroyedVersions": [3, 2, 1]}
    for method, path in (("GET", KEY), ("GET", KEY + "/versions"), ("GET", KEY + "?version=1"),
                         ("POST", KEY + ":restore"), ("DELETE", KEY), ("DELETE", KEY + "?purge=true")):
        refused(hapi.call(method, path, admin), 404)
    refused(hapi.call("POST", KEY + ":reveal", json={"version": 2}), 404)
    assert masked(hapi.call("GET", LIST + "&deleted=true"))["items"] == []
    # A new secret of the same name never reuses a destroyed version number.
    assert masked(hapi.put(KEY, "again"), 201)["version"] == 4


def test_a_deleted_secret_can_be_purged_too(hapi: ApiClient) -> None:
    three_versions(hapi)
    hapi.call("DELETE", KEY)
    admin = hapi.token("root", (READ, WRITE, ADMIN))
    assert masked(hapi.call("DELETE", KEY + "?purge=true", admin)) == {"destroyedVersions": [3, 2, 1]}
    assert masked(hapi.call("GET", LIST + "&deleted=true"))["items"] == []


def test_without_secrets_write_rollback_restore_and_purge_are_403_and_change_nothing(hapi: ApiClient) -> None:
    three_versions(hapi)
    hapi.put("/v1/secrets/project/p1/deleted.one", CANARY)
    hapi.call("DELETE", "/v1/secrets/project/p1/deleted.one")
    reader = hapi.token("reader", (READ, REVEAL, ADMIN))
    for method, path, body in (("POST", KEY + ":rollback", {"version": 1}),
                               ("POST", "/v1/secrets/project/p1/deleted.one:restore", None),
                               ("DELETE", KEY + "?purge=true", None)):
        response = hapi.call(method, path, reader, json=body)
        assert refused(response, 403)["detail"] == "missing permission secrets:write", path
        assert 'scope="secrets:write"' in response.headers["WWW-Authenticate"]
    assert [i["version"] for i in masked(hapi.call("GET", KEY + "/versions"))["items"]] == [3, 2, 1]
    assert [i["keyName"] for i in masked(hapi.call("GET", LIST + "&deleted=true"))["items"]] == ["deleted.one"]
    no_read = hapi.token("writer", (WRITE,))
    refused(hapi.call("GET", KEY + "/versions", no_read), 403)
    refused(hapi.call("GET", KEY + "?version=1", no_read), 403)
    refused(hapi.call("GET", LIST + "&deleted=true", no_read), 403)


def test_another_tenants_secret_is_not_found_on_every_new_route(hapi: ApiClient) -> None:
    three_versions(hapi)
    hapi.put("/v1/secrets/project/p1/deleted.one", CANARY)
    hapi.call("DELETE", "/v1/secrets/project/p1/deleted.one")
    bob = hapi.token("bob", (READ, WRITE, REVEAL, ADMIN), ("p2",))
    detail = refused(hapi.call("GET", "/v1/secrets/project/p1/absent", bob), 404)["detail"]
    for method, path, body in (
            ("GET", KEY + "/versions", None), ("GET", KEY + "?version=1", None),
            ("POST", KEY + ":reveal", {"version": 1}), ("POST", KEY + ":rollback", {"version": 1}),
            ("POST", KEY + ":restore", None), ("DELETE", KEY + "?purge=true", None),
            ("GET", "/v1/secrets/project/p1/deleted.one/versions", None),
            ("POST", "/v1/secrets/project/p1/deleted.one:restore", None),
            ("DELETE", "/v1/secrets/project/p1/deleted.one?purge=true", None),
            ("GET", LIST + "&deleted=true", None)):
        assert refused(hapi.call(method, path, bob, json=body), 404)["detail"] == detail, (method, path)
    assert [i["version"] for i in masked(hapi.call("GET", KEY + "/versions"))["items"]] == [3, 2, 1]
    assert [i["keyName"] for i in masked(hapi.call("GET", LIST + "&deleted=true"))["items"]] == ["deleted.one"]


BAD_BODY_VERSIONS: list[Any] = [True, False, "1", "CANARY-sprongus-7f3a9c-do-not-leak", 1.0, 1.5, 0, -1, None,
                                2**31, 2**40, 2**63 - 1, 2**64, 10**30, [1], {"n": 1}]
BAD_QUERY_VERSIONS = ["0", "-1", "+1", " 1", "1.0", "1e2", "0x1", "01", "1_0", "\uff11", "2147483648",
                      "99999999999999999999", "true", "", CANARY]


@pytest.mark.parametrize("value", BAD_BODY_VERSIONS, ids=repr)
def test_a_malformed_version_in_a_body_is_422_naming_the_field(api: ApiClient, value: Any) -> None:
    three_versions(api)
    for route in (":rollback", ":reveal"):
        response = api.call("POST", KEY + route, json={"version": value})
        body = refused(response, 422)
        assert list(body["errors"]) == ["version"], body
        text = response.get_data(as_text=True)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and len(str(value)) > 3:
            assert str(value) not in text  # the input is never echoed
    assert api.call("GET", KEY).get_json()["version"] == 3  # no rollback happened


@pytest.mark.parametrize("value", BAD_QUERY_VERSIONS, ids=repr)
def test_a_malformed_version_in_a_query_is_422_naming_the_field(api: ApiClient, value: str) -> None:
    three_versions(api)
    response = api.call("GET", KEY, query_string={"version": value})
    body = refused(response, 422)
    assert list(body["errors"]) == ["version"], body
    if len(value) > 3:
        assert value not in response.get_data(as_text=True)


def test_extra_fields_and_loose_switches_are_refused(api: ApiClient) -> None:
    three_versions(api)
    admin = api.token("root", (READ, WRITE, ADMIN))
    assert refused(api.call("POST", KEY + ":rollback", json={"version": 1, "force": True}), 422)["errors"] == {
        "body": ["unknown field"]}
    assert list(refused(api.call("POST", KEY + ":rollback", json={}), 422)["errors"]) == ["version"]
    one_time = refused(api.call("POST", KEY + ":reveal", json={"oneTime": True, "version": 1}), 422)
    assert list(one_time["errors"]) == ["version"]
    for loose in ("1", "yes", "True", "on", CANARY):
        assert list(refused(api.call("DELETE", KEY, admin, query_string={"purge": loose}), 422)["errors"]) == [
            "purge"]
        listing = {"ownerType": "project", "ownerId": "p1", "deleted": loose}
        assert list(refused(api.call("GET", "/v1/secrets", query_string=listing), 422)["errors"]) == ["deleted"]
    assert api.call("DELETE", KEY + "?purge=false", admin).status_code == 204  # false: a plain (soft) delete
    assert masked(api.call("GET", LIST + "&deleted=false"))["items"] == []
    assert api.call("GET", KEY + "/versions").get_json()["deletedAt"] is not None


def test_the_openapi_document_describes_the_history_routes(api: ApiClient) -> None:
    doc = api.client.get("/v1/openapi.json").get_json()
    base = "/v1/secrets/{owner_type}/{owner_id}/{key_name}"
    assert {"get"} <= set(doc["paths"][base + "/versions"])
    assert {"post"} <= set(doc["paths"][base + ":rollback"]) and {"post"} <= set(doc["paths"][base + ":restore"])
    get_params = {p["name"]: p for p in doc["paths"][base]["get"]["parameters"]}
    assert get_params["version"]["schema"]["maximum"] == 2**31 - 1
    delete = doc["paths"][base]["delete"]
    assert {"200", "204"} <= set(delete["responses"])
    assert "purge" in {p["name"] for p in delete["parameters"]}
    assert "deleted" in {p["name"] for p in doc["paths"]["/v1/secrets"]["get"]["parameters"]}
