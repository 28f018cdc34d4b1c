"""REST API fixtures: the Flask app (test client) on an in-memory or a SQLite container, with a manual clock.

The clock is overridden before any service is resolved, so token expiry, `auth_time` (recent authentication) and
single-use token expiry move only when a test advances it. Rate limits keep real time (the `limits` library).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sprongus.adapters.memory import ManualClock
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditEvent
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.api import create_app
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import PORTS, Container
from sprongus.entrypoints.profiles import container_config

PROBLEM_JSON = "application/problem+json"
READ, WRITE, REVEAL, ADMIN = "secrets:read", "secrets:write", "secrets:reveal", "secrets:admin"
TENANT_SCOPES = (READ, WRITE, REVEAL)
KEY = "/v1/secrets/project/p1/db.password"
# Generous limits: only the rate-limit tests set tight ones.
ROOMY_LIMITS = {"SPRONGUS_RATE_LIMIT_REVEAL": "1000/minute", "SPRONGUS_RATE_LIMIT_WRITE": "10000/minute",
                "SPRONGUS_RATE_LIMIT_REDEEM": "1000/minute", "SPRONGUS_RATE_LIMIT_UNAUTHENTICATED": "1000/minute"}
SQLITE_KEYS = {"SPRONGUS_MASTER_KEYS": "mk1:" + base64.b64encode(bytes(range(32))).decode(),
               "SPRONGUS_HMAC_KEYS": "hk1:" + base64.b64encode(bytes(range(32, 64))).decode()}


def container_with_clock(settings: Settings, clock: ManualClock) -> Container:
    """build_container, with the clock replaced before anything that reads it is resolved."""
    container = Container()
    container.config.from_dict(container_config(settings))
    container.clock.override(providers.Object(clock))
    for port in PORTS:
        getattr(container, port)()
    return container


class ApiClient:
    """The app, its container and clock, and `alice`: a tenant token (read, write, reveal) on project p1."""

    def __init__(self, container: Container, clock: ManualClock, home: Path | None) -> None:
        self.container = container
        self.clock = clock
        self.home = home
        self.app = create_app(container)
        self.client: FlaskClient = self.app.test_client()
        self.alice = self.token("alice")

    def token(self, subject: str, scopes: tuple[str, ...] = TENANT_SCOPES, projects: tuple[str, ...] = ("p1",),
              ttl: int = 3600) -> str:
        return self.issue(subject, scopes, projects, ttl)[0]

    def issue(self, subject: str, scopes: tuple[str, ...] = TENANT_SCOPES, projects: tuple[str, ...] = ("p1",),
              ttl: int = 3600) -> tuple[str, str]:
        """(bearer token, token id)."""
        secret, record = self.container.token_service().create(subject, list(scopes), list(projects), ttl)
        return secret.reveal(), record.id

    def call(self, method: str, path: str, token: str | None = None, *, anonymous: bool = False,
             headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
        sent = {} if anonymous else {"Authorization": f"Bearer {token or self.alice}"}
        sent.update(headers or {})
        return self.client.open(path, method=method, headers=sent, **kwargs)

    def put(self, path: str, value: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        return self.call("PUT", path, token, json={"value": value}, **kwargs)

    def reveal(self, path: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        return self.call("POST", path + ":reveal", token, **kwargs)

    def mint(self, path: str = KEY, ttl: int = 60, token: str | None = None) -> str:
        response = self.call("POST", path + ":reveal", token, json={"oneTime": True, "ttlSeconds": ttl})
        assert response.status_code == 201, response.get_data(as_text=True)
        return str(response.get_json()["token"])

    def redeem(self, reveal_token: str, address: str = "192.0.2.10") -> TestResponse:
        return self.client.post("/v1/secrets:redeem", json={"token": reveal_token},
                                environ_base={"REMOTE_ADDR": address})

    def seed(self, scope: str, key: str, value: str, meta: dict[str, Any] | None = None) -> None:
        """Write as the vault owner (no tenancy, no rate limit), as `sprongus secrets set` would."""
        self.container.secret_ops().set(Principal.local_owner("ops"), Scope.parse(scope), key,
                                             SecretValue(value), meta)

    def events(self) -> list[AuditEvent]:
        sink = self.container.audit_sink()
        assert hasattr(sink, "events"), "audit events are inspectable on the in-memory profile only"
        return list(sink.events)

    def close(self) -> None:
        models = self.container.database()
        if models is not None:
            models.db.close()


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., ApiClient]]:
    """make_api(sqlite=False, roomy_limits=True, **SPRONGUS_settings): an app on the test profile or a SQLite vault."""
    made: list[ApiClient] = []

    def make(*, sqlite: bool = False, roomy_limits: bool = True, **settings: str) -> ApiClient:
        env = {"SPRONGUS_ENV": "test", **(ROOMY_LIMITS if roomy_limits else {}), **settings}
        home = None
        if sqlite:
            home = tmp_path / f"vault{len(made)}"
            env.update({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), **SQLITE_KEYS})
        clock = ManualClock()
        api = ApiClient(container_with_clock(Settings.from_mapping(env), clock), clock, home)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(make_api: Callable[..., ApiClient]) -> ApiClient:
    return make_api()


@pytest.fixture(params=["memory", "sqlite"])
def any_api(request: pytest.FixtureRequest, make_api: Callable[..., ApiClient]) -> ApiClient:
    return make_api(sqlite=request.param == "sqlite")


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    """The RFC 9457 body of an error response, after checking its shape."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == PROBLEM_JSON, response.mimetype
    assert response.headers.get("Cache-Control") == "no-store"
    body: dict[str, Any] = json.loads(text)
    assert body["status"] == status
    assert re.fullmatch(r"urn:sprongus:problem:[a-z0-9-]+", body["type"]), body
    assert isinstance(body["title"], str) and body["title"]
    assert set(body) <= {"type", "title", "status", "detail", "errors"}, body
    return body


def www_authenticate(response: TestResponse) -> str:
    return response.headers.get("WWW-Authenticate", "")
