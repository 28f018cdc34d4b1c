"""`POST /v1/secrets:reveal` on every storage backend: memory, SQLite, and Postgres as the row-level-security app role.

The Flask app runs in-process on a real container; the audit rows are read back from the backend's own store.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from werkzeug.test import TestResponse

from sprongus.adapters.memory import ManualClock
from sprongus.adapters.peewee.audit import PeeweeAuditSink
from sprongus.domain.import_item import ImportItem
from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container
from tests.e2e.api.conftest import READ, ROOMY_LIMITS, SQLITE_KEYS, TENANT_SCOPES, ApiClient, container_with_clock
from tests.e2e.api.pg_api import PgApiClient
from tests.harness import CANARY
from tests.pg import PgDatabase, fresh_database

BACKENDS = ["memory", "sqlite", "postgres"]
SCOPE = "project:p1"
_ids = itertools.count()


class Backend:
    """An ApiClient plus what the test needs beside the API: the writer's container and the audit rows."""

    def __init__(self, name: str, api: ApiClient, writer: Container) -> None:
        self.name, self.api, self.writer = name, api, writer

    def seed_many(self, scope: str, values: dict[str, str]) -> None:
        """Many secrets in one import transaction, as the vault owner (on Postgres, the maintenance role)."""
        items = [ImportItem(Scope.parse(scope), key, SecretValue(value)) for key, value in values.items()]
        self.writer.transfer_ops().import_(Principal.local_owner("ops"), items, allow_plaintext=True)

    def token(self, subject: str = "alice", scopes: tuple[str, ...] = TENANT_SCOPES, key_prefix: str = "") -> str:
        secret, _ = self.writer.token_service().create(subject, list(scopes), ["p1"], 3600, key_prefix=key_prefix)
        return str(secret.reveal())

    def reveal(self, body: dict[str, Any], token: str | None = None,
               request_id: str | None = None) -> tuple[TestResponse, str]:
        rid = request_id or f"batch-{next(_ids)}"
        response = self.api.call("POST", "/v1/secrets:reveal", token, json={"ownerType": "project", "ownerId": "p1",
                                                                              **body},
                                 headers={"X-Request-ID": rid})
        return response, rid

    def audit(self, request_id: str) -> list[tuple[str, str, str | None, Any]]:
        """(action, outcome, key_name, detail) of this request's audit rows, in order."""
        if self.name == "memory":
            return [(e.action.value, e.outcome.value, e.key_name, e.detail) for e in self.api.events()
                    if e.request_id == request_id]
        m = self.writer.database().audit
        rows = m.select().where(m.request_id == request_id).order_by(m.seq)
        return [(r.action, r.outcome, r.key_name, r.detail) for r in rows]

    def sink(self) -> Any:
        return self.api.container.audit_sink()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = ManualClock()
    if request.param == "postgres":
        with fresh_database(migrated=True) as pg:
            yield from _postgres(pg)
        return
    env = {"SPRONGUS_ENV": "test", **ROOMY_LIMITS}
    if request.param == "sqlite":
        env.update({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path / "vault"), **SQLITE_KEYS})
    api = ApiClient(container_with_clock(Settings.from_mapping(env), clock), clock, None)
    try:
        yield Backend(request.param, api, api.container)
    finally:
        api.close()


def _postgres(pg: PgDatabase) -> Iterator[Backend]:
    api = PgApiClient(pg)
    try:
        yield Backend("postgres", api, api.maintenance)
    finally:
        api.close()


def items_of(response: TestResponse) -> dict[str, str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {item["keyName"]: item["value"] for item in response.get_json()["items"]}


def revealed(backend: Backend, request_id: str) -> list[str]:
    return [str(key) for action, outcome, key, _ in backend.audit(request_id)
            if action == "reveal" and outcome == "success"]


def test_two_hundred_secrets_in_one_call_each_audited_under_the_request_id(backend: Backend) -> None:
    values = {f"app.k{i:03d}": f"{CANARY}-{i}" for i in range(200)}
    backend.seed_many(SCOPE, values)
    response, rid = backend.reveal({})  # neither keys nor prefix: the whole scope
    body = response.get_json()
    assert items_of(response) == values and body["missing"] == []
    assert [item["keyName"] for item in body["items"]] == sorted(values)  # by key name
    assert {item["version"] for item in body["items"]} == {1}
    assert response.headers["Cache-Control"] == "no-store"
    rows = backend.audit(rid)
    assert [(action, outcome, key) for action, outcome, key, _ in rows] == \
        [("reveal", "success", key) for key in sorted(values)]
    assert all(detail == {"batch": True} for *_, detail in rows)
    if backend.name != "memory":  # the rows of one batch chain on like any others
        report = backend.writer.audit_trail().verify_chain()
        assert report.problems == []


def test_the_prefix_and_the_keys_forms_and_the_missing_list(backend: Backend) -> None:
    backend.seed_many(SCOPE, {"db.user": "u", "db.password": CANARY, "smtp.host": "h"})
    by_prefix, _ = backend.reveal({"prefix": "db."})
    assert items_of(by_prefix) == {"db.password": CANARY, "db.user": "u"} and by_prefix.get_json()["missing"] == []
    by_keys, rid = backend.reveal({"keys": ["smtp.host", "db.user", "nope", "db.user", "also.nope"]})
    assert items_of(by_keys) == {"db.user": "u", "smtp.host": "h"}
    assert by_keys.get_json()["missing"] == ["also.nope", "nope"]  # duplicates count once; sorted
    assert sorted(revealed(backend, rid)) == ["db.user", "smtp.host"]
    assert {(key, outcome) for _, outcome, key, _ in backend.audit(rid) if outcome != "success"} == \
        {("nope", "not_found"), ("also.nope", "not_found")}
    empty, _ = backend.reveal({"prefix": "zzz"})
    assert empty.get_json() == {"items": [], "missing": []}


def test_a_key_prefix_token_sees_only_its_keys_the_others_are_missing(backend: Backend) -> None:
    backend.seed_many(SCOPE, {"app.a": "a", "app.b": "b", "ops.root": CANARY})
    narrow = backend.token("svc", key_prefix="app.")
    everything, _ = backend.reveal({}, narrow)
    assert items_of(everything) == {"app.a": "a", "app.b": "b"}
    other_prefix, _ = backend.reveal({"prefix": "ops."}, narrow)
    assert other_prefix.get_json() == {"items": [], "missing": []}
    named, rid = backend.reveal({"keys": ["app.a", "ops.root", "ops.none"]}, narrow)
    assert items_of(named) == {"app.a": "a"}
    assert named.get_json()["missing"] == ["ops.none", "ops.root"]  # present but hidden looks like absent
    assert CANARY not in named.get_data(as_text=True)
    assert revealed(backend, rid) == ["app.a"]


def test_another_tenants_scope_is_404_and_nothing_is_revealed(backend: Backend) -> None:
    backend.seed_many("project:p2", {"db.password": CANARY})
    response, rid = backend.api.call("POST", "/v1/secrets:reveal", json={"ownerType": "project", "ownerId": "p2"},
                                     headers={"X-Request-ID": "other-tenant"}), "other-tenant"
    assert response.status_code == 404 and CANARY not in response.get_data(as_text=True)
    assert revealed(backend, rid) == []
    assert [(outcome, key) for _, outcome, key, _ in backend.audit(rid)] == [("denied", None)]


def test_a_token_without_the_reveal_scope_is_403(backend: Backend) -> None:
    backend.seed_many(SCOPE, {"db.password": CANARY})
    response, rid = backend.reveal({}, backend.token("reader", (READ,)))
    assert response.status_code == 403 and CANARY not in response.get_data(as_text=True)
    assert revealed(backend, rid) == []


def test_one_rate_limit_hit_per_call_whatever_its_size(backend: Backend) -> None:
    backend.seed_many(SCOPE, {f"k{i}": "v" for i in range(20)})
    token = backend.token("counted")
    for _ in range(60):  # the default reveal_batch limit: 60 a minute, each call one hit however many it reveals
        assert backend.reveal({}, token)[0].status_code == 200
    refused, rid = backend.reveal({}, token)
    assert refused.status_code == 429 and refused.headers["RateLimit-Policy"] == '"reveal_batch";q=60;w=60'
    assert revealed(backend, rid) == []
    assert backend.api.reveal("/v1/secrets/project/p1/k1", token).status_code == 200  # its own limit


def test_if_the_audit_rows_cannot_be_written_nothing_is_revealed(backend: Backend,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    values = {f"k{i:03d}": f"{CANARY}-{i}" for i in range(200)}
    backend.seed_many(SCOPE, values)
    sink = backend.sink()
    if isinstance(sink, PeeweeAuditSink):
        # The store fails half way: the second multi-row INSERT of the batch, after the first went in.
        calls = itertools.count()
        real = sink._insert_rows

        def failing_second(count: int) -> str:
            return real(count) if next(calls) == 0 else "INSERT INTO no_such_table VALUES (1)"

        monkeypatch.setattr(sink, "_insert_rows", failing_second)
    else:
        monkeypatch.setattr(sink, "available", False)
    response, rid = backend.reveal({})
    text = response.get_data(as_text=True)
    assert response.status_code == 503, text
    assert CANARY not in text
    monkeypatch.undo()
    assert backend.audit(rid) == []  # all or none: not one row of the batch stayed
    if backend.name != "memory":
        assert backend.writer.audit_trail().verify_chain().problems == []


def test_more_than_a_thousand_keys_is_422_and_reveals_nothing(backend: Backend) -> None:
    values = {f"k{i:04d}": CANARY for i in range(1001)}
    backend.seed_many(SCOPE, values)
    too_many, rid = backend.reveal({"keys": sorted(values)})
    assert too_many.status_code == 422 and set(too_many.get_json()["errors"]) == {"keys"}
    assert CANARY not in too_many.get_data(as_text=True) and backend.audit(rid) == []  # refused by the schema
    wide, rid = backend.reveal({"prefix": "k"})
    problem = wide.get_json()
    assert wide.status_code == 422 and set(problem["errors"]) == {"prefix"}, problem
    assert "prefix" in problem["detail"] and CANARY not in wide.get_data(as_text=True)
    assert revealed(backend, rid) == []
    assert [(outcome, key) for _, outcome, key, _ in backend.audit(rid)] == [("invalid", None)]
    exactly, _ = backend.reveal({"keys": sorted(values)[:1000]})
    assert len(items_of(exactly)) == 1000


def test_a_damaged_row_fails_the_batch_and_reveals_nothing(backend: Backend) -> None:
    if backend.name == "memory":
        pytest.skip("a stored row that does not decode needs a database")
    backend.seed_many(SCOPE, {"a": CANARY, "b": "fine"})
    db: peewee.Database = backend.writer.database().db
    with db.atomic():  # meta that is no object: a row that does not decode (a JSON array on both dialects)
        db.execute_sql(f"UPDATE secret_kv SET meta = '[1, 2]' WHERE key_name = {db.param}", ["a"])  # type: ignore[no-untyped-call]
    response, rid = backend.reveal({})
    assert response.status_code == 500 and response.get_json()["type"].endswith(":integrity"), response.get_json()
    assert CANARY not in response.get_data(as_text=True) and "fine" not in response.get_data(as_text=True)
    assert revealed(backend, rid) == []
