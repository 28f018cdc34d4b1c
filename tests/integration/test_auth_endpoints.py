"""The small `/v1/auth` endpoints: the OIDC settings, who-am-I, and revoke (RFC 7009), and their OpenAPI entries."""

from __future__ import annotations

import pytest

from tests.e2e.api.conftest import problem
from tests.integration.federation import (
    Federation,
    fed_fixture,  # noqa: F401  (fixture)
    issuer_fixture,  # noqa: F401  (fixture)
    make_federation,
)
from tests.oidc.issuer import OidcIssuer

WHOAMI, REVOKE, CONFIG = "/v1/auth/whoami", "/v1/auth/revoke", "/v1/auth/config"


def test_config_is_404_until_an_issuer_is_configured_then_public(issuer: OidcIssuer) -> None:
    bare = make_federation(issuer)
    missing = bare.api.client.get(CONFIG)
    assert problem(missing, 404)["detail"] == "no OpenID Connect issuer is configured on this server"

    configured = make_federation(issuer, {"SPRONGUS_OIDC_ISSUER": issuer.url, "SPRONGUS_OIDC_CLIENT_ID": "cli",
                                          "SPRONGUS_OIDC_AUDIENCE": "sprongus"})
    found = configured.api.client.get(CONFIG)  # no Authorization header
    assert found.status_code == 200 and found.headers["Cache-Control"] == "no-store"
    assert found.get_json() == {"issuer": issuer.url, "clientId": "cli", "audience": "sprongus"}


def test_whoami_describes_an_operator_token(fed: Federation) -> None:
    bearer, token_id = fed.api.issue("bob", ("secrets:read",), ("p1", "p2"), ttl=3600)
    fed.api.clock.advance(42)

    response = fed.api.call("GET", WHOAMI, bearer)

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body == {"subject": "bob", "kind": "operator", "trust": None, "scopes": ["secrets:read"],
                    "projects": ["p1", "p2"], "keyPrefix": "", "tokenId": token_id,
                    "expiresAt": body["expiresAt"], "authTime": body["authTime"], "authAgeSeconds": 42}
    assert body["expiresAt"].endswith("Z") and body["authTime"].endswith("Z")
    assert bearer not in response.get_data(as_text=True)


def test_whoami_and_revoke_need_a_token_and_refusals_are_audited(fed: Federation) -> None:
    for method, path in (("GET", WHOAMI), ("POST", REVOKE)):
        response = fed.api.call(method, path, anonymous=True)
        assert problem(response, 401)["type"].endswith(":unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert problem(fed.api.call(method, path, "spr_unknown"), 401)
    refusals = [(e.action.value, e.outcome.value, e.detail["path"]) for e in fed.api.events()]
    assert refusals == [("authenticate", "denied", WHOAMI)] * 2 + [("authenticate", "denied", REVOKE)] * 2


def test_revoke_ends_the_bearer_token_at_once(fed: Federation) -> None:
    fed.trust("ci")
    bearer = fed.issued(fed.issuer.mint())["access_token"]
    token_id = fed.whoami(bearer)["tokenId"]

    response = fed.api.call("POST", REVOKE, bearer)

    assert (response.status_code, response.get_json()) == (200, {})
    assert response.headers["Cache-Control"] == "no-store"
    assert problem(fed.api.call("GET", WHOAMI, bearer), 401)
    assert problem(fed.api.call("GET", "/v1/secrets/project/p1/x", bearer), 401)
    [revoked] = [e for e in fed.api.events() if e.action.value == "revoke"]
    assert (revoked.actor, revoked.outcome.value) == ("alice", "success")
    assert revoked.detail == {"own": True, "tokenId": token_id, "revoked": True}
    assert [t.revoked_at is not None for t in fed.container.token_service().list() if t.id == token_id] == [True]


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_revoke_names_another_token_and_answers_the_same_for_an_unknown_one(fed: Federation, encoding: str) -> None:
    other, other_id = fed.api.issue("carol")
    unknown = "spr_" + "x" * 43

    def revoke(token: str) -> tuple[int, object]:
        body = {"data": {"token": token}} if encoding == "form" else {"json": {"token": token}}
        response = fed.api.call("POST", REVOKE, **body)  # as alice
        return response.status_code, response.get_json()

    assert revoke(other) == (200, {})
    assert revoke(unknown) == (200, {})  # RFC 7009 §2.2: no telling whether it existed
    assert revoke("not even a token") == (200, {})
    assert problem(fed.api.call("GET", WHOAMI, other), 401)
    assert fed.whoami(fed.api.alice)["subject"] == "alice"  # the caller's own token is untouched
    details = [e.detail for e in fed.api.events() if e.action.value == "revoke"]
    assert details == [{"own": False, "tokenId": other_id, "revoked": True},
                       {"own": False, "tokenId": None, "revoked": False},
                       {"own": False, "tokenId": None, "revoked": False}]
    assert other not in repr(fed.api.events()) and unknown not in repr(fed.api.events())


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"json": {"token": 7}}, "token"),
    ({"json": {"token": "spr_x", "extra": 1}}, "body"),
    ({"json": ["spr_x"]}, "body"),
    ({"json": {"token": "s" * 4097}}, "token"),
    ({"data": "token=a", "content_type": "text/plain"}, "body"),
], ids=["not-a-string", "unknown-field", "not-an-object", "too-long", "other-content-type"])
def test_revoke_refuses_malformed_input_with_422(fed: Federation, kwargs: dict[str, object], field: str) -> None:
    body = problem(fed.api.call("POST", REVOKE, **kwargs), 422)
    assert field in body["errors"], body
    assert fed.whoami(fed.api.alice)["subject"] == "alice"


def test_the_openapi_document_describes_the_four_endpoints(fed: Federation) -> None:
    doc = fed.api.client.get("/v1/openapi.json").get_json()
    paths = doc["paths"]
    token = paths["/v1/auth/token"]["post"]
    assert token["security"] == [] and paths["/v1/auth/config"]["get"]["security"] == []
    assert "security" not in paths["/v1/auth/whoami"]["get"]  # the document's default: a bearer token
    assert list(token["requestBody"]["content"]) == ["application/x-www-form-urlencoded"]
    assert {"200", "400", "429", "503"} <= set(token["responses"])
    assert list(token["responses"]["400"]["content"]) == ["application/json"]
    assert set(paths["/v1/auth/revoke"]["post"]["requestBody"]["content"]) == {
        "application/x-www-form-urlencoded", "application/json"}
    schemas = doc["components"]["schemas"]
    assert {"grant_type", "subject_token", "subject_token_type"} <= set(schemas["TokenForm"]["properties"])
    assert set(schemas["WhoAmIAnswer"]["properties"]) == {
        "subject", "kind", "trust", "scopes", "projects", "keyPrefix", "tokenId", "expiresAt", "authTime",
        "authAgeSeconds"}
