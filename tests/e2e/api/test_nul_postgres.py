"""NUL characters on Postgres, whose TEXT and JSONB refuse them: never a 503, refused tokens still audited.

Release 1: `%00` in a path with a bad token answered 503 and left no `authenticate/denied` row (the row carried
the path); a NUL in meta answered 503 instead of 422. Values may hold any UTF-8, NUL included: they are encrypted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.e2e.api.conftest import KEY, problem
from tests.e2e.api.pg_api import PgApiClient, pg_api_client
from tests.harness import CANARY
from tests.pg import PgDatabase

IMPORT = "/v1/secrets:import"
NUL_PATHS = ["/v1/secrets/project/p1/db%00password", "/v1/secrets/project/p%001/db.password",
             "/v1/secrets/proj%00ect/p1/db.password", "/v1/secrets/project/p1/db.password%00:reveal",
             "/v1/secrets?ownerType=project&ownerId=p1%00"]


@pytest.fixture
def pg_api(pg_db: PgDatabase) -> Iterator[PgApiClient]:
    with pg_api_client(pg_db) as api:
        yield api


def test_a_nul_in_the_path_with_a_bad_token_is_401_and_audited(pg_api: PgApiClient) -> None:
    for n, path in enumerate(NUL_PATHS):
        method = "POST" if path.endswith(":reveal") else "GET"
        request_id = f"nul-denied-{n}"
        response = pg_api.call(method, path, "spr_forged", headers={"X-Request-ID": request_id})
        problem(response, 401)
        rows = pg_api.audit_rows(request_id)
        assert [(r[0], r[1], r[2]) for r in rows] == [("anonymous", "authenticate", "denied")], path
        recorded = rows[0][5]["path"]
        assert "\x00" not in recorded, recorded
        if "?" not in path:  # the path (never the query) is recorded: escaped, not dropped
            assert "\\x00" in recorded, recorded
    assert pg_api.maintenance.audit_trail().verify_chain().problems == []


def test_a_nul_in_a_name_scope_or_prefix_is_refused_naming_the_field(pg_api: PgApiClient) -> None:
    pg_api.seed("project:p1", "db.password", CANARY)
    cases: list[tuple[str, str, Any, str]] = [
        ("GET", "/v1/secrets/project/p1/db%00password", None, "key"),
        ("PUT", "/v1/secrets/project/p1/db%00password", {"value": CANARY}, "key"),
        ("GET", "/v1/secrets/project/p%001/db.password", None, "ownerId"),
        ("GET", "/v1/secrets?ownerType=project&ownerId=p1&prefix=db%00", None, "prefix"),
        ("GET", "/v1/secrets:export?ownerType=project&ownerId=p1&prefix=db%00", None, "prefix"),
        ("POST", IMPORT, {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "a\x00b", "value": CANARY}]},
         "items[0].key"),
        ("POST", IMPORT, {"allowPlaintext": True, "items": [{"scope": "project:p\x001", "key": "ab", "value": CANARY}]},
         "items[0].scope"),
    ]
    for method, path, body, field in cases:
        answer = problem(pg_api.call(method, path, json=body), 422)
        assert field in answer["errors"], (path, answer)
        assert CANARY not in json.dumps(answer)


def test_a_nul_in_meta_is_422_and_nothing_is_written(pg_api: PgApiClient) -> None:
    for meta in ({"note": "a\x00b"}, {"no\x00te": "ab"}):
        answer = problem(pg_api.call("PUT", KEY, json={"value": CANARY, "meta": meta}), 422)
        assert answer["errors"] == {"meta": answer["errors"]["meta"]} and CANARY not in json.dumps(answer)
        item = {"scope": "project:p1", "key": "db.password", "value": CANARY, "meta": meta}
        answer = problem(pg_api.call("POST", IMPORT, json={"allowPlaintext": True, "items": [item]}), 422)
        assert list(answer["errors"]) == ["items[0].meta"]
    problem(pg_api.call("GET", KEY), 404)


def test_a_nul_in_a_value_is_legal_and_round_trips(pg_api: PgApiClient) -> None:
    value = f"{CANARY}\x00after the nul"
    created = pg_api.put(KEY, value)
    assert created.status_code == 201 and CANARY not in created.get_data(as_text=True)
    assert pg_api.reveal(KEY, json={}).get_json()["value"] == value


def test_an_idempotency_key_with_a_nul_is_422_not_503(pg_api: PgApiClient) -> None:
    answer = problem(pg_api.put(KEY, CANARY, headers={"Idempotency-Key": "k\x001"}), 422)
    assert list(answer["errors"]) == ["Idempotency-Key"]
    with psycopg.connect(pg_api.pg.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM idempotency_key").fetchone() == (0,)
    assert pg_api.put(KEY, CANARY, headers={"Idempotency-Key": "k-1"}).status_code == 201


def test_a_nul_in_a_forwarded_address_is_stored_escaped(pg_db: PgDatabase) -> None:
    """Behind a trusted proxy the client address comes from a header, and lands in audit rows."""
    with pg_api_client(pg_db, SPRONGUS_TRUSTED_PROXIES="1") as api:
        headers = {"X-Forwarded-For": "198.51.100.7\x00", "X-Request-ID": "fwd-nul"}
        problem(api.call("GET", KEY, "spr_forged", headers=headers), 401)
        (row,) = api.audit_rows("fwd-nul")
        assert row[1:3] == ("authenticate", "denied")
    with psycopg.connect(pg_db.admin_url) as conn:
        (address,) = conn.execute("SELECT client_address FROM audit_event WHERE request_id = 'fwd-nul'").fetchone()
    assert address == "198.51.100.7\\x00"
