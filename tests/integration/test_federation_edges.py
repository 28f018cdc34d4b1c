"""Token exchange edges an attack sweep found: signed time claims of a thousand digits (a 500 with no audit row,
from math.isfinite's OverflowError), and a trust's JWKS URL with a space or a line break (accepted, then a 500 on
every exchange from http.client's InvalidURL)."""

from __future__ import annotations

from typing import Any

import pytest

from sprongus.domain.errors import ValidationError
from tests.e2e.api.conftest import problem
from tests.integration.federation import (
    Federation,
    assert_invalid_grant,
    denials,
    fed_fixture,  # noqa: F401  (fixture)
    issuer_fixture,  # noqa: F401  (fixture)
)

HUGE = 10**400


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "auth_time"])
def test_a_time_claim_of_a_thousand_digits_is_an_invalid_grant_audited(fed: Federation, claim: str) -> None:
    fed.trust("ci")
    claims: dict[str, Any] = {claim: HUGE}
    response = fed.exchange(fed.mint(**claims))
    if claim == "auth_time":  # an unusable auth_time is "long ago": the exchange itself is fine
        assert response.status_code == 200, response.get_data(as_text=True)
        return
    assert_invalid_grant(response)
    assert len(denials(fed.api)) == 1  # the refusal has its audit row


@pytest.mark.parametrize("url", ["{base}/jwks x", "{base}/jwks\nx", "{base}/jwks\t", "{base}/jẃks"])
def test_a_jwks_url_a_request_cannot_carry_is_refused_when_the_trust_is_added(fed: Federation, url: str) -> None:
    with pytest.raises(ValidationError, match="jwks"):
        fed.trust("ci", jwks_url=url.format(base=fed.issuer.url))


def test_a_discovered_jwks_uri_a_request_cannot_carry_is_an_outage(fed: Federation,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fed.trust("ci")
    discovery = fed.issuer.discovery

    def broken() -> dict[str, Any]:
        return {**discovery(), "jwks_uri": fed.issuer.url + "/jwks\nX-Injected: 1"}

    monkeypatch.setattr(fed.issuer, "discovery", broken)
    body = problem(fed.exchange(fed.mint()), 503)
    assert "X-Injected" not in str(body)


@pytest.mark.parametrize(("verified", "admitted"), [(True, True), (False, False), ("true", True), (None, False),
                                                    (1, False)])
def test_an_email_trust_can_require_the_providers_email_verified(fed: Federation, verified: Any,
                                                                 admitted: bool) -> None:
    """A JSON boolean claim matches a rule by its JSON spelling: `--claim email_verified=true`. Before, a boolean
    matched no rule, so an email trust could not require it, and took anyone's unverified `@example.com` email."""
    fed.trust("people", claims=["email=*@example.com", "email_verified=true"], subject_claim="email")
    claims: dict[str, Any] = {"email": "ceo@example.com"}
    if verified is not None:
        claims["email_verified"] = verified
    response = fed.exchange(fed.mint(**claims))
    if admitted:
        assert response.status_code == 200, response.get_data(as_text=True)
    else:
        assert_invalid_grant(response)
