"""Schemathesis over the whole OpenAPI surface with five tokens: read-only, write-only, another tenant, admin and
expired. Bounded and deterministic (derandomized, no example database).

Checks on every answer, beyond schemathesis' own (no 5xx, documented statuses and bodies): no stored value in any
answer but a reveal or a redeem; the other tenant never gets a 2xx on tenant A's scopes and never sees A's value,
not even in its own reveals; the expired token never gets a 2xx. The stateful run follows the links schemathesis
infers (PUT -> GET, DELETE, reveal, rotate) and hands each step the next token, so a secret one token wrote is
read, revealed, rotated and deleted by the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.config import Settings
from tests.e2e.api.conftest import ADMIN, READ, TENANT_SCOPES, WRITE, ApiClient, container_with_clock
from tests.e2e.api.pg_api import pg_api_client
from tests.harness import CANARY
from tests.pg import PgDatabase

OTHER_CANARY = "CANARY-tenant-b-41c9e2-do-not-leak"
KEY_PATH = "/v1/secrets/{owner_type}/{owner_id}/{key_name}"
OPERATIONS = [("GET", "/v1/secrets"), ("GET", KEY_PATH), ("PUT", KEY_PATH), ("DELETE", KEY_PATH),
              ("POST", KEY_PATH + ":reveal"), ("POST", KEY_PATH + ":rotate"), ("POST", "/v1/secrets:redeem"),
              ("POST", "/v1/secrets:import"), ("GET", "/v1/secrets:export")]
PLAINTEXT_OPERATIONS = {("POST", KEY_PATH + ":reveal"), ("POST", "/v1/secrets:redeem")}
TOKENS = ["reader", "writer", "other", "admin", "expired"]
# Tenant A (alice, project p1) and the system scope hold CANARY; tenant B (bob, project p2) holds OTHER_CANARY.
A_SCOPES = {("project", "p1"), ("user", "alice"), ("system", None)}
SEEDS = {"project:p1": CANARY, "user:alice": CANARY, "system": CANARY, "project:p2": OTHER_CANARY,
         "user:bob": OTHER_CANARY}
FUZZ_SETTINGS = settings(max_examples=8, deadline=None, database=None, derandomize=True,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@dataclass
class Fuzzed:
    api: ApiClient
    tokens: dict[str, str]
    schema: Any


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    limits = {f"SPRONGUS_RATE_LIMIT_{p}": "1000000/minute" for p in ("REVEAL", "WRITE", "REDEEM", "UNAUTHENTICATED")}
    clock = ManualClock()
    api = ApiClient(container_with_clock(Settings.from_mapping({"SPRONGUS_ENV": "test", **limits}), clock),
                    clock, None)
    expired = api.token("alice", TENANT_SCOPES, ("p1",), ttl=60)
    clock.advance(61)  # the others are issued now: well inside the reveal step-up window
    tokens = {"reader": api.token("alice", (READ,)), "writer": api.token("alice", (WRITE,)),
              "other": api.token("bob", TENANT_SCOPES, ("p2",)), "admin": api.token("alice", (*TENANT_SCOPES, ADMIN)),
              "expired": expired}
    for scope, value in SEEDS.items():
        for key in ("canary", "notion.api_token", "A"):
            api.seed(scope, key, value, {"provider": "notion"})
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", api.app)
    yield Fuzzed(api, tokens, schema)
    api.close()


def _scopes_of(case: Any) -> set[tuple[str, str | None]]:
    """The scopes a request names, in its path, query or import items."""
    found = set()
    path, query = case.path_parameters or {}, case.query or {}
    for kind, owner in ((path.get("owner_type"), path.get("owner_id")), (query.get("ownerType"), query.get("ownerId"))):
        if isinstance(kind, str):
            found.add((kind, None if owner in (None, "", "-") else str(owner)))
    body = case.body if isinstance(case.body, dict) else {}
    for item in body.get("items") or [] if isinstance(body.get("items"), list) else []:
        scope = item.get("scope") if isinstance(item, dict) else None
        if isinstance(scope, str):
            kind, _, owner = scope.partition(":")
            found.add((kind, owner or None))
    return found


def token_checks(kind: str) -> list[Callable[..., bool]]:
    def no_value_outside_reveal(ctx: Any, response: Any, case: Any) -> bool:
        operation = (case.operation.method.upper(), case.operation.path)
        if operation not in PLAINTEXT_OPERATIONS:
            assert CANARY not in response.text and OTHER_CANARY not in response.text, case.operation.label
        return True

    def no_cross_tenant_success(ctx: Any, response: Any, case: Any) -> bool:
        if kind == "other" and case.operation.path != "/v1/secrets:redeem":
            assert CANARY not in response.text, f"tenant B saw tenant A's value: {case.operation.label}"
            if _scopes_of(case) & A_SCOPES:
                assert not 200 <= response.status_code < 300, f"tenant B got {response.status_code} on A's scope"
        return True

    def expired_gets_nothing(ctx: Any, response: Any, case: Any) -> bool:
        if kind == "expired" and case.operation.path != "/v1/secrets:redeem":
            assert not 200 <= response.status_code < 300, f"an expired token got {response.status_code}"
        return True

    return [no_value_outside_reveal, no_cross_tenant_success, expired_gets_nothing]


def _pinned(kind: str, method: str, path: str) -> list[dict[str, Any]]:
    """Inputs aimed at tenant A's stored secrets, which random ones seldom reach. Tenant B aims at A's real keys
    (writes and deletes included: they must all fail); A's own tokens write to a scratch key."""
    if path.startswith(KEY_PATH):
        key = "scratch" if method in ("PUT", "DELETE") and kind != "other" else "canary"
        return [{"path_parameters": {"owner_type": kind_, "owner_id": owner, "key_name": key}}
                for kind_, owner in (("project", "p1"), ("user", "alice"), ("system", "-"))]
    if path in ("/v1/secrets", "/v1/secrets:export"):
        return [{"query": {"ownerType": kind_, "ownerId": owner}} for kind_, owner in (("project", "p1"),
                                                                                     ("user", "alice"))]
    if path == "/v1/secrets:import":
        item = {"scope": "project:p1", "key": "canary" if kind == "other" else "scratch",
                "value": OTHER_CANARY if kind == "other" else CANARY}
        return [{"body": {"allowPlaintext": True, "items": [item]}},
                {"body": {"mode": "replace", "dryRun": True, "allowPlaintext": True, "items": [item]}}]
    return []


def _fuzz_operation(schema: Any, token: str, kind: str, method: str, path: str) -> None:
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {token}"}
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    strategies += [operation.as_strategy(generation_mode=GenerationMode.POSITIVE, **pin)
                   for pin in _pinned(kind, method, path)]
    checks = token_checks(kind)
    for strategy in strategies:
        @given(case=strategy)
        @FUZZ_SETTINGS
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance],
                                   additional_checks=checks)

        fuzz()


@pytest.mark.parametrize("kind", TOKENS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_with_every_token(fuzzed: Fuzzed, kind: str, method: str, path: str) -> None:
    _fuzz_operation(fuzzed.schema, fuzzed.tokens[kind], kind, method, path)


def test_every_operation_on_postgres(pg_db: PgDatabase) -> None:
    """Postgres refuses what SQLite and memory take (NUL, lone surrogates, huge numbers in JSONB): the admin and
    the other tenant once more, as the row-level-security app role."""
    with pg_api_client(pg_db) as api:
        for scope, value in SEEDS.items():
            api.seed(scope, "canary", value, {"provider": "notion"})
        schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", api.app)
        tokens = {"admin": api.token("alice", (*TENANT_SCOPES, ADMIN)),
                  "other": api.token("bob", TENANT_SCOPES, ("p2",))}
        for kind, token in tokens.items():
            for method, path in OPERATIONS:
                _fuzz_operation(schema, token, kind, method, path)


# Where the stateful run's PUTs write (random owner ids would almost never be a tenant's), and with which token.
WRITE_TARGETS = [("project", "p1", "admin"), ("user", "alice", "admin"), ("system", "-", "admin"),
                 ("project", "p2", "other"), ("user", "bob", "other")]


def test_stateful_chains_pass_each_secret_between_all_tokens(fuzzed: Fuzzed) -> None:
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", fuzzed.api.app)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    assert schema.apply_stateful_inference(None).selected >= 4  # PUT 201 -> GET, DELETE, reveal, rotate
    tokens, steps = fuzzed.tokens, []

    written = iter(range(1, 1_000_000))

    class Chains(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.step_number = 0  # per scenario: Hypothesis replays scenarios and needs them to repeat exactly

        def before_call(self, case: Any) -> None:
            self.step_number += 1
            self.kind = TOKENS[self.step_number % len(TOKENS)]
            if case.operation.method.upper() == "PUT":  # a root step: it creates what the links then use
                # A fresh key every time, so the PUT is a 201 (the only answer links start from) on every replay.
                n = next(written)
                owner_type, owner_id, self.kind = WRITE_TARGETS[n % len(WRITE_TARGETS)]
                key = str(case.path_parameters["key_name"])
                key = f"{key}.u{n}" if len(key) <= 120 else f"u{n}"
                case.path_parameters.update(owner_type=owner_type, owner_id=owner_id, key_name=key)
                if isinstance(case.body, dict):
                    case.body["value"] = CANARY if self.kind == "admin" else OTHER_CANARY

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {tokens[self.kind]}"}}

        def after_call(self, response: Any, case: Any) -> None:
            steps.append((case.operation.method.upper(), self.kind, response.status_code))

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            # The token is ours, not schemathesis' generated one: its "ignored auth" probe does not apply.
            case.validate_response(response, excluded_checks=[ignored_auth, positive_data_acceptance],
                                   additional_checks=token_checks(self.kind), transport_kwargs=kwargs)

    Chains.run(settings=settings(max_examples=40, stateful_step_count=6, deadline=None, database=None,
                                 derandomize=True, suppress_health_check=list(HealthCheck)))
    followed = {(method, kind) for method, kind, status in steps if method != "PUT"}
    assert {kind for _, kind in followed} == set(TOKENS), steps  # every token took part in the chains
    assert any(method == "PUT" and status == 201 for method, _, status in steps), steps
