"""Authentication, scopes and tenancy on every endpoint (docs/design.md#api: 401, 403, and 404 as if absent)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.api.conftest import ADMIN, KEY, READ, REVEAL, TENANT_SCOPES, WRITE, ApiClient, problem, www_authenticate
from tests.harness import CANARY

IMPORT_BODY = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "imported", "value": "v"}]}
# (method, path, JSON body, the scope it needs). Every endpoint that takes a bearer token.
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/secrets?ownerType=project&ownerId=p1", None, READ),
    ("GET", KEY, None, READ),
    ("PUT", KEY, {"value": "new"}, WRITE),
    ("DELETE", KEY, None, WRITE),
    ("POST", KEY + ":reveal", {}, REVEAL),
    ("POST", KEY + ":reveal", {"oneTime": True, "ttlSeconds": 60}, REVEAL),
    ("POST", KEY + ":rotate", None, WRITE),
    ("POST", "/v1/secrets:import", IMPORT_BODY, WRITE),
    ("GET", "/v1/secrets:export?ownerType=project&ownerId=p1", None, READ),
    ("GET", "/v1/secrets:export?ownerType=project&ownerId=p1&bundle=true", None, REVEAL),
]
IDS = ["list", "get", "put", "delete", "reveal", "mint", "rotate", "import", "export", "export-bundle"]


@pytest.fixture
def seeded(api: ApiClient) -> ApiClient:
    api.seed("project:p1", "db.password", CANARY)
    return api


def _assert_unauthenticated(response: Any) -> None:
    body = problem(response, 401)
    assert www_authenticate(response).startswith("Bearer"), www_authenticate(response)
    assert CANARY not in response.get_data(as_text=True)
    assert body["type"].endswith(":unauthenticated")


@pytest.mark.parametrize(("method", "path", "body", "needs"), ENDPOINTS, ids=IDS)
def test_every_endpoint_refuses_a_missing_or_bad_token_with_401(seeded: ApiClient, method: str, path: str,
                                                                 body: Any, needs: str) -> None:
    api = seeded
    expired = api.token("alice", ttl=60)
    revoked, revoked_id = api.issue("alice")
    api.container.token_service().revoke(revoked_id)
    api.clock.advance(61)  # `expired` is now past its expiry; alice's own token (1 h) is still good
    attempts = [
        api.call(method, path, anonymous=True, json=body),
        api.call(method, path, anonymous=True, headers={"Authorization": "Basic YWxpY2U6cHc="}, json=body),
        api.call(method, path, anonymous=True, headers={"Authorization": "Bearer "}, json=body),
        api.call(method, path, "spr_not-a-real-token", json=body),
        api.call(method, path, "not-even-the-prefix", json=body),
        api.call(method, path, expired, json=body),
        api.call(method, path, revoked, json=body),
    ]
    for response in attempts:
        _assert_unauthenticated(response)
    assert api.call("GET", KEY).get_json()["version"] == 1, "a refused request changed the secret"


@pytest.mark.parametrize(("method", "path", "body", "needs"), ENDPOINTS, ids=IDS)
def test_every_endpoint_answers_403_insufficient_scope_without_its_scope(seeded: ApiClient, method: str,
                                                                          path: str, body: Any, needs: str) -> None:
    lacking = seeded.token("alice", tuple(s for s in TENANT_SCOPES if s != needs))
    response = seeded.call(method, path, lacking, json=body)
    problem(response, 403)
    challenge = www_authenticate(response)
    assert challenge.startswith("Bearer") and 'error="insufficient_scope"' in challenge, challenge
    assert f'scope="{needs}"' in challenge, challenge  # RFC 6750: the scope that would have sufficed
    assert CANARY not in response.get_data(as_text=True)


def test_the_right_scope_is_enough(seeded: ApiClient) -> None:
    reader = seeded.token("alice", (READ,))
    assert seeded.call("GET", KEY, reader).status_code == 200
    assert seeded.reveal(KEY, reader).status_code == 403
    revealer = seeded.token("alice", (REVEAL,))
    assert seeded.reveal(KEY, revealer).get_json()["value"] == CANARY


HIDDEN_SCOPES = [("user", "bob", "user:bob"), ("project", "p2", "project:p2"), ("system", "-", "system")]
KEY_OPERATIONS: list[tuple[str, str, Any]] = [
    ("GET", "", None), ("PUT", "", {"value": "overwrite"}), ("DELETE", "", None), ("POST", ":reveal", {}),
    ("POST", ":reveal", {"oneTime": True}), ("POST", ":rotate", None)]


@pytest.mark.parametrize(("owner_type", "owner_id", "scope"), HIDDEN_SCOPES, ids=[s for *_, s in HIDDEN_SCOPES])
def test_out_of_tenant_scopes_answer_404_exactly_like_an_absent_key(api: ApiClient, owner_type: str,
                                                                    owner_id: str, scope: str) -> None:
    api.seed(scope, "exists", CANARY)
    for method, suffix, body in KEY_OPERATIONS:
        there = api.call(method, f"/v1/secrets/{owner_type}/{owner_id}/exists{suffix}", json=body)
        absent = api.call(method, f"/v1/secrets/{owner_type}/{owner_id}/absent{suffix}", json=body)
        assert problem(there, 404) == problem(absent, 404), (method, suffix)  # no existence oracle
        assert dict(there.headers).keys() == dict(absent.headers).keys()
        if method != "PUT":  # in a scope of one's own, PUT would create the key
            mine = api.call(method, f"/v1/secrets/project/p1/absent{suffix}", json=body)
            assert {k: v for k, v in problem(mine, 404).items() if k != "detail"} == \
                   {k: v for k, v in problem(there, 404).items() if k != "detail"}
        assert CANARY not in there.get_data(as_text=True)
    for listing in (f"/v1/secrets?ownerType={owner_type}&ownerId={owner_id}",
                    f"/v1/secrets:export?ownerType={owner_type}&ownerId={owner_id}"):
        problem(api.call("GET", listing), 404)
    items = [{"scope": scope, "key": "exists", "value": "overwrite"}]
    problem(api.call("POST", "/v1/secrets:import", json={"allowPlaintext": True, "items": items}), 404)
    owner = api.token("ops", (*TENANT_SCOPES, ADMIN), projects=("p2",)) if scope != "user:bob" else \
        api.token("bob", projects=())
    survivor = api.call("POST", f"/v1/secrets/{owner_type}/{owner_id}/exists:reveal", owner)
    assert survivor.get_json()["value"] == CANARY and survivor.get_json()["version"] == 1


def test_system_scope_needs_secrets_admin_and_works_with_it(api: ApiClient) -> None:
    admin = api.token("root", (*TENANT_SCOPES, ADMIN), projects=())
    created = api.put("/v1/secrets/system/-/smtp.password", CANARY, admin)
    assert created.status_code == 201 and created.get_json()["ownerId"] is None
    assert created.get_json()["scope"] == "system"
    assert api.call("GET", "/v1/secrets/system/-/smtp.password", admin).status_code == 200
    listed = api.call("GET", "/v1/secrets?ownerType=system", admin).get_json()
    assert [item["keyName"] for item in listed["items"]] == ["smtp.password"]
    assert api.reveal("/v1/secrets/system/-/smtp.password", admin).get_json()["value"] == CANARY
    problem(api.call("GET", "/v1/secrets/system/-/smtp.password"), 404)  # alice: no admin
    problem(api.call("GET", "/v1/secrets/project/p2/x", admin), 404)  # admin is not every project


def test_user_scope_is_the_token_subject_only(api: ApiClient) -> None:
    assert api.put("/v1/secrets/user/alice/gh.token", CANARY).status_code == 201
    bob = api.token("bob")
    problem(api.call("GET", "/v1/secrets/user/alice/gh.token", bob), 404)
    problem(api.call("GET", "/v1/secrets?ownerType=user&ownerId=alice", bob), 404)
    assert api.call("GET", "/v1/secrets?ownerType=user&ownerId=alice").status_code == 200
