"""A reveal checks who may reveal before it asks for a fresh sign-in.

Before, a stale token was answered 401 "sign in again" (audited as a step-up) for a scope it may not reveal at
all: a token of another project, or one without the reveal scope, was told a fresh sign-in would let it through,
and the audit trail showed an authorized reveal that only lacked a fresh sign-in. Now: a scope that is not the
caller's is 404, no reveal permission is 403, and only then is the authentication's age checked.
"""

from __future__ import annotations

from typing import Any

import pytest

from sprongus.domain.records import AuditEvent
from tests.e2e.api.conftest import KEY, READ, TENANT_SCOPES, WRITE, ApiClient, problem, www_authenticate
from tests.harness import CANARY

BATCH = "/v1/secrets:reveal"
P1 = {"ownerType": "project", "ownerId": "p1"}
STALE = 901  # one second past the default SPRONGUS_REVEAL_MAX_AGE; the tokens live 2 h


def _single(api: ApiClient, token: str) -> Any:
    return api.call("POST", KEY + ":reveal", token, json={}, headers={"X-Request-ID": "order"})


def _one_time(api: ApiClient, token: str) -> Any:
    return api.call("POST", KEY + ":reveal", token, json={"oneTime": True, "ttlSeconds": 60},
                    headers={"X-Request-ID": "order"})


def _batch(api: ApiClient, token: str) -> Any:
    return api.call("POST", BATCH, token, json={**P1, "keys": ["db.password"]}, headers={"X-Request-ID": "order"})


def _batch_prefix(api: ApiClient, token: str) -> Any:
    return api.call("POST", BATCH, token, json={**P1, "prefix": "db."}, headers={"X-Request-ID": "order"})


REVEALS = pytest.mark.parametrize("send", [_single, _one_time, _batch, _batch_prefix],
                                  ids=["reveal", "one-time mint", "batch by keys", "batch by prefix"])


def _step_up_rows(api: ApiClient) -> list[AuditEvent]:
    return [e for e in api.events() if e.request_id == "order" and (e.detail or {}).get("reason") == "step-up"]


def _stale(api: ApiClient, scopes: tuple[str, ...], projects: tuple[str, ...]) -> str:
    token = api.token("mallory", scopes, projects, ttl=7200)
    api.clock.advance(STALE)
    return token


@REVEALS
def test_a_stale_token_of_another_project_gets_404_not_a_step_up(api: ApiClient, send: Any) -> None:
    api.seed("project:p1", "db.password", CANARY)
    response = send(api, _stale(api, TENANT_SCOPES, ("p2",)))
    problem(response, 404)
    assert "insufficient_user_authentication" not in www_authenticate(response)
    assert CANARY not in response.get_data(as_text=True)
    assert _step_up_rows(api) == []


@REVEALS
def test_a_stale_token_without_the_reveal_scope_gets_403_not_a_step_up(api: ApiClient, send: Any) -> None:
    api.seed("project:p1", "db.password", CANARY)
    response = send(api, _stale(api, (READ, WRITE), ("p1",)))
    problem(response, 403)
    assert 'error="insufficient_scope"' in www_authenticate(response)
    assert CANARY not in response.get_data(as_text=True)
    assert _step_up_rows(api) == []


@REVEALS
def test_a_stale_token_that_may_reveal_still_gets_the_step_up(api: ApiClient, send: Any) -> None:
    api.seed("project:p1", "db.password", CANARY)
    response = send(api, _stale(api, TENANT_SCOPES, ("p1",)))
    problem(response, 401)
    assert 'error="insufficient_user_authentication"' in www_authenticate(response)
    assert CANARY not in response.get_data(as_text=True)
    assert len(_step_up_rows(api)) == 1


@REVEALS
def test_a_fresh_token_that_may_reveal_is_answered(api: ApiClient, send: Any) -> None:
    """The checks added in front do not refuse the caller they are meant to let through."""
    api.seed("project:p1", "db.password", CANARY)
    response = send(api, api.token("alice"))
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    assert _step_up_rows(api) == []


def test_a_missing_key_of_the_callers_scope_is_still_a_step_up_when_stale(api: ApiClient) -> None:
    """The permission check looks at the scope, not at the row: a stale token learns nothing about existence."""
    api.seed("project:p1", "db.password", CANARY)
    token = _stale(api, TENANT_SCOPES, ("p1",))
    absent = api.call("POST", "/v1/secrets/project/p1/absent.key:reveal", token, json={})
    present = api.call("POST", KEY + ":reveal", token, json={})
    assert absent.status_code == present.status_code == 401
