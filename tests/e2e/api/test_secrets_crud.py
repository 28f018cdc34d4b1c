"""Masked reads, PUT/GET/DELETE/rotate, ETag and If-Match, Cache-Control (docs/design.md: bundles, api)."""

from __future__ import annotations

import pytest

from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

MASK = "********"


def _masked(record: dict[str, object]) -> None:
    assert record["value"] == MASK and record["masked"] is True, record


def test_put_creates_with_201_then_updates_with_200_and_a_new_version(any_api: ApiClient) -> None:
    created = any_api.call("PUT", KEY, json={"value": CANARY, "meta": {"provider": "postgres"}})
    assert created.status_code == 201
    assert created.headers["ETag"] == '"1"'
    first = created.get_json()
    _masked(first)
    assert first | {"createdAt": None, "updatedAt": None} == {
        "ownerType": "project", "ownerId": "p1", "scope": "project:p1", "keyName": "db.password", "value": MASK,
        "masked": True, "version": 1, "createdAt": None, "updatedAt": None, "lastRotatedAt": None,
        "meta": {"provider": "postgres"}}
    same_value = any_api.put(KEY, CANARY)  # every set is a new version, even of an unchanged value
    assert same_value.status_code == 200 and same_value.headers["ETag"] == '"2"'
    _masked(same_value.get_json())
    assert same_value.get_json()["version"] == 2
    assert same_value.get_json()["meta"] == {"provider": "postgres"}  # meta kept when not given
    for response in (created, same_value):
        assert CANARY not in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"


def test_get_is_masked_with_meta_and_a_strong_etag(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "db.password", CANARY, {"provider": "postgres", "rotates": True})
    any_api.seed("project:p1", "db.password", CANARY)
    got = any_api.call("GET", KEY)
    assert got.status_code == 200
    assert got.headers["ETag"] == '"2"'  # strong (no W/), quoted, the version
    assert got.headers["Cache-Control"] == "no-store"
    record = got.get_json()
    _masked(record)
    assert record["meta"] == {"provider": "postgres", "rotates": True} and record["version"] == 2
    assert CANARY not in got.get_data(as_text=True)


@pytest.mark.parametrize("with_meta", ["true", "false"])
def test_list_never_carries_values(any_api: ApiClient, with_meta: str) -> None:
    for key in ("a", "b.c", "b.d"):
        any_api.seed("project:p1", key, CANARY + key, {"tag": "x"})
    listed = any_api.call("GET", f"/v1/secrets?ownerType=project&ownerId=p1&withMeta={with_meta}")
    assert listed.status_code == 200 and listed.headers["Cache-Control"] == "no-store"
    page = listed.get_json()
    assert [item["keyName"] for item in page["items"]] == ["a", "b.c", "b.d"] and page["nextCursor"] is None
    for item in page["items"]:
        _masked(item)
        assert ("meta" in item) is (with_meta == "true")
    assert CANARY not in listed.get_data(as_text=True)
    prefixed = any_api.call("GET", "/v1/secrets?ownerType=project&ownerId=p1&prefix=b.").get_json()
    assert [item["keyName"] for item in prefixed["items"]] == ["b.c", "b.d"]


def test_if_match_guards_against_lost_updates(any_api: ApiClient) -> None:
    etag = any_api.put(KEY, "one").headers["ETag"]
    updated = any_api.put(KEY, "two", headers={"If-Match": etag})
    assert updated.status_code == 200 and updated.headers["ETag"] == '"2"'
    stale = any_api.put(KEY, CANARY, headers={"If-Match": etag})
    body = problem(stale, 412)
    assert body["type"].endswith(":precondition-failed")
    for malformed in ('W/"2"', "2x", '"two"', "", "*, *"):
        problem(any_api.put(KEY, CANARY, headers={"If-Match": malformed}), 412)
    problem(any_api.put("/v1/secrets/project/p1/missing", CANARY, headers={"If-Match": '"1"'}), 412)
    assert any_api.call("GET", "/v1/secrets/project/p1/missing").status_code == 404
    assert any_api.reveal(KEY).get_json()["value"] == "two"  # nothing refused was written
    assert any_api.call("GET", KEY).headers["ETag"] == '"2"'


def test_delete_answers_204_then_404(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    deleted = any_api.call("DELETE", KEY)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    problem(any_api.call("GET", KEY), 404)
    problem(any_api.call("DELETE", KEY), 404)
    assert any_api.put(KEY, "again").status_code == 201  # a deleted key can be created anew


def test_rotate_answers_the_masked_record_one_version_up(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    rotated = any_api.call("POST", KEY + ":rotate")
    assert rotated.status_code == 200 and rotated.headers["ETag"] == '"2"'
    record = rotated.get_json()
    _masked(record)
    assert record["version"] == 2 and record["lastRotatedAt"] is not None
    assert CANARY not in rotated.get_data(as_text=True)
    assert any_api.reveal(KEY).get_json()["value"] == CANARY  # same value under a new data key
    problem(any_api.call("POST", "/v1/secrets/project/p1/missing:rotate"), 404)


def test_every_secrets_response_says_no_store(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    minted = api.mint()
    responses = [
        api.call("GET", KEY), api.call("GET", "/v1/secrets?ownerType=project&ownerId=p1"), api.put(KEY, CANARY),
        api.reveal(KEY), api.call("POST", KEY + ":rotate"), api.redeem(minted), api.redeem(minted),
        api.call("POST", KEY + ":reveal", json={"oneTime": True}),
        api.call("GET", "/v1/secrets:export?ownerType=project&ownerId=p1"),
        api.call("GET", "/v1/secrets:export?ownerType=project&ownerId=p1&bundle=true"),
        api.call("POST", "/v1/secrets:import", json={"allowPlaintext": True, "items": []}),
        api.call("GET", KEY, anonymous=True), api.call("GET", "/v1/secrets/project/p1/missing"),
        api.call("DELETE", KEY), api.call("PATCH", KEY),
    ]
    for response in responses:
        assert response.headers.get("Cache-Control") == "no-store", (response.request.path, response.status)
