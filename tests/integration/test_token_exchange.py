"""The token exchange end to end: a real OIDC issuer over HTTP, the Flask app of a container built from Settings.

Shapes of real JWTs (GitHub Actions, Kubernetes), every key type, key rotation, trust choice, the TTL and auth-time
rules, step-up by kind, the request errors of RFC 6749, rate limits and outages; the rules each JWT must meet are in
test_token_exchange_rules.py, the small auth endpoints in test_auth_endpoints.py.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import jwt as pyjwt
import pytest

from sprongus.adapters import jwks_gate
from tests.e2e.api.conftest import problem, www_authenticate
from tests.harness import CANARY
from tests.integration.federation import (
    ACCESS_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    Federation,
    assert_invalid_grant,
    denials,
    exchange_form,
    fed_fixture,  # noqa: F401  (fixture)
    issuer_fixture,  # noqa: F401  (fixture)
    make_federation,
    oauth_error,
)
from tests.oidc.issuer import OidcIssuer

SECRET = "/v1/secrets/project/p1/db.password"


def _claims(token: str) -> dict[str, object]:
    return dict(pyjwt.decode(token, options={"verify_signature": False}))


def test_a_github_actions_jwt_becomes_a_workload_token(fed: Federation) -> None:
    fed.trust("gha-shop", claims=["repository=acme/shop", "ref=refs/heads/*"], subject_prefix="gha:",
              ttl_seconds=600)
    token = fed.issuer.github_actions_token(repository="acme/shop", ref="refs/heads/main")

    response = fed.exchange(token)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    assert body["access_token"].startswith("spr_") and body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 600,
                                                                       "secrets:read secrets:reveal")
    me = fed.whoami(body["access_token"])
    assert me["subject"] == "gha:repo:acme/shop:ref:refs/heads/main"
    assert (me["kind"], me["trust"], me["projects"], me["keyPrefix"]) == ("workload", "gha-shop", ["p1"], "")
    [success] = [e for e in fed.api.events() if e.action.value == "exchange"]
    assert (success.actor, success.outcome.value, success.client_address) == (me["subject"], "success",
                                                                              "198.51.100.7")
    assert success.detail == {"trust": "gha-shop", "tokenId": me["tokenId"], "kind": "workload", "expiresIn": 600}


def test_the_glob_on_the_ref_refuses_another_branch(fed: Federation) -> None:
    fed.trust("gha-shop", claims=["repository=acme/shop", "ref=refs/heads/main"], subject_prefix="gha:")
    assert_invalid_grant(fed.exchange(fed.issuer.github_actions_token(ref="refs/heads/feature")))
    assert_invalid_grant(fed.exchange(fed.issuer.github_actions_token(repository="acme/shopping")))
    assert denials(fed.api)[-1] == {"trust": "gha-shop", "reason": "claims fail the rules of trust gha-shop"}


def test_a_kubernetes_service_account_jwt_with_a_list_audience(fed: Federation) -> None:
    fed.trust("k8s-shop", claims=["sub=system:serviceaccount:shop:*"], subject_prefix="k8s:", key_prefix="shop.")
    token = fed.issuer.kubernetes_token(namespace="shop", service_account="worker")
    assert _claims(token)["aud"] == ["sprongus"]

    me = fed.whoami(fed.issued(token)["access_token"])

    assert (me["subject"], me["keyPrefix"]) == ("k8s:system:serviceaccount:shop:worker", "shop.")
    assert_invalid_grant(fed.exchange(fed.issuer.kubernetes_token(namespace="billing")))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_every_key_type_verifies(fed: Federation, alg: str) -> None:
    fed.trust("ci")
    assert fed.exchange(fed.issuer.mint(alg=alg)).status_code == 200
    assert fed.exchange(fed.issuer.mint(alg=alg), token_type=ID_TOKEN_TYPE).status_code == 200


def test_key_rotation_new_kid_is_fetched_and_a_withdrawn_key_stops_verifying(fed: Federation) -> None:
    fed.trust("ci")
    old_kid = fed.issuer.kid
    signed_by_old = fed.issuer.mint()
    assert fed.exchange(fed.issuer.mint()).status_code == 200
    new_kid = fed.issuer.rotate(keep_old=True)
    assert fed.exchange(fed.issuer.mint()).status_code == 200  # the new kid: one refetch
    assert fed.exchange(signed_by_old).status_code == 200  # the old key is still published
    assert (fed.issuer.jwks_fetches, _header_kid(fed.issuer.mint())) == (2, new_kid)

    fed.issuer.rotate(keep_old=False)
    fed.issuer.unpublish(old_kid)
    fed.api.clock.advance(15 * 60)  # the cached key set has aged out
    assert_invalid_grant(fed.exchange(fed.mint(kid=old_kid)))
    assert fed.exchange(fed.mint()).status_code == 200


def _header_kid(token: str) -> str:
    return str(pyjwt.get_unverified_header(token)["kid"])


def test_keys_come_from_the_trusts_jwks_url_or_from_discovery(issuer: OidcIssuer) -> None:
    pinned = make_federation(issuer)
    pinned.trust("ci", jwks_url=issuer.url + "/jwks")
    assert pinned.exchange(issuer.mint()).status_code == 200
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (0, 1)

    discovered = make_federation(issuer)
    discovered.trust("ci")
    assert discovered.exchange(issuer.mint()).status_code == 200
    assert discovered.exchange(issuer.mint()).status_code == 200
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 2)  # both cached after the first exchange


def test_the_first_trust_by_name_whose_audience_and_claims_match_wins(fed: Federation) -> None:
    fed.trust("a-other-audience", audience="not-us", scopes=["secrets:admin"])
    fed.trust("b-other-repo", claims=["repository=acme/billing"], scopes=["secrets:write"])
    fed.trust("c-match", claims=["repository=acme/*"], scopes=["secrets:read"])
    fed.trust("d-match-too", scopes=["secrets:reveal"])

    me = fed.whoami(fed.issued(fed.issuer.mint(repository="acme/shop"))["access_token"])

    assert (me["trust"], me["scopes"]) == ("c-match", ["secrets:read"])


def test_ttl_is_the_trusts_for_workloads_and_at_most_the_jwts_life_for_people(fed: Federation) -> None:
    fed.trust("svc", ttl_seconds=12 * 3600, claims=["who=svc"])
    fed.trust("people", kind="user", ttl_seconds=3600, claims=["who=person"])
    fed.trust("short", kind="user", ttl_seconds=120, claims=["who=brief"])
    now = int(fed.api.clock.now().timestamp())

    assert fed.issued(fed.issuer.mint(who="svc", exp=now + 300))["expires_in"] == 12 * 3600
    person = fed.issued(fed.issuer.mint(who="person", exp=now + 300))
    assert person["expires_in"] == 300
    assert fed.issued(fed.issuer.mint(who="brief", exp=now + 300))["expires_in"] == 120
    expires = datetime.fromisoformat(fed.whoami(person["access_token"])["expiresAt"].replace("Z", "+00:00"))
    assert expires == datetime.fromtimestamp(now + 300, UTC)


def test_auth_time_is_the_jwts_auth_time_else_its_iat(fed: Federation) -> None:
    fed.trust("people", kind="user")
    now = int(fed.api.clock.now().timestamp())
    signed_in = fed.whoami(fed.issued(fed.issuer.mint(auth_time=now - 600))["access_token"])
    issued = fed.whoami(fed.issued(fed.issuer.mint(iat=now - 30))["access_token"])
    assert (signed_in["authTime"], signed_in["authAgeSeconds"]) == (_iso(now - 600), 600)
    assert (issued["authTime"], issued["authAgeSeconds"]) == (_iso(now - 30), 30)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def test_a_workload_reveals_with_an_old_auth_time_while_a_person_must_step_up(fed: Federation) -> None:
    fed.api.seed("project:p1", "db.password", CANARY)
    fed.trust("svc", claims=["who=svc"])
    fed.trust("people", kind="user", claims=["who=person"])
    long_ago = int(fed.api.clock.now().timestamp()) - 3600  # older than SPRONGUS_REVEAL_MAX_AGE (900 s)
    workload = fed.issued(fed.issuer.mint(who="svc", auth_time=long_ago))["access_token"]
    person = fed.issued(fed.issuer.mint(who="person", auth_time=long_ago))["access_token"]

    revealed = fed.api.reveal(SECRET, workload)
    refused = fed.api.reveal(SECRET, person)

    assert revealed.status_code == 200 and revealed.get_json()["value"] == CANARY
    body = problem(refused, 401)
    assert body["type"].endswith(":insufficient-user-authentication")
    assert 'error="insufficient_user_authentication"' in www_authenticate(refused)
    assert CANARY not in refused.get_data(as_text=True)
    fresh = fed.issued(fed.issuer.mint(who="person"))["access_token"]  # signed in again: iat is now
    assert fed.api.reveal(SECRET, fresh).status_code == 200


@pytest.mark.parametrize(("form", "error", "words"), [
    ({"grant_type": "client_credentials", "subject_token": "x", "subject_token_type": "x"},
     "unsupported_grant_type", "grant_type"),
    ({"subject_token": "x"}, "invalid_request", "grant_type: is required"),
    (exchange_form(None), "invalid_request", "subject_token: is required"),
    (exchange_form("x", token_type=None), "invalid_request", "subject_token_type"),
    (exchange_form("x", token_type="urn:ietf:params:oauth:token-type:saml2"), "invalid_request",
     "subject_token_type"),
    (exchange_form("x" * (16 * 1024 + 1)), "invalid_request", "at most 16384 characters"),
], ids=["other-grant", "no-grant", "no-subject-token", "no-token-type", "saml-token-type", "oversized-token"])
def test_malformed_requests_answer_their_rfc_6749_error(fed: Federation, form: dict[str, str], error: str,
                                                        words: str) -> None:
    fed.trust("ci")
    assert words in oauth_error(fed.post(form), error)
    assert denials(fed.api)[-1]["trust"] is None
    assert fed.issuer.jwks_fetches == 0


def test_an_oversized_token_is_refused_without_being_parsed(fed: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    fed.trust("ci")
    verifier = fed.container.jwt_verifier()
    parsed: list[str] = []
    monkeypatch.setattr(verifier, "issuer_of", lambda token: parsed.append(token) or "")
    huge = fed.issuer.mint(padding="p" * 17000)

    oauth_error(fed.exchange(huge), "invalid_request")

    assert parsed == [] and fed.issuer.jwks_fetches == 0


@pytest.mark.parametrize(("body", "content_type"), [
    ("grant_type=a&grant_type=b&subject_token=x&subject_token_type=y", "application/x-www-form-urlencoded"),
    ('{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange"}', "application/json"),
    ("x=" + "a" * (64 * 1024), "application/x-www-form-urlencoded"),
    ("grant_type=%ff", "application/x-www-form-urlencoded"),
    ("[" * 100 + "]" * 100, "application/json"),
], ids=["repeated-parameter", "json-body", "body-over-64-kib", "not-utf-8", "deep-json"])
def test_a_body_that_is_not_one_form_is_an_invalid_request(fed: Federation, body: str, content_type: str) -> None:
    oauth_error(fed.post(data=body, content_type=content_type), "invalid_request")


def test_the_exchange_is_rate_limited_per_address_before_any_verification(issuer: OidcIssuer) -> None:
    fed = make_federation(issuer, {"SPRONGUS_RATE_LIMIT_EXCHANGE": "3/minute"})
    fed.trust("ci")
    for _ in range(3):
        assert_invalid_grant(fed.exchange("garbage"))

    limited = fed.exchange(issuer.mint())

    body = problem(limited, 429)
    assert body["type"].endswith(":rate-limited")
    assert limited.headers["RateLimit-Policy"] == '"exchange";q=3;w=60' and "Retry-After" in limited.headers
    assert issuer.jwks_fetches == 0  # the JWT was not even looked at
    assert fed.exchange(issuer.mint(), address="203.0.113.9").status_code == 200  # another client address
    outcomes = [e.outcome.value for e in fed.api.events() if e.action.value == "exchange"]
    assert outcomes == ["denied"] * 3 + ["success"]  # past the limit, no row: anyone can send one


def test_an_unreachable_jwks_is_a_503_outage_not_invalid_grant(fed: Federation,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwks_gate, "FAILURE_SECONDS", 0.5)
    fed.trust("ci")
    token = fed.issuer.mint()
    fed.issuer.fail_jwks = True

    response = fed.exchange(token)

    body = problem(response, 503)
    assert body["type"].endswith(":unavailable") and "error" not in body
    assert [e.outcome.value for e in fed.api.events()] == ["error"]
    fetched = fed.issuer.jwks_fetches
    fed.issuer.fail_jwks = False
    problem(fed.exchange(token), 503)  # within the failure's window: answered at once, without a fetch
    assert fed.issuer.jwks_fetches == fetched
    time.sleep(0.6)
    assert fed.exchange(token).status_code == 200  # nothing was spent: the same JWT works once the IdP is back


def test_an_unreachable_issuer_and_a_slow_one_are_503_too(fed: Federation) -> None:
    fed.trust("gone", issuer="http://127.0.0.1:9")  # discovery: connection refused
    problem(fed.exchange(fed.issuer.mint(iss="http://127.0.0.1:9")), 503)

    fed.trust("ci", jwks_url=fed.issuer.url + "/jwks")
    fed.issuer.jwks_delay = 5.5  # past the 5 s fetch timeout
    problem(fed.exchange(fed.issuer.mint()), 503)


def test_a_discovery_document_naming_another_issuer_is_refused(fed: Federation,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fed.trust("ci")
    real = fed.issuer.discovery
    monkeypatch.setattr(fed.issuer, "discovery", lambda: {**real(), "issuer": "https://evil.example"})
    problem(fed.exchange(fed.issuer.mint()), 503)
    assert fed.issuer.jwks_fetches == 0


def test_no_jwt_and_no_issued_token_in_logs_audit_rows_or_error_bodies(fed: Federation,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fed.trust("ci", claims=["repository=acme/*"], ttl_seconds=3600)
    good = fed.issuer.mint(repository="acme/shop")
    forged = [fed.issuer.mint(repository="evil/x"), fed.issuer.foreign_token(), fed.issuer.unsigned_token(),
              fed.issuer.mint(aud="x"), good]  # the last one: a replay of `good`
    issued = fed.issued(good)["access_token"]
    bodies = [fed.exchange(token).get_data(as_text=True) for token in forged]
    fed.issuer.fail_jwks = True
    fed.api.clock.advance(16 * 60)  # the key cache expired: the next exchange fetches, and fails
    bodies.append(fed.exchange(fed.mint(repository="acme/shop")).get_data(as_text=True))
    assert fed.api.call("GET", "/v1/auth/whoami", issued).status_code == 200

    everything = "\n".join([caplog.text, repr(fed.api.events()), *bodies])
    for secret in [issued, *forged]:
        assert secret not in everything
        signature = secret.split(".")[-1]
        assert not signature or signature not in everything  # not even a JWT's signature
    assert "token exchange refused" in caplog.text  # the reasons are logged, for the operator


def test_of_concurrent_exchanges_of_one_jwt_exactly_one_wins(fed: Federation) -> None:
    fed.trust("ci")
    token = fed.issuer.mint()
    fed.exchange(fed.issuer.mint())  # keys fetched and cached: the race below is the replay store's alone
    barrier = threading.Barrier(8)

    def attempt() -> int:
        client = fed.api.app.test_client()
        barrier.wait()
        return client.post("/v1/auth/token", data=exchange_form(token)).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: attempt(), range(8)))

    assert statuses == [200] + [400] * 7


def test_an_iss_with_one_trailing_slash_matches_its_trust(fed: Federation) -> None:
    """Trusts are stored without a trailing slash, while some providers' `iss` carries one (Auth0's)."""
    fed.trust("ci", issuer=fed.issuer.url + "/")
    assert fed.container.trust_ops().list()[0].issuer == fed.issuer.url
    assert fed.exchange(fed.issuer.mint(iss=fed.issuer.url + "/")).status_code == 200
