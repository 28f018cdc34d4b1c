"""Token-exchange test kit: a real OIDC issuer on loopback, the Flask app of a container built from Settings with a
manual clock set to the real time (the issuer stamps its JWTs with real time), and helpers for the token endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.test import TestResponse

from sprongus.adapters.memory import ManualClock
from sprongus.domain.trust import Trust
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container
from tests.e2e.api.conftest import ROOMY_LIMITS, ApiClient, container_with_clock
from tests.oidc.issuer import OidcIssuer

TOKEN = "/v1/auth/token"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
READ, REVEAL = "secrets:read", "secrets:reveal"
ADDRESS = "198.51.100.7"
INVALID_GRANT = {"error": "invalid_grant",
                 "error_description": "the subject token is invalid, expired, already used or not trusted"}


def real_now() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def exchange_form(subject_token: str | None, *, grant_type: str | None = GRANT,
                  token_type: str | None = JWT_TYPE) -> dict[str, str]:
    form = {"grant_type": grant_type, "subject_token": subject_token, "subject_token_type": token_type}
    return {name: value for name, value in form.items() if value is not None}


class Federation:
    """An app whose trusts point at `issuer`; `exchange()` posts a JWT to the token endpoint."""

    def __init__(self, issuer: OidcIssuer, api: ApiClient) -> None:
        self.issuer = issuer
        self.api = api

    @property
    def container(self) -> Container:
        return self.api.container

    def trust(self, name: str = "ci", *, audience: str = "sprongus", scopes: Sequence[str] = (READ, REVEAL),
              projects: Sequence[str] = ("p1",), issuer: str | None = None, **options: Any) -> Trust:
        return self.container.trust_ops().add(name, issuer or self.issuer.url, audience, list(scopes),
                                              projects=list(projects), **options)

    def mint(self, lifetime: int = 300, **claims: Any) -> str:
        """A JWT stamped with the server's clock (for tests that move it far from the real time)."""
        now = int(self.api.clock.now().timestamp())
        return self.issuer.mint(**{"iat": now, "nbf": now, "exp": now + lifetime, **claims})

    def post(self, data: Any = None, *, address: str = ADDRESS, **kwargs: Any) -> TestResponse:
        return self.api.client.post(TOKEN, data=data, environ_base={"REMOTE_ADDR": address}, **kwargs)

    def exchange(self, subject_token: str | None, *, address: str = ADDRESS, **form: Any) -> TestResponse:
        return self.post(exchange_form(subject_token, **form), address=address)

    def issued(self, subject_token: str, **form: Any) -> dict[str, Any]:
        """The 200 body of a successful exchange."""
        response = self.exchange(subject_token, **form)
        assert response.status_code == 200, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    def whoami(self, bearer: str) -> dict[str, Any]:
        response = self.api.call("GET", "/v1/auth/whoami", bearer)
        assert response.status_code == 200, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body


def assert_invalid_grant(response: TestResponse) -> None:
    """The one answer for every JWT problem: no oracle in the status, body or headers."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data(as_text=True)) == INVALID_GRANT
    assert response.headers["Cache-Control"] == "no-store"
    assert "WWW-Authenticate" not in response.headers


def oauth_error(response: TestResponse, error: str) -> str:
    """The error_description of an RFC 6749 §5.2 answer with this error code."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "error_description"} and body["error"] == error, body
    assert response.headers["Cache-Control"] == "no-store"
    return str(body["error_description"])


def denials(api: ApiClient) -> list[dict[str, Any]]:
    """The detail of every denied exchange, oldest first."""
    return [e.detail for e in api.events() if e.action.value == "exchange" and e.outcome.value == "denied"]


def make_federation(issuer: OidcIssuer, env: dict[str, str] | None = None,
                    clock: ManualClock | None = None) -> Federation:
    settings = {"SPRONGUS_ENV": "test", **ROOMY_LIMITS, "SPRONGUS_RATE_LIMIT_EXCHANGE": "1000/minute",
                **(env or {})}
    clock = clock or real_now()
    return Federation(issuer, ApiClient(container_with_clock(Settings.from_mapping(settings), clock), clock, None))


# Imported by the test modules under these names (`issuer` and `fed` are what tests ask for).
@pytest.fixture(name="issuer")
def issuer_fixture() -> Iterator[OidcIssuer]:
    with OidcIssuer() as running:
        yield running


@pytest.fixture(name="fed")
def fed_fixture(issuer: OidcIssuer) -> Iterator[Federation]:
    federation = make_federation(issuer)
    yield federation
    federation.api.close()
