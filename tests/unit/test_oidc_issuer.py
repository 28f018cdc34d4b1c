"""The test issuer speaks the real protocols: PyJWT verifies its tokens through its JWKS over HTTP, and the RFC 8628
device flow runs over urllib. Its forgeries are rejected by an ordinary verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.oidc.device import DEVICE_GRANT
from tests.oidc.issuer import OidcIssuer

ALGS = ["RS256", "ES256", "EdDSA"]


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as running:
        running.poll_interval = 0
        yield running


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _verify(issuer: OidcIssuer, token: str, audience: str = "sprongus", **options: Any) -> dict[str, Any]:
    key = jwt.PyJWKClient(f"{issuer.url}/jwks", cache_jwk_set=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key, audience=audience, issuer=issuer.url, algorithms=ALGS, **options)


def _start_device_flow(issuer: OidcIssuer, **extra: str) -> dict[str, Any]:
    status, body = _post(f"{issuer.url}/device/authorize", {"client_id": "sprongus-cli", "scope": "openid email",
                                                             **extra})
    assert status == 200, body
    return body


def _poll(issuer: OidcIssuer, device_code: str, client_id: str = "sprongus-cli") -> tuple[int, dict[str, Any]]:
    return _post(f"{issuer.url}/token", {"grant_type": DEVICE_GRANT, "device_code": device_code,
                                         "client_id": client_id})


def test_discovery_document_names_the_endpoints(issuer: OidcIssuer) -> None:
    status, doc = _get(f"{issuer.url}/.well-known/openid-configuration")
    assert status == 200 and issuer.discovery_fetches == 1
    assert issuer.url.startswith("http://127.0.0.1:") and not issuer.url.endswith("/")
    assert doc["issuer"] == issuer.url
    assert doc["jwks_uri"] == f"{issuer.url}/jwks"
    assert doc["token_endpoint"] == f"{issuer.url}/token"
    assert doc["device_authorization_endpoint"] == f"{issuer.url}/device/authorize"
    assert set(doc["id_token_signing_alg_values_supported"]) == set(ALGS)
    assert DEVICE_GRANT in doc["grant_types_supported"]
    status, jwks = _get(doc["jwks_uri"])
    assert status == 200 and issuer.jwks_fetches == 1
    assert {key["kid"] for key in jwks["keys"]} == set(issuer.published_kids)
    assert all("d" not in key for key in jwks["keys"])  # public halves only


@pytest.mark.parametrize("alg", ALGS)
def test_minted_tokens_verify_through_the_jwks(issuer: OidcIssuer, alg: str) -> None:
    token = issuer.mint({"sub": "svc"}, alg=alg, scope="read")
    assert jwt.get_unverified_header(token) == {"alg": alg, "typ": "JWT", "kid": issuer.current_kid(alg)}
    claims = _verify(issuer, token)
    assert claims["iss"] == issuer.url and claims["sub"] == "svc" and claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"] and claims["jti"]
    assert issuer.jwks_fetches == 1


def test_omit_lifetime_and_overrides(issuer: OidcIssuer) -> None:
    with pytest.raises(jwt.MissingRequiredClaimError):
        _verify(issuer, issuer.mint(omit=("exp",)), options={"require": ["exp"]})
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(issuer, issuer.mint(lifetime=-60))
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(issuer, issuer.mint(aud="someone-else"))
    assert jwt.get_unverified_header(issuer.mint(headers={"typ": "at+jwt"}))["typ"] == "at+jwt"


def test_github_actions_and_kubernetes_shapes(issuer: OidcIssuer) -> None:
    gha = _verify(issuer, issuer.github_actions_token(run_id="7"))
    assert gha["sub"] == "repo:acme/shop:ref:refs/heads/main" and gha["repository_owner"] == "acme"
    assert gha["job_workflow_ref"].startswith("acme/shop/.github/workflows/") and gha["run_id"] == "7"
    prod = _verify(issuer, issuer.github_actions_token(environment="prod"))
    assert prod["sub"] == "repo:acme/shop:environment:prod" and prod["environment"] == "prod"
    k8s = _verify(issuer, issuer.kubernetes_token())
    assert k8s["sub"] == "system:serviceaccount:shop:worker" and k8s["aud"] == ["sprongus"]
    assert k8s["kubernetes.io"]["namespace"] == "shop" and k8s["kubernetes.io"]["serviceaccount"]["name"] == "worker"
    assert _verify(issuer, issuer.kubernetes_token())["kubernetes.io"]["serviceaccount"]["uid"] == \
        k8s["kubernetes.io"]["serviceaccount"]["uid"]


def test_rotation_keeps_or_drops_the_old_key(issuer: OidcIssuer) -> None:
    old_kid, old_token = issuer.kid, issuer.mint()
    new_kid = issuer.rotate()
    assert new_kid != old_kid and issuer.kid == new_kid
    assert {old_kid, new_kid} <= set(issuer.published_kids)
    assert jwt.get_unverified_header(issuer.mint())["kid"] == new_kid
    _verify(issuer, old_token)
    issuer.rotate(keep_old=False)
    assert new_kid not in issuer.published_kids and old_kid in issuer.published_kids
    with pytest.raises(jwt.PyJWKClientError):
        _verify(issuer, issuer.mint(kid=new_kid))  # the retired key still signs; nobody can verify it


def test_jwks_outage_and_delay(issuer: OidcIssuer) -> None:
    issuer.fail_jwks = True
    assert _get(f"{issuer.url}/jwks")[0] == 503
    with pytest.raises(jwt.PyJWKClientConnectionError):
        _verify(issuer, issuer.mint())
    issuer.fail_jwks, issuer.jwks_delay = False, 0.2
    started = time.monotonic()
    _verify(issuer, issuer.mint())
    assert time.monotonic() - started >= 0.2 and issuer.jwks_fetches == 3


def test_the_device_flow_end_to_end(issuer: OidcIssuer) -> None:
    issuer.poll_interval = 5
    grant = _start_device_flow(issuer, max_age="0", prompt="login")
    assert issuer.device_requests == [{"client_id": "sprongus-cli", "scope": "openid email", "max_age": "0",
                                       "prompt": "login"}]
    assert grant["interval"] == 5 and grant["expires_in"] == 600 and len(grant["user_code"]) == 9
    assert grant["verification_uri"] == f"{issuer.url}/device"
    assert grant["verification_uri_complete"].endswith(f"user_code={grant['user_code']}")
    assert _poll(issuer, grant["device_code"]) == (400, {"error": "authorization_pending"})
    issuer.slow_down_once = True
    assert _poll(issuer, grant["device_code"]) == (400, {"error": "slow_down"})
    assert _poll(issuer, grant["device_code"], client_id="intruder")[1]["error"] == "invalid_grant"
    before = int(time.time())
    assert issuer.approve(grant["user_code"].lower(), subject="bob", email="bob@example.com") == grant["user_code"]
    status, tokens = _poll(issuer, grant["device_code"])
    assert status == 200 and tokens["token_type"] == "Bearer" and tokens["access_token"] and tokens["expires_in"] > 0
    claims = _verify(issuer, tokens["id_token"], audience="sprongus-cli")
    assert claims["sub"] == "bob" and claims["email"] == "bob@example.com" and claims["iss"] == issuer.url
    assert before <= claims["auth_time"] <= claims["iat"] and {"exp", "nbf", "jti"} <= claims.keys()
    assert issuer.id_tokens == [tokens["id_token"]]
    assert _poll(issuer, grant["device_code"])[1]["error"] == "invalid_grant"  # redeemed once only
    assert issuer.token_polls == 5


def test_denied_expired_unknown_and_wrong_grant_type(issuer: OidcIssuer) -> None:
    denied = _start_device_flow(issuer)
    issuer.deny()
    assert _poll(issuer, denied["device_code"]) == (400, {"error": "access_denied"})
    with pytest.raises(LookupError):
        issuer.approve()  # nothing pending any more
    issuer.device_code_lifetime = 0.05
    expiring = _start_device_flow(issuer)
    time.sleep(0.06)
    assert _poll(issuer, expiring["device_code"]) == (400, {"error": "expired_token"})
    assert _poll(issuer, "no-such-code")[1]["error"] == "invalid_grant"
    status, body = _post(f"{issuer.url}/token", {"grant_type": "password", "client_id": "sprongus-cli"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    assert _post(f"{issuer.url}/device/authorize", {"scope": "openid"})[1]["error"] == "invalid_request"


def test_auto_approve_after_polls_and_waiting_for_a_request(issuer: OidcIssuer) -> None:
    issuer.auto_approve(subject="carol", after_polls=1)
    grant = _start_device_flow(issuer)
    assert issuer.wait_for_device_request(timeout=1) == grant["user_code"]
    assert _poll(issuer, grant["device_code"])[1]["error"] == "authorization_pending"
    status, tokens = _poll(issuer, grant["device_code"])
    assert status == 200 and _verify(issuer, tokens["id_token"], audience="sprongus-cli")["sub"] == "carol"
    issuer.auto_approve(subject=None)
    with pytest.raises(TimeoutError):
        issuer.wait_for_device_request(timeout=0.01)


def test_forged_tokens_are_rejected(issuer: OidcIssuer) -> None:
    unsigned = issuer.unsigned_token({"sub": "mallory"})
    assert unsigned.endswith(".") and jwt.get_unverified_header(unsigned)["alg"] == "none"
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(issuer, unsigned)
    confused = issuer.hs256_with_public_key({"sub": "mallory"})
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(issuer, confused)
    signing_input, _, signature = confused.rpartition(".")  # a verifier that trusts the header would accept it
    pem = jwt.PyJWKClient(f"{issuer.url}/jwks").get_signing_key(issuer.kid).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    foreign = issuer.foreign_token({"sub": "mallory"})
    assert jwt.get_unverified_header(foreign)["kid"] == issuer.kid
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(issuer, foreign)


def test_an_unknown_kid_verifies_once_published(issuer: OidcIssuer) -> None:
    token = issuer.unknown_kid_token({"sub": "svc"})
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid not in issuer.published_kids
    client = jwt.PyJWKClient(f"{issuer.url}/jwks", cooldown_duration=0)  # PyJWT refetches an unknown kid at most
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        client.get_signing_key_from_jwt(token)
    assert issuer.publish_pending_keys() == [kid]
    claims = jwt.decode(token, client.get_signing_key_from_jwt(token), audience="sprongus", issuer=issuer.url,
                        algorithms=ALGS)  # once per cooldown (30 s by default)
    assert claims["sub"] == "svc"


def test_explicit_start_and_stop() -> None:
    issuer = OidcIssuer().start()
    try:
        assert _get(f"{issuer.url}/jwks")[0] == 200
        assert _get(f"{issuer.url}/nowhere")[0] == 404
    finally:
        issuer.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{issuer.url}/jwks", timeout=1)
