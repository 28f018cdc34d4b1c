"""Every JWT rule of the token exchange has a JWT that breaks it, and every one answers the same `invalid_grant`
(no oracle), audited as denied with its precise reason and without the JWT. Real issuer over HTTP, real app."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.federation import (
    Federation,
    assert_invalid_grant,
    denials,
    fed_fixture,  # noqa: F401  (fixture)
    issuer_fixture,  # noqa: F401  (fixture)
)
from tests.oidc.issuer import OidcIssuer, SigningKey

Forge = Callable[[Federation], str]


def _at(f: Federation, seconds: int = 0) -> int:
    """A time `seconds` from the server's clock (set to the real time when the app was made, then moved only by
    the tests)."""
    return int(f.api.clock.now().timestamp()) + seconds


def _other_issuer_signs_for_ours(f: Federation) -> str:
    with OidcIssuer() as other:
        return other.mint(iss=f.issuer.url)


def _rs384(f: Federation) -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return pyjwt.encode(f.issuer.claims(), private, algorithm="RS384", headers={"kid": f.issuer.kid})


def _es256_under_the_rsa_kid(f: Federation) -> str:
    return SigningKey.generate("ES256", kid=f.issuer.kid).sign(f.issuer.claims())


# (id, forge, words of the audited reason). Each JWT breaks exactly one rule; a trust "ci" for the issuer, audience
# "sprongus", claim rule repository=acme/*, is in place.
CASES: list[tuple[str, Forge, str]] = [
    ("wrong-iss", lambda f: f.issuer.mint(iss=f.issuer.url + "/elsewhere"), "no trust for the issuer"),
    ("iss-of-another-host", lambda f: f.issuer.mint(iss="https://idp.example.com"), "no trust for the issuer"),
    ("iss-with-a-nul", lambda f: f.issuer.mint(iss=f.issuer.url + "\x00"), "no trust for the issuer"),
    ("iss-with-a-trailing-slash-too-many", lambda f: f.issuer.mint(iss=f.issuer.url + "//"), "iss differs"),
    ("signed-by-another-issuer", _other_issuer_signs_for_ours, "kid not in the issuer's keys"),
    ("wrong-aud", lambda f: f.issuer.mint(aud="someone-else"), "aud names no trust"),
    ("aud-list-without-ours", lambda f: f.issuer.mint(aud=["a", "b"]), "aud names no trust"),
    ("no-aud", lambda f: f.issuer.mint(omit=("aud",)), "aud names no trust"),
    ("expired", lambda f: f.issuer.mint(exp=_at(f, -1)), "expired"),
    ("expired-long-ago", lambda f: f.issuer.mint(iat=_at(f, -7200), nbf=_at(f, -7200), exp=_at(f, -3600)),
     "expired"),
    ("no-exp", lambda f: f.issuer.mint(omit=("exp",)), "no exp"),
    ("exp-not-a-number", lambda f: f.issuer.mint(exp="tomorrow"), "exp is not a time"),
    ("exp-nan", lambda f: f.issuer.mint(exp=float("nan")), "exp is not a time"),
    ("exp-beyond-9999", lambda f: f.issuer.mint(exp=10**15), "exp is not a time"),
    ("nbf-in-90s", lambda f: f.issuer.mint(nbf=_at(f, 90)), "not valid yet"),
    ("iat-in-the-future", lambda f: f.issuer.mint(iat=_at(f, 90)), "issued in the future"),
    ("alg-none", lambda f: f.issuer.unsigned_token(), "alg not allowed"),
    ("hs256-with-the-public-key", lambda f: f.issuer.hs256_with_public_key(), "alg not allowed"),
    ("rs384", _rs384, "alg not allowed"),
    ("es256-signature-under-an-rsa-kid", _es256_under_the_rsa_kid, "does not match the key"),
    ("foreign-key-known-kid", lambda f: f.issuer.foreign_token(), "bad signature"),
    ("foreign-eddsa-key-known-kid", lambda f: f.issuer.foreign_token(alg="EdDSA"), "bad signature"),
    ("claim-fails-its-glob", lambda f: f.issuer.mint(repository="evil/shop"), "claims fail the rules of trust ci"),
    ("claim-missing", lambda f: f.issuer.mint(), "claims fail the rules of trust ci"),
    ("claim-not-a-string", lambda f: f.issuer.mint(repository=["acme/shop"]), "claims fail the rules"),
    ("subject-claim-missing", lambda f: f.issuer.mint(repository="acme/shop", omit=("sub",)), "subject claim sub"),
    ("subject-with-whitespace", lambda f: f.issuer.mint(repository="acme/shop", sub="a b"), "printable"),
    ("subject-too-long", lambda f: f.issuer.mint(repository="acme/shop", sub="s" * 201), "printable"),
    ("not-a-jwt", lambda f: "not-a-jwt", "malformed JWT header"),
    ("three-garbage-parts", lambda f: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "malformed JWT payload"),
    ("no-iss", lambda f: f.issuer.mint(omit=("iss",)), "no iss claim"),
    ("tampered-payload", lambda f: _tampered(f.issuer.mint(repository="acme/shop")), "bad signature"),
]


def _tampered(token: str) -> str:
    """The payload changed after signing (the signature is the issuer's, over another payload)."""
    header, _, signature = token.split(".")
    claims = {**pyjwt.decode(token, options={"verify_signature": False}), "repository": "acme/admin"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize(("forge", "reason"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_every_broken_rule_is_the_same_invalid_grant_audited_with_its_reason(fed: Federation, forge: Forge,
                                                                            reason: str) -> None:
    fed.trust("ci", claims=["repository=acme/*"])
    forged = forge(fed)

    response = fed.exchange(forged)

    assert_invalid_grant(response)
    [denied] = denials(fed.api)
    assert reason in denied["reason"], denied
    assert forged not in repr(fed.api.events())
    # The same JWT rule obeyed: the kit and the trust are sound, so the refusal above was the broken rule's.
    assert fed.exchange(fed.issuer.mint(repository="acme/shop")).status_code == 200


def test_alg_none_and_hs256_are_refused_before_any_key_is_fetched(fed: Federation) -> None:
    fed.trust("ci")
    for forged in (fed.issuer.unsigned_token(), fed.issuer.hs256_with_public_key(), _rs384(fed)):
        assert_invalid_grant(fed.exchange(forged))
    assert (fed.issuer.jwks_fetches, fed.issuer.discovery_fetches) == (0, 0)


def test_nbf_and_iat_within_60_seconds_are_honoured_with_leeway(fed: Federation) -> None:
    fed.trust("ci")
    assert fed.exchange(fed.issuer.mint(nbf=_at(fed, 50))).status_code == 200
    assert fed.exchange(fed.issuer.mint(iat=_at(fed, 50))).status_code == 200


def test_exp_has_no_leeway(fed: Federation) -> None:
    fed.trust("ci")
    token = fed.issuer.mint(lifetime=120)
    fed.api.clock.advance(121)
    assert_invalid_grant(fed.exchange(token))
    assert denials(fed.api)[-1]["reason"] == "expired"


def test_the_fixed_clock_decides_expiry_not_the_wall_clock(fed: Federation) -> None:
    """Times are checked against the injected Clock: a JWT still valid by the wall clock is expired for the
    server once its clock has moved past exp."""
    fed.trust("ci")
    fed.api.clock.advance(600)
    assert_invalid_grant(fed.exchange(fed.issuer.mint(lifetime=300)))


def test_a_replayed_jwt_or_jti_is_refused(fed: Federation) -> None:
    fed.trust("ci")
    token = fed.issuer.mint()
    assert fed.exchange(token).status_code == 200
    assert_invalid_grant(fed.exchange(token))
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    assert_invalid_grant(fed.exchange(fed.issuer.mint(jti=jti)))  # another JWT, the same id
    assert [d["reason"] for d in denials(fed.api)] == ["already exchanged (replay)"] * 2
    assert fed.exchange(fed.issuer.mint()).status_code == 200  # a new jti is fine


def test_a_jwt_without_jti_is_exchanged_once_too(fed: Federation) -> None:
    fed.trust("ci")
    token = fed.issuer.mint(omit=("jti",))
    assert fed.exchange(token).status_code == 200
    assert_invalid_grant(fed.exchange(token))
    assert fed.exchange(fed.issuer.mint(omit=("jti",), sub="other")).status_code == 200


def test_an_issuer_without_a_trust_is_refused(fed: Federation) -> None:
    with OidcIssuer() as trusted:
        fed.trust("elsewhere", issuer=trusted.url)
        assert_invalid_grant(fed.exchange(fed.issuer.mint()))
    assert denials(fed.api)[-1] == {"trust": None, "reason": "no trust for the issuer"}
    assert fed.issuer.jwks_fetches == 0  # no trust, no fetch


def test_an_unknown_kid_refetches_once_a_minute_at_most(fed: Federation) -> None:
    fed.trust("ci")
    assert fed.exchange(fed.issuer.mint()).status_code == 200
    assert fed.issuer.jwks_fetches == 1

    pending = fed.issuer.unknown_kid_token()
    assert_invalid_grant(fed.exchange(pending))
    assert fed.issuer.jwks_fetches == 2  # refetched once for the unknown kid
    assert_invalid_grant(fed.exchange(fed.issuer.unknown_kid_token()))
    assert fed.issuer.jwks_fetches == 2  # a second unknown kid within the minute: no fetch

    fed.issuer.publish_pending_keys()
    fed.api.clock.advance(30)
    assert_invalid_grant(fed.exchange(fed.issuer.unknown_kid_token()))
    assert fed.issuer.jwks_fetches == 2  # still within the minute
    fed.api.clock.advance(31)
    assert fed.exchange(pending).status_code == 200  # the minute is over: refetched, and now published
    assert fed.issuer.jwks_fetches == 3
    assert {d["reason"] for d in denials(fed.api)} == {
        "kid not in the issuer's keys, even refetched",
        "kid not in the issuer's keys (refetched less than a minute ago)"}


def test_an_unknown_kid_on_the_first_fetch_counts_as_the_minutes_refetch(fed: Federation) -> None:
    fed.trust("ci")
    assert_invalid_grant(fed.exchange(fed.issuer.unknown_kid_token()))
    assert_invalid_grant(fed.exchange(fed.issuer.unknown_kid_token()))
    assert fed.issuer.jwks_fetches == 1


def test_a_foreign_key_under_a_known_kid_makes_no_refetch(fed: Federation) -> None:
    fed.trust("ci")
    assert fed.exchange(fed.issuer.mint()).status_code == 200
    for _ in range(3):
        assert_invalid_grant(fed.exchange(fed.issuer.foreign_token()))
    assert fed.issuer.jwks_fetches == 1
