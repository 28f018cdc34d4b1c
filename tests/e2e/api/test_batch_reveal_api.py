"""`POST /v1/secrets:reveal` through the Flask test client: input rules, headers, recent authentication, leaks.

Backends, tenancy, key prefixes, rate limits and the all-or-nothing audit are in
tests/integration/test_batch_reveal.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from sprongus.domain.principal import TokenKind
from sprongus.domain.records import AuditAction, Outcome
from tests.e2e.api.conftest import TENANT_SCOPES, ApiClient, problem, www_authenticate
from tests.harness import CANARY

BATCH = "/v1/secrets:reveal"
P1 = {"ownerType": "project", "ownerId": "p1"}
ECHO = "EchoMarker7x"  # client text that must never come back in an answer


def reveal(api: ApiClient, body: Any, token: str | None = None, **kwargs: Any) -> Any:
    return api.call("POST", BATCH, token, json=body, **kwargs)


@pytest.mark.parametrize(("body", "field"), [
    ({**P1, ECHO: 1}, "body"),  # an unknown field, named by the client: reported as the body
    ({**P1, "keys": ECHO}, "keys"),
    ({**P1, "keys": {ECHO: ECHO}}, "keys"),
    ({**P1, "keys": 7}, "keys"),
    ({**P1, "keys": ["db.password", 7]}, "keys.1"),
    ({**P1, "keys": [None]}, "keys.0"),
    ({**P1, "keys": [[ECHO]]}, "keys.0"),
    ({**P1, "keys": [f"{ECHO}.{i}" for i in range(1001)]}, "keys"),
    ({**P1, "keys": [f"bad {ECHO}!"]}, "keys[0]"),
    ({**P1, "keys": ["db.password"], "prefix": "db."}, "keys"),
    ({**P1, "prefix": f"-{ECHO}"}, "prefix"),
    ({**P1, "prefix": 5}, "prefix"),
    ({"ownerId": "p1"}, "ownerType"),
    ({"ownerType": ECHO, "ownerId": "p1"}, "ownerType"),
    ({"ownerType": "project", "ownerId": f"{ECHO}!"}, "ownerId"),
    ({"ownerType": "project"}, "ownerId"),
    ([P1], "_schema"),  # not an object: marshmallow's name for the whole body
])
def test_bad_input_is_422_naming_the_field_never_echoing_it(api: ApiClient, body: Any, field: str) -> None:
    api.seed("project:p1", "db.password", CANARY)
    response = reveal(api, body)
    detail = problem(response, 422)
    assert field in detail["errors"], detail
    text = response.get_data(as_text=True)
    assert ECHO not in text and CANARY not in text
    assert not [e for e in api.events() if e.outcome is Outcome.SUCCESS and e.action is AuditAction.REVEAL]


def test_exactly_a_thousand_keys_are_accepted(api: ApiClient) -> None:
    api.seed("project:p1", "k0999", CANARY)
    response = reveal(api, {**P1, "keys": [f"k{i:04d}" for i in range(1000)]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["items"] == [{"keyName": "k0999", "value": CANARY, "version": 1}]
    assert len(body["missing"]) == 999


def test_the_answer_is_never_cached_and_carries_only_the_documented_fields(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    response = reveal(api, {**P1, "keys": ["db.password"]})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"
    assert response.get_json() == {"items": [{"keyName": "db.password", "value": CANARY, "version": 1}],
                                   "missing": []}
    refused = reveal(api, {**P1, "keys": "x"})
    assert refused.headers["Cache-Control"] == "no-store"


def test_a_system_scope_takes_no_owner_id(api: ApiClient) -> None:
    api.seed("system", "smtp.password", CANARY)
    admin = api.token("root", (*TENANT_SCOPES, "secrets:admin"))
    response = reveal(api, {"ownerType": "system"}, admin)
    assert response.status_code == 200 and response.get_json()["items"][0]["value"] == CANARY
    assert reveal(api, {"ownerType": "system"}).status_code == 404  # not an admin: the scope is not alice's


def test_no_token_is_401_and_audited(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    response = api.call("POST", BATCH, anonymous=True, json=P1, headers={"X-Request-ID": "anon-batch"})
    problem(response, 401)
    assert [(e.action, e.outcome) for e in api.events() if e.request_id == "anon-batch"] == \
        [(AuditAction.AUTHENTICATE, Outcome.DENIED)]


def test_an_old_authentication_is_a_step_up_401_audited_as_a_denied_reveal(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    operator = api.token("alice", ttl=7200)
    workload, _ = api.container.token_service().create("svc", list(TENANT_SCOPES), ["p1"], 7200,
                                                       kind=TokenKind.WORKLOAD)
    api.clock.advance(901)  # past SPRONGUS_REVEAL_MAX_AGE: the token still reads, but may not reveal
    stale = reveal(api, P1, operator, headers={"X-Request-ID": "stale-batch"})
    problem(stale, 401)
    assert 'error="insufficient_user_authentication"' in www_authenticate(stale)
    assert "max_age=900" in www_authenticate(stale)
    assert CANARY not in stale.get_data(as_text=True)
    events = [e for e in api.events() if e.request_id == "stale-batch"]
    assert [(e.action, e.outcome, e.key_name, e.scope, e.detail) for e in events] == \
        [(AuditAction.REVEAL, Outcome.DENIED, None, "project:p1", {"reason": "step-up"})]
    assert api.call("GET", "/v1/secrets?ownerType=project&ownerId=p1", operator).status_code == 200
    fresh = reveal(api, P1, workload.reveal())  # a workload token has no person to sign in again: exempt
    assert fresh.status_code == 200 and fresh.get_json()["items"][0]["value"] == CANARY


def test_the_canary_is_in_no_log_line_error_or_audit_row(api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for i in range(5):
        api.seed("project:p1", f"app.k{i}", f"{CANARY}-{i}")
    ok = reveal(api, {**P1, "prefix": "app."}, headers={"X-Request-ID": "leak-batch"})
    assert ok.status_code == 200 and len(ok.get_json()["items"]) == 5
    answers = [reveal(api, {**P1, "keys": ["app.k0"], "prefix": "app."}),  # 422 from the service
               reveal(api, {**P1, "keys": [CANARY]}),  # a canary as a key name: absent, listed as missing
               reveal(api, {"ownerType": "project", "ownerId": "p2"}),  # 404
               reveal(api, P1, api.token("alice", ("secrets:read",)))]  # 403
    assert [a.status_code for a in answers] == [422, 200, 404, 403]
    for answer in answers[:1] + answers[2:]:
        assert CANARY not in answer.get_data(as_text=True)
    assert answers[1].get_json() == {"items": [], "missing": [CANARY]}
    assert CANARY not in caplog.text
    events = api.events()
    assert [e.key_name for e in events if e.request_id == "leak-batch"] == [f"app.k{i}" for i in range(5)]
    for event in events:
        assert f"{CANARY}-" not in repr(event) + json.dumps(event.detail, default=str)
