"""The OpenAPI document covers the API, and schemathesis fuzzes the app against it (bounded, deterministic).

Checks: no 5xx, documented statuses, content types, headers and bodies, schema-invalid input rejected, auth
enforced, `Cache-Control: no-store`, and no stored value in the response of any operation but reveal and redeem.
Schemathesis' positive_data_acceptance check is left out: some rules span fields (ownerId is required for user and
project scopes, forbidden for system), so schema-valid data may rightly be answered 422, and redeem answers 410.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.config import Settings
from tests.e2e.api.conftest import ADMIN, PROBLEM_JSON, TENANT_SCOPES, ApiClient, container_with_clock
from tests.harness import CANARY

KEY_PATH = "/v1/secrets/{owner_type}/{owner_id}/{key_name}"
# (method, path): the problem statuses it must document. The set of operations is the whole API.
OPERATIONS: dict[tuple[str, str], set[int]] = {
    ("GET", "/v1/secrets"): {401, 403, 404, 422},
    ("GET", KEY_PATH): {401, 403, 404, 422},
    ("PUT", KEY_PATH): {401, 403, 404, 409, 412, 422, 429},
    ("DELETE", KEY_PATH): {401, 403, 404, 422, 429},
    ("POST", KEY_PATH + ":reveal"): {401, 403, 404, 422, 429, 503},
    ("POST", KEY_PATH + ":rotate"): {401, 403, 404, 422, 429},
    ("GET", KEY_PATH + "/versions"): {401, 403, 404, 422},
    ("POST", KEY_PATH + ":rollback"): {401, 403, 404, 422, 429},
    ("POST", KEY_PATH + ":restore"): {401, 403, 404, 422, 429},
    ("POST", "/v1/secrets:redeem"): {410, 422, 429, 503},
    ("POST", "/v1/secrets:reveal"): {401, 403, 404, 422, 429, 503},
    ("POST", "/v1/secrets:import"): {401, 403, 404, 409, 422, 429},
    ("GET", "/v1/secrets:export"): {401, 403, 404, 422, 429},
    ("GET", "/v1/health/live"): set(),
    ("GET", "/v1/health/ready"): {503},
    ("POST", "/v1/auth/token"): {429, 503},  # its 400 is RFC 6749's application/json, not a problem
    ("GET", "/v1/auth/config"): {404},
    ("GET", "/v1/auth/whoami"): {401},
    ("POST", "/v1/auth/revoke"): {401, 422},
    ("GET", "/v1/audit"): {401, 403, 422, 503},
}
SUCCESS = {("PUT", KEY_PATH): {"200", "201"}, ("DELETE", KEY_PATH): {"204"},
           ("POST", KEY_PATH + ":reveal"): {"200", "201"}}
PLAINTEXT_OPERATIONS = {("POST", KEY_PATH + ":reveal"), ("POST", "/v1/secrets:redeem"), ("POST", "/v1/secrets:reveal")}
# No parameter and no body: there is no invalid input to generate, only the one request.
NO_INPUT = {("GET", "/v1/health/live"), ("GET", "/v1/health/ready"), ("GET", "/v1/auth/config")}


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[ApiClient, str]]:
    """One app for the whole fuzz run, CANARY stored in every scope the token can see."""
    limits = {f"SPRONGUS_RATE_LIMIT_{p}": "1000000/minute"
              for p in ("REVEAL", "WRITE", "REDEEM", "REVEAL_BATCH", "EXCHANGE", "UNAUTHENTICATED")}
    clock = ManualClock()
    api = ApiClient(container_with_clock(Settings.from_mapping({"SPRONGUS_ENV": "test", **limits}), clock),
                    clock, None)
    for scope in ("project:p1", "user:alice", "system"):
        for key in ("canary", "notion.api_token", "A"):
            api.seed(scope, key, CANARY, {"provider": "notion"})
    yield api, api.token("alice", (*TENANT_SCOPES, ADMIN), ("p1",))
    api.close()


def test_the_document_covers_every_operation_its_parameters_and_problems(api: ApiClient) -> None:
    response = api.client.get("/v1/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    found = {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method != "parameters"}
    assert found == set(OPERATIONS)
    for (method, path), problems in OPERATIONS.items():
        operation = doc["paths"][path][method.lower()]
        responses = operation["responses"]
        assert SUCCESS.get((method, path), {"200"}) <= set(responses), (method, path)
        for status in problems:
            content = responses[str(status)]["content"]
            assert list(content) == [PROBLEM_JSON], (method, path, status)
            assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert "default" in responses
        parameters = {p["name"]: p for p in operation.get("parameters", []) + doc["paths"][path].get("parameters", [])}
        if "{key_name}" in path:
            assert parameters["owner_type"]["schema"]["enum"] == ["user", "project", "system"]
            assert parameters["key_name"]["schema"]["pattern"] and parameters["owner_id"]["schema"]["pattern"]
        if path in ("/v1/secrets", "/v1/secrets:export"):
            assert {"ownerType", "ownerId", "prefix"} <= set(parameters)
        if method in ("PUT", "POST") and not path.endswith((":rotate", ":restore")) \
                and path != "/v1/auth/token":  # no body, or a form
            assert "application/json" in operation["requestBody"]["content"], (method, path)
    assert doc["paths"]["/v1/secrets:redeem"]["post"]["security"] == []  # the reveal token is the credential
    assert doc["paths"]["/v1/health/live"]["get"]["security"] == []  # probes carry no credential
    assert doc["paths"]["/v1/health/ready"]["get"]["security"] == []
    listing = doc["paths"]["/v1/secrets"]["get"]["parameters"]
    limit = next(p for p in listing if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 50)
    problem_schema = doc["components"]["schemas"]["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem_schema)


def no_stored_value_outside_reveal(ctx: Any, response: Any, case: Any) -> bool:
    if (case.operation.method.upper(), case.operation.path) not in PLAINTEXT_OPERATIONS:
        assert CANARY not in response.text, f"a stored value in the response of {case.operation.label}"
    return True


def no_store(ctx: Any, response: Any, case: Any) -> bool:
    assert response.headers.get("cache-control") in (["no-store"], "no-store"), response.headers
    return True


def _pinned(method: str, path: str) -> dict[str, Any]:
    """Inputs that reach stored secrets, which fully random ones seldom do."""
    if path.startswith(KEY_PATH):
        key = "scratch" if method in ("PUT", "DELETE") else "canary"
        return {"path_parameters": {"owner_type": "project", "owner_id": "p1", "key_name": key}}
    if path in ("/v1/secrets", "/v1/secrets:export"):
        return {"query": {"ownerType": "project", "ownerId": "p1"}}
    if path == "/v1/secrets:reveal":
        return {"body": {"ownerType": "project", "ownerId": "p1"}}
    return {}


@pytest.mark.parametrize(("method", "path"), list(OPERATIONS), ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_schemathesis_finds_no_failure(fuzzed: tuple[ApiClient, str], method: str, path: str) -> None:
    api, bearer = fuzzed
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", api.app)
    operation = schema[path][method]
    if path == "/v1/auth/revoke":  # it may revoke its own bearer: not the one every other operation uses
        bearer = api.token("revoker")
    headers = {"Authorization": f"Bearer {bearer}"}
    modes = [GenerationMode.POSITIVE] if (method, path) in NO_INPUT else list(GenerationMode)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if pinned := _pinned(method, path):
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, **pinned))
    for strategy in strategies:
        @given(case=strategy)
        @settings(max_examples=30, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance],
                                   additional_checks=[no_stored_value_outside_reveal, no_store])

        fuzz()
