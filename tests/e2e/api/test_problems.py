"""Errors are RFC 9457 problem+json (type, title, status, detail, errors) and never echo a submitted value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

LIST = "/v1/secrets?ownerType=project&ownerId=p1"
OVERSIZED = CANARY + "x" * (65537 - len(CANARY))  # one byte over the limit


@pytest.mark.parametrize(("method", "path"), [("PUT", KEY), ("POST", "/v1/secrets:import"),
                                              ("POST", KEY + ":reveal"), ("POST", "/v1/secrets:redeem")])
def test_malformed_json_is_400(api: ApiClient, method: str, path: str) -> None:
    api.seed("project:p1", "db.password", "stored")
    response = api.call(method, path, data='{"value": "' + CANARY + '", ', content_type="application/json")
    body = problem(response, 400)
    assert body["detail"] and CANARY not in response.get_data(as_text=True)


def test_unknown_paths_are_404_and_unknown_methods_405_with_allow(api: ApiClient) -> None:
    problem(api.call("GET", KEY), 404)
    problem(api.call("GET", "/v1/nothing-here"), 404)
    for method, path, allowed in [("PATCH", KEY, {"GET", "PUT", "DELETE"}),
                                  ("GET", "/v1/secrets:import", {"POST"}),
                                  ("DELETE", "/v1/secrets", {"GET"}),
                                  ("PUT", "/v1/secrets:redeem", {"POST"})]:
        response = api.call(method, path, json={"value": CANARY})
        problem(response, 405)
        assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}, response.headers["Allow"]
        assert CANARY not in response.get_data(as_text=True)


# (method, path, JSON body, the field the errors must name). Every case carries CANARY somewhere.
INVALID: list[tuple[str, str, Any, str]] = [
    ("GET", LIST + "&limit=0", None, "limit"),
    ("GET", LIST + "&limit=501", None, "limit"),
    ("GET", LIST + "&limit=" + CANARY, None, "limit"),
    ("GET", LIST + "&cursor=" + CANARY, None, "cursor"),
    ("GET", LIST + "&prefix=" + CANARY + "!", None, "prefix"),
    ("GET", f"/v1/secrets?ownerType={CANARY}&ownerId=p1", None, "ownerType"),
    ("GET", "/v1/secrets?ownerId=p1", None, "ownerType"),
    ("GET", "/v1/secrets?ownerType=project", None, "ownerId"),
    ("GET", f"/v1/secrets:export?ownerType={CANARY}", None, "ownerType"),
    ("PUT", f"/v1/secrets/{CANARY}/p1/db.password", {"value": CANARY}, "ownerType"),
    ("PUT", f"/v1/secrets/project/{CANARY}!/db.password", {"value": CANARY}, "ownerId"),
    ("PUT", "/v1/secrets/system/x/db.password", {"value": CANARY}, "ownerId"),
    ("PUT", "/v1/secrets/project/p1/9lives", {"value": CANARY}, "key"),
    ("PUT", "/v1/secrets/project/p1/a..b", {"value": CANARY}, "key"),
    ("PUT", "/v1/secrets/project/p1/" + "k" * 129, {"value": CANARY}, "key"),
    ("GET", "/v1/secrets/project/p1/_private", None, "key"),
    ("DELETE", "/v1/secrets/project/p1/-dash", None, "key"),
    ("PUT", KEY, {"value": OVERSIZED}, "value"),
    ("PUT", KEY, {"value": "é" * 32769 + CANARY}, "value"),  # 32,8xx characters, but > 65,536 bytes
    ("PUT", KEY, {"value": 42, "meta": {"note": CANARY}}, "value"),
    ("PUT", KEY, {"meta": {"note": CANARY}}, "value"),
    ("PUT", KEY, {"value": CANARY, "meta": ["provider"]}, "meta"),
    ("PUT", KEY, {"value": CANARY, "meta": {"Upper": "x"}}, "meta"),
    ("PUT", KEY, {"value": CANARY, "meta": {"note": CANARY * 8}}, "meta"),
    ("PUT", KEY, {"value": CANARY, "meta": {"nested": {"a": CANARY}}}, "meta"),
    ("PUT", KEY, {"value": CANARY, "meta": {f"k{i}": CANARY * 3 for i in range(60)}}, "meta"),
    ("POST", KEY + ":reveal", {"oneTime": CANARY}, "oneTime"),
    ("POST", KEY + ":reveal", {"oneTime": True, "ttlSeconds": 0}, "ttlSeconds"),
    ("POST", "/v1/secrets:redeem", {"token": 7}, "token"),
    ("POST", "/v1/secrets:redeem", {}, "token"),
    ("POST", "/v1/secrets:import", {"mode": CANARY, "allowPlaintext": True, "items": []}, "mode"),
    ("POST", "/v1/secrets:import", {"allowPlaintext": True}, "items"),
    ("POST", "/v1/secrets:import", {"allowPlaintext": True, "items": [CANARY]}, "items"),
    ("POST", "/v1/secrets:import", {"bundle": {"format": CANARY}}, "bundle"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), INVALID,
                         ids=[f"{m} {f} {i}" for i, (m, _, _, f) in enumerate(INVALID)])
def test_invalid_input_is_422_naming_the_field_never_the_value(api: ApiClient, method: str, path: str,
                                                                body: Any, field: str) -> None:
    response = api.call(method, path, json=body)
    detail = problem(response, 422)
    assert detail["type"].endswith(":validation") and isinstance(detail["detail"], str)
    assert any(name == field or name.startswith((field + ".", field + "[")) for name in detail["errors"]), detail
    assert all(isinstance(m, str) for messages in detail["errors"].values() for m in messages)
    assert CANARY not in response.get_data(as_text=True)
    assert "é" * 10 not in response.get_data(as_text=True)
    problem(api.call("GET", KEY), 404)  # nothing was written


def test_a_value_of_exactly_the_limit_is_accepted(api: ApiClient) -> None:
    assert api.put(KEY, "x" * 65536).status_code == 201
    assert api.put(KEY, "").status_code == 200  # empty values occur in real .env files
    assert api.reveal(KEY).get_json()["value"] == ""


def test_error_bodies_never_echo_a_value_even_for_failures_after_validation(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    responses = [
        api.put(KEY, CANARY, headers={"If-Match": '"9"'}),  # 412
        api.put(KEY, CANARY, headers={"If-Match": CANARY}),  # 412, malformed
        api.put(KEY, CANARY, headers={"Idempotency-Key": CANARY * 10}),  # 422
        api.put("/v1/secrets/project/p2/x", CANARY),  # 404
        api.call("GET", KEY, CANARY),  # 401: a value pasted as a token
        api.redeem(CANARY),  # 410
    ]
    for response in responses:
        assert response.status_code >= 400
        problem(response, response.status_code)
        assert CANARY not in response.get_data(as_text=True)
        assert CANARY not in str(dict(response.headers))


@pytest.mark.parametrize("body", [
    {"value": "x", "GUESS-field-name": 1},
    {"value": "x", "meta": {"guessed.key": "y" * 300}},
    {"value": "x", "meta": {"guessed.key": 2**70}},
    {"value": "x", "meta": {"guessed.key": ["a"]}},
])
def test_error_answers_repeat_no_field_or_meta_key_the_client_made_up(api: ApiClient, body: dict[str, Any]) -> None:
    """Only our own field names appear in an error answer: a name the client chose is its text, not ours."""
    answer = api.call("PUT", KEY, json=body)
    problem(answer, 422)
    assert "GUESS" not in answer.get_data(as_text=True) and "guessed" not in answer.get_data(as_text=True)
