"""Idempotency-Key on PUT and import: replay, 422 on another request, 409 while in flight, per principal."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

IMPORT = "/v1/secrets:import"


def _put(api: ApiClient, value: str, key: str = "k-1", token: str | None = None, **headers: str) -> TestResponse:
    return api.put(KEY, value, token, headers={"Idempotency-Key": key, **headers})


def test_a_repeated_put_replays_the_first_response_without_a_new_version(any_api: ApiClient) -> None:
    first = _put(any_api, CANARY)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = _put(any_api, CANARY)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert again.headers["ETag"] == first.headers["ETag"] == '"1"'
    assert again.headers["Cache-Control"] == "no-store"
    assert any_api.call("GET", KEY).get_json()["version"] == 1
    assert CANARY not in again.get_data(as_text=True)
    assert _put(any_api, CANARY, key="k-2").get_json()["version"] == 2  # a new key is a new request


def test_the_same_key_with_another_request_is_422(any_api: ApiClient) -> None:
    _put(any_api, CANARY)
    for response in (_put(any_api, CANARY + "-changed"),
                     any_api.put("/v1/secrets/project/p1/other", CANARY, headers={"Idempotency-Key": "k-1"})):
        body = problem(response, 422)
        assert "Idempotency-Key" in body["errors"] and CANARY not in response.get_data(as_text=True)
    assert any_api.reveal(KEY).get_json()["value"] == CANARY
    problem(any_api.call("GET", "/v1/secrets/project/p1/other"), 404)


def test_keys_are_per_principal(any_api: ApiClient) -> None:
    bob = any_api.token("bob")
    assert _put(any_api, CANARY).status_code == 201
    bobs = _put(any_api, CANARY, token=bob)  # same key, same request, another subject: runs for real
    assert bobs.status_code == 200 and "Idempotent-Replayed" not in bobs.headers
    assert bobs.get_json()["version"] == 2


def test_keys_are_kept_for_24_hours(any_api: ApiClient) -> None:
    token = any_api.token("alice", ttl=3 * 86400)
    _put(any_api, CANARY, token=token)
    any_api.clock.advance(86400 - 60)
    assert _put(any_api, CANARY, token=token).headers.get("Idempotent-Replayed") == "true"
    any_api.clock.advance(120)
    fresh = _put(any_api, CANARY, token=token)
    assert "Idempotent-Replayed" not in fresh.headers and fresh.get_json()["version"] == 2


def test_a_repeated_import_replays(any_api: ApiClient) -> None:
    body = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "db.password", "value": CANARY}]}
    first = any_api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": "imp-1"})
    again = any_api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": "imp-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_data() == first.get_data()
    assert any_api.call("GET", KEY).get_json()["version"] == 1
    other = any_api.call("POST", IMPORT, json={**body, "mode": "replace"}, headers={"Idempotency-Key": "imp-1"})
    problem(other, 422)


def test_a_replayed_import_whose_secrets_were_purged_since_is_409_not_a_stored_200(any_api: ApiClient) -> None:
    """As a PUT's replay: "200 added" for a secret purged since would tell the client its value is stored."""
    admin = any_api.token("alice", ("secrets:read", "secrets:write", "secrets:admin"))
    body = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "db.password", "value": CANARY},
                                              {"scope": "project:p1", "key": "other", "value": "x"}]}
    assert any_api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": "imp-2"}).status_code == 200
    assert any_api.call("DELETE", KEY + "?purge=true", admin).status_code == 200
    again = any_api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": "imp-2"})
    assert problem(again, 409)["detail"].startswith("a secret this import wrote was deleted after the first request")
    assert CANARY not in again.get_data(as_text=True)
    dry = {**body, "dryRun": True}  # a dry run's replay: nothing was written to be there still
    assert any_api.call("POST", IMPORT, json=dry, headers={"Idempotency-Key": "imp-3"}).status_code == 200
    replayed = any_api.call("POST", IMPORT, json=dry, headers={"Idempotency-Key": "imp-3"})
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"


def test_an_invalid_idempotency_key_is_422(api: ApiClient) -> None:
    for key in ("", "x" * 256):
        body = problem(_put(api, CANARY, key=key), 422)
        assert "Idempotency-Key" in body["errors"]
    problem(api.call("GET", KEY), 404)


def test_a_refused_or_failed_request_does_not_burn_its_key(api: ApiClient) -> None:
    problem(_put(api, CANARY, **{"If-Match": '"7"'}), 412)  # refused before anything ran (Stripe semantics)
    fixed = _put(api, CANARY)
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers
    api.container.audit_sink().available = False  # a 503 is not the client's fault: the key stays free
    problem(_put(api, CANARY, key="k-503"), 503)
    api.container.audit_sink().available = True
    retried = _put(api, CANARY, key="k-503")
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert retried.get_json()["version"] == 2  # the failed attempt wrote nothing


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_request_still_in_flight_answers_409(make_api: Callable[..., ApiClient], backend: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    api = make_api(sqlite=backend == "sqlite")
    service = api.container.secret_ops()
    entered, release = threading.Event(), threading.Event()
    real_set = service.set

    def slow_set(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return real_set(*args, **kwargs)

    monkeypatch.setattr(service, "set", slow_set)
    results: list[TestResponse] = []
    first = threading.Thread(target=lambda: results.append(_put(api, CANARY)))
    first.start()
    try:
        assert entered.wait(30)
        in_flight = _put(api, CANARY)
        body = problem(in_flight, 409)
        assert body["type"].endswith(":conflict") and CANARY not in in_flight.get_data(as_text=True)
    finally:
        release.set()
        first.join(30)
    assert [r.status_code for r in results] == [201]
    replay = _put(api, CANARY)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert api.call("GET", KEY).get_json()["version"] == 1


def test_the_stored_response_is_masked_and_the_fingerprint_hides_the_value(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(sqlite=True)
    assert _put(api, CANARY).status_code == 201
    body = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "other", "value": CANARY}]}
    assert api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": "imp-1"}).status_code == 200
    assert api.home is not None
    with sqlite3.connect(api.home / "vault.db") as db:
        rows = db.execute("SELECT subject, key, fingerprint, status, body, headers FROM idempotency_key").fetchall()
    db.close()
    assert len(rows) == 2
    for row in rows:
        assert all(CANARY not in str(column) for column in row), row
        assert row[2].startswith("hmac:")  # keyed: a guessed value cannot be checked against it
    put_row = next(row for row in rows if row[1] == "k-1")
    assert put_row[3] == 201 and json.loads(put_row[4])["value"] == "********"
    for path in api.home.iterdir():  # the vault file and its WAL: no plaintext anywhere on disk
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_a_narrower_token_of_the_same_subject_gets_no_replay_of_a_wider_ones_answer(any_api: ApiClient) -> None:
    """Keys are per subject, so a retry with the subject's renewed token replays. A token of the same subject that
    may see less (a key prefix) sent the same body and key and got the stored report: key names outside its
    prefix. Now it is another request (422), and the report is never shown to it."""
    any_api.seed("project:p1", "hr.payroll.key", CANARY)
    body = {"mode": "replace", "allowPlaintext": True, "prefix": "", "items": [
        {"scope": "project:p1", "key": "app.token", "value": "v"}]}
    headers = {"Idempotency-Key": "replace-1"}
    first = any_api.call("POST", IMPORT, json=body, headers=headers)
    assert [c["keyName"] for c in first.get_json()["changes"]["removed"]] == ["hr.payroll.key"]
    secret, _ = any_api.container.token_service().create("alice", ["secrets:read", "secrets:write"], ["p1"], 3600,
                                                          key_prefix="app.")
    narrower = any_api.call("POST", IMPORT, secret.reveal(), json=body, headers=headers)
    problem(narrower, 422)
    assert "hr.payroll" not in narrower.get_data(as_text=True)
    renewed = any_api.call("POST", IMPORT, any_api.token("alice"), json=body, headers=headers)  # same grants
    assert renewed.headers.get("Idempotent-Replayed") == "true" and renewed.get_data() == first.get_data()
