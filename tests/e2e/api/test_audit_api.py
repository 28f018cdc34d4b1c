"""GET /v1/audit: a tenant with secrets:admin reads the system scope's and its projects' events, newest first, in
pages; nothing of another project, no user:* rows, no vault-wide rows; bad input is a 422 naming the field; no
value ever (a canary secret is revealed, then looked for in every answer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditAction, Outcome
from sprongus.domain.scope import Scope
from sprongus.service.audit_query import AuditQuery
from tests.e2e.api.conftest import ADMIN, KEY, READ, REVEAL, WRITE, ApiClient, problem
from tests.e2e.api.pg_api import PgApiClient
from tests.pg import PgDatabase

CANARY = "canary-7f3e-Zebra-Quokka-9d1c"
AUDIT = "/v1/audit"


def populate(api: ApiClient) -> str:
    """Events in project:p1, project:p2, user:alice, system and vault-wide (scope NULL); returns an admin token
    for project p1."""
    api.seed("project:p1", "db.password", CANARY)
    api.seed("project:p2", "db.password", "other-tenant")
    api.seed("user:alice", "notes", "private")
    api.seed("system", "smtp.password", "sys")
    api.call("GET", "/v1/secrets", token="spr_" + "x" * 43)  # a refused token: a vault-wide row
    api.clock.advance(60)
    assert api.reveal(KEY).status_code == 200  # alice reveals the canary: a reveal row in project:p1
    return api.token("auditor", (READ, ADMIN), ("p1",))


def read_all(api: ApiClient, token: str, limit: int = 2, **query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = api.call("GET", AUDIT, token, query_string=params)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert CANARY not in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            return items


def test_a_tenant_sees_only_the_system_scope_and_its_projects(any_api: ApiClient) -> None:
    token = populate(any_api)
    items = read_all(any_api, token)
    assert {item["scope"] for item in items} == {"system", "project:p1"}
    assert any(item["action"] == "reveal" and item["actor"] == "alice" for item in items)
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)  # newest first, no duplicates
    everything = any_api.container.audit_reader().list(Principal.local_owner("ops"), AuditQuery(), None, 500).items
    visible = [e.seq for e in everything if e.scope in ("system", "project:p1")]
    assert seqs == visible  # complete: every visible event, across pages
    assert read_all(any_api, token, scope="project:p2") == []
    assert read_all(any_api, token, scope="user:alice") == []
    assert [i["keyName"] for i in read_all(any_api, token, scope="system", action="create")] == ["smtp.password"]


def test_a_token_without_secrets_admin_is_refused(any_api: ApiClient) -> None:
    populate(any_api)
    response = any_api.call("GET", AUDIT)  # alice: read, write, reveal on p1
    body = problem(response, 403)
    assert "secrets:admin" in response.headers["WWW-Authenticate"]
    assert CANARY not in str(body)
    assert problem(any_api.call("GET", AUDIT, anonymous=True), 401)


@pytest.mark.parametrize(("field", "value"), [
    ("cursor", "not-a-cursor-<script>"), ("cursor", "YTE6LTE"), ("limit", "0"), ("limit", "501"),
    ("limit", "ten<script>"), ("since", "last-tuesday<script>"), ("until", "2026-13-01T00:00:00Z"),
    ("action", "teleport<script>"), ("scope", "team:<script>"), ("key", "1<script>"), ("actor", "a\x01b")])
def test_a_malformed_filter_is_a_422_naming_the_field_without_echoing_it(api: ApiClient, field: str,
                                                                          value: str) -> None:
    token = api.token("auditor", (ADMIN,), ("p1",))
    response = api.call("GET", AUDIT, token, query_string={field: value})
    body = problem(response, 422)
    assert list(body["errors"]) == [field]
    text = response.get_data(as_text=True)
    assert "<script>" not in text and (len(value) < 5 or value not in text)


def test_unknown_and_repeated_parameters_are_refused(api: ApiClient) -> None:
    token = api.token("auditor", (ADMIN,), ("p1",))
    assert list(problem(api.call("GET", AUDIT, token, query_string={"sneaky<x>": "1"}), 422)["errors"]) == ["query"]
    repeated = api.call("GET", AUDIT + "?limit=1&limit=2", token)
    assert list(problem(repeated, 422)["errors"]) == ["limit"]


@pytest.mark.parametrize("query", ["bogus=1", "limit=1&limit=2", "limit=abc", ""])
def test_without_secrets_admin_any_query_is_403_and_audited(api: ApiClient, query: str) -> None:
    """The permission first, then the query: an unknown or repeated parameter answered 422, unaudited, to a token
    that may not read the trail at all."""
    reader = api.token("reader", (READ,), ("p1",))
    before = len(api.events())
    assert problem(api.call("GET", AUDIT + "?" + query, reader), 403)
    denied = api.events()[before:]
    assert [(e.actor, e.action, e.outcome) for e in denied] == [("reader", AuditAction.LIST, Outcome.DENIED)]


def test_an_admins_unknown_parameter_is_422_and_audited(api: ApiClient) -> None:
    token = api.token("auditor", (ADMIN,), ("p1",))
    before = len(api.events())
    assert list(problem(api.call("GET", AUDIT + "?bogus=1", token), 422)["errors"]) == ["query"]
    assert [(e.actor, e.action) for e in api.events()[before:]] == [("auditor", AuditAction.LIST)]


def test_a_refused_tokens_audit_row_keeps_a_bounded_path(api: ApiClient) -> None:
    """Anyone can send a request with a bad token: its audit row must not grow with a 4 KiB request line."""
    path = "/v1/secrets/project/p1/" + "k" * 4000
    assert problem(api.call("GET", path, token="spr_" + "x" * 43), 401)
    row = api.events()[-1]
    assert row.action is AuditAction.AUTHENTICATE and row.actor == "anonymous"
    assert row.detail["path"] == path[:256] + "..."


def test_no_answer_holds_a_value(any_api: ApiClient) -> None:
    token = populate(any_api)
    bodies = [any_api.call("GET", AUDIT, token).get_data(as_text=True),
              any_api.call("GET", AUDIT, token, query_string={"cursor": CANARY}).get_data(as_text=True),
              any_api.call("GET", AUDIT, token, query_string={"key": CANARY}).get_data(as_text=True),
              any_api.call("GET", AUDIT).get_data(as_text=True)]
    assert all(CANARY not in body for body in bodies)


def test_the_openapi_document_lists_the_endpoint(api: ApiClient) -> None:
    spec = api.client.get("/v1/openapi.json").get_json()
    assert "get" in spec["paths"]["/v1/audit"]


@pytest.fixture
def pg_api(pg_db: PgDatabase) -> Iterator[PgApiClient]:
    client = PgApiClient(pg_db)
    yield client
    client.close()


def test_on_postgres_as_the_app_role_with_tenancy_and_pages(pg_api: PgApiClient) -> None:
    token = populate(pg_api)
    auditor = pg_api.maintenance.service_deps().auditor
    for n in range(5):  # more than a page, in the other project too
        auditor.record(Principal("ops", owner=True), AuditAction.ROTATE, Scope.parse("project:p2"), f"k{n}", 1)
        auditor.record(Principal("ops", owner=True), AuditAction.ROTATE, Scope.parse("project:p1"), f"k{n}", 1)
    auditor.record(Principal("anonymous"), AuditAction.AUTHENTICATE, None, None, None, Outcome.DENIED)
    items = read_all(pg_api, token, limit=3)
    assert {item["scope"] for item in items} == {"system", "project:p1"}
    assert len(items) == len({item["seq"] for item in items}) == 2 + 1 + 5  # 2 creates, a reveal, 5 rotations
    assert pg_api.maintenance.audit_reader().verify(Principal.local_owner("ops")).problems == []


def test_a_database_outage_is_a_503(pg_api: PgApiClient, pg_db: PgDatabase) -> None:
    token = populate(pg_api)
    assert pg_api.call("GET", AUDIT, token).status_code == 200
    postgres = pg_db.admin_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{pg_db.name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                     "pg_backend_pid()", (pg_db.name,))
    try:
        response = pg_api.call("GET", AUDIT, token)
        body = problem(response, 503)
        assert body["type"] == "urn:sprongus:problem:storage-unavailable" and CANARY not in str(body)
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{pg_db.name}" ALLOW_CONNECTIONS true')
    assert pg_api.call("GET", AUDIT, token).status_code == 200  # back without a restart


def test_writes_still_answer_with_the_trail_signed(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(sqlite=True)
    assert api.put(KEY, CANARY).status_code == 201
    report = api.container.audit_reader().verify(Principal.local_owner("ops"))
    assert report.problems == [] and report.macs_checked >= 1 and WRITE and REVEAL


def test_a_tenant_gets_no_chain_hashes_that_would_test_guesses_of_hidden_rows(any_api: ApiClient) -> None:
    """With its neighbours' hashes, a hidden row's hash confirms a guess of its fields offline: here, that
    project p2 holds `db.password`, written by the CLI (no request id, no client address)."""
    token = populate(any_api)
    before = any_api.container.audit_reader().list(Principal.local_owner("ops"), AuditQuery(), None, 500).items
    assert all(row.hash.startswith("sha256:") for row in before)  # the owner's view keeps them
    items = read_all(any_api, token, limit=500)
    assert items and all(item["prevHash"] is None and item["hash"] is None for item in items)
    assert "sha256:" not in str(items)
