"""Audit events for every action and denied attempt (request id, client address); fail-closed reveal; clean logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sprongus.domain.records import AuditAction, Outcome
from tests.e2e.api.conftest import KEY, READ, ApiClient, problem
from tests.harness import CANARY

CLIENT = "203.0.113.9"
IMPORT_BODY = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "imported", "value": CANARY}]}
EXPORT = "/v1/secrets:export?ownerType=project&ownerId=p1"
# name: (method, path, body, token kind, expected (action, outcome))
ACTIONS: dict[str, tuple[str, str, Any, str, tuple[AuditAction, Outcome]]] = {
    "create": ("PUT", "/v1/secrets/project/p1/new", {"value": CANARY}, "alice", (AuditAction.CREATE, Outcome.SUCCESS)),
    "update": ("PUT", KEY, {"value": CANARY}, "alice", (AuditAction.UPDATE, Outcome.SUCCESS)),
    "reveal": ("POST", KEY + ":reveal", {}, "alice", (AuditAction.REVEAL, Outcome.SUCCESS)),
    "mint": ("POST", KEY + ":reveal", {"oneTime": True}, "alice", (AuditAction.REVEAL, Outcome.SUCCESS)),
    "delete": ("DELETE", KEY, None, "alice", (AuditAction.DELETE, Outcome.SUCCESS)),
    "rotate": ("POST", KEY + ":rotate", None, "alice", (AuditAction.ROTATE, Outcome.SUCCESS)),
    "import": ("POST", "/v1/secrets:import", IMPORT_BODY, "alice", (AuditAction.IMPORT, Outcome.SUCCESS)),
    "export": ("GET", EXPORT, None, "alice", (AuditAction.EXPORT, Outcome.SUCCESS)),
    "export-bundle": ("GET", EXPORT + "&bundle=true", None, "alice", (AuditAction.EXPORT, Outcome.SUCCESS)),
    "no token": ("GET", KEY, None, "none", (AuditAction.AUTHENTICATE, Outcome.DENIED)),
    "bad token": ("POST", KEY + ":reveal", {}, "bad", (AuditAction.AUTHENTICATE, Outcome.DENIED)),
    "no scope": ("POST", KEY + ":reveal", {}, "reader", (AuditAction.REVEAL, Outcome.DENIED)),
    "hidden scope": ("POST", "/v1/secrets/project/p2/x:reveal", {}, "alice", (AuditAction.REVEAL, Outcome.DENIED)),
    "hidden write": ("PUT", "/v1/secrets/user/bob/x", {"value": CANARY}, "alice",
                     (AuditAction.UPDATE, Outcome.DENIED)),
    "stale auth": ("POST", KEY + ":reveal", {}, "stale", (AuditAction.REVEAL, Outcome.DENIED)),
    "export denied": ("GET", EXPORT + "&bundle=true", None, "reader", (AuditAction.EXPORT, Outcome.DENIED)),
}


PER_KEY = {"import", "export-bundle"}


@pytest.mark.parametrize("name", list(ACTIONS))
def test_every_action_and_denied_attempt_is_audited_with_request_id_and_address(api: ApiClient, name: str) -> None:
    method, path, body, kind, (action, outcome) = ACTIONS[name]
    api.seed("project:p1", "db.password", CANARY)
    tokens = {"alice": api.alice, "reader": api.token("alice", (READ,)), "bad": "spr_forged",
              "stale": api.token("alice", ttl=7200)}
    if kind == "stale":
        api.clock.advance(901)
    request_id = f"req-{name.replace(' ', '-')}-0001"
    response = api.call(method, path, tokens.get(kind), anonymous=kind == "none", json=body,
                        headers={"X-Request-ID": request_id}, environ_base={"REMOTE_ADDR": CLIENT})
    assert response.headers["X-Request-ID"] == request_id
    events = [e for e in api.events() if e.request_id == request_id]
    # An import or a bundle export also writes one row per key (here one: imported, db.password) beside its summary.
    rows = 2 if name in PER_KEY else 1
    assert [(e.action, e.outcome) for e in events] == [(action, outcome)] * rows, events
    if rows == 2:
        assert sorted(e.key_name or "" for e in events) == ["", "imported" if name == "import" else "db.password"]
    event = events[0]
    assert event.client_address == CLIENT
    assert event.actor == ("anonymous" if kind in ("none", "bad") else "alice")
    assert CANARY not in repr(event) and CANARY not in json.dumps(event.detail, default=str)


def test_redeem_is_audited_under_the_minting_subject(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    token = api.mint()
    for attempt in ("ok", "used"):
        rid = f"req-redeem-{attempt}"
        api.client.post("/v1/secrets:redeem", json={"token": token}, headers={"X-Request-ID": rid},
                        environ_base={"REMOTE_ADDR": CLIENT})
        (event,) = [e for e in api.events() if e.request_id == rid]
        assert event.action is AuditAction.REDEEM and event.client_address == CLIENT
        if attempt == "ok":
            assert (event.actor, event.outcome, event.key_name) == ("alice", Outcome.SUCCESS, "db.password")
        else:
            assert (event.actor, event.outcome != Outcome.SUCCESS) == ("anonymous", True)


def test_a_bad_request_id_is_replaced_by_a_fresh_one(api: ApiClient) -> None:
    for given in ("has:colon", "has spaces in it", "x" * 65, CANARY + "<script>"):
        echoed = api.call("GET", KEY, headers={"X-Request-ID": given}).headers["X-Request-ID"]
        assert echoed != given and len(echoed) >= 8


def test_reveal_fails_closed_when_the_audit_sink_is_down(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    token = api.mint()
    api.container.audit_sink().available = False
    for response in (api.reveal(KEY), api.call("POST", KEY + ":reveal", json={"oneTime": True}),
                     api.redeem(token), api.call("GET", EXPORT + "&bundle=true")):
        body = problem(response, 503)
        assert body["type"].endswith(":audit-unavailable")
        assert CANARY not in response.get_data(as_text=True)
    api.container.audit_sink().available = True
    assert api.reveal(KEY).get_json()["value"] == CANARY


def test_logs_never_carry_values_tokens_or_the_authorization_header(make_api: Callable[..., ApiClient],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(sqlite=True)
    caplog.set_level(logging.DEBUG)
    api.put(KEY, CANARY, headers={"Idempotency-Key": "log-1"})
    assert api.reveal(KEY).get_json()["value"] == CANARY
    token = api.mint()
    assert api.redeem(token).status_code == 200
    api.redeem(token)
    api.put("/v1/secrets/project/p1/9bad", CANARY)
    api.call("PUT", KEY, data='{"value": "' + CANARY, content_type="application/json")
    api.call("GET", KEY, "spr_" + CANARY)
    api.call("POST", "/v1/secrets:import", json={"items": [{"scope": "project:p1", "key": "x", "value": CANARY}]})
    access = [r for r in caplog.records if r.name == "sprongus.api.access"]
    assert len(access) == 9
    lines = [json.loads(r.getMessage()) for r in access]
    assert {(line["method"], line["status"]) for line in lines} >= {("PUT", 201), ("POST", 200), ("POST", 201),
                                                                     ("POST", 410), ("PUT", 422), ("PUT", 400),
                                                                     ("GET", 401)}
    assert lines[0]["path"] == KEY and lines[0]["subject"] == "alice" and lines[0]["requestId"]
    everything = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
    for secret in (CANARY, api.alice, token, "Authorization", "Bearer"):
        assert secret not in everything, secret
