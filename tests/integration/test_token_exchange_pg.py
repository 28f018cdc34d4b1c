"""The token exchange on Postgres, served as the row-level-security app role: it may insert workload and user
tokens and JWT ids, read trusts, and revoke by hash; trusts are written by a maintenance login."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest

from sprongus.domain.errors import PermissionDenied
from tests.e2e.api.pg_api import PgApiClient, pg_api_client
from tests.harness import CANARY
from tests.integration.federation import INVALID_GRANT, exchange_form
from tests.oidc.issuer import OidcIssuer
from tests.pg import PgDatabase

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_api(pg_db: PgDatabase) -> Iterator[PgApiClient]:
    with pg_api_client(pg_db, SPRONGUS_RATE_LIMIT_EXCHANGE="1000/minute") as api:
        api.clock.advance((datetime.now(UTC).replace(microsecond=0) - api.clock.now()).total_seconds())
        yield api


def test_an_exchange_on_postgres_as_the_app_role(pg_api: PgApiClient) -> None:
    with OidcIssuer() as issuer:
        trust_ops = pg_api.maintenance.trust_ops()
        trust_ops.add("gha", issuer.url, "sprongus", ["secrets:read", "secrets:reveal"], projects=["p1"],
                      claims=["repository=acme/*"], subject_prefix="gha:")
        with pytest.raises(PermissionDenied):  # the app role reads trusts but may not write them
            pg_api.container.trust_ops().add("rogue", issuer.url, "sprongus", ["secrets:admin"])
        pg_api.seed("project:p1", "db.password", CANARY)
        jwt = issuer.github_actions_token(repository="acme/shop")

        def post() -> tuple[int, dict[str, object]]:
            response = pg_api.client.post("/v1/auth/token", data=exchange_form(jwt),
                                          headers={"X-Request-ID": "pg-exchange"})
            return response.status_code, response.get_json()

        status, body = post()
        assert status == 200, body
        bearer = str(body["access_token"])
        assert post() == (400, INVALID_GRANT)  # the JWT id is in jwt_replay now

    revealed = pg_api.reveal("/v1/secrets/project/p1/db.password", bearer)
    assert revealed.status_code == 200 and revealed.get_json()["value"] == CANARY
    me = pg_api.call("GET", "/v1/auth/whoami", bearer).get_json()
    assert (me["subject"], me["kind"], me["trust"]) == ("gha:repo:acme/shop:ref:refs/heads/main", "workload", "gha")

    assert pg_api.call("POST", "/v1/auth/revoke", bearer).status_code == 200
    assert pg_api.call("GET", "/v1/auth/whoami", bearer).status_code == 401

    rows = pg_api.audit_rows("pg-exchange")
    assert [(r[0], r[1], r[2]) for r in rows] == [(me["subject"], "exchange", "success"),
                                                  ("anonymous", "exchange", "denied")]
    assert rows[1][5] == {"trust": "gha", "reason": "already exchanged (replay)"}
    with psycopg.connect(pg_api.pg.admin_url) as conn:
        kinds = conn.execute("SELECT kind, trust, revoked_at IS NOT NULL FROM api_token WHERE subject = %s",
                             (me["subject"],)).fetchall()
        replayed = conn.execute("SELECT count(*) FROM jwt_replay").fetchone()
        stored = conn.execute("SELECT count(*) FROM audit_event WHERE detail::text LIKE %s OR actor LIKE %s",
                              (f"%{jwt[-20:]}%", f"%{bearer[-20:]}%")).fetchone()
    assert kinds == [("workload", "gha", True)]
    assert replayed == (1,) and stored == (0,)


def test_concurrent_exchanges_of_one_jwt_on_postgres_exactly_one_wins(pg_api: PgApiClient) -> None:
    with OidcIssuer() as issuer:
        pg_api.maintenance.trust_ops().add("ci", issuer.url, "sprongus", ["secrets:read"], projects=["p1"])
        warm = pg_api.client.post("/v1/auth/token", data=exchange_form(issuer.mint()))
        assert warm.status_code == 200, warm.get_data(as_text=True)  # keys cached: the race is the database's
        token = issuer.mint()
        barrier = threading.Barrier(6)

        def attempt(_: int) -> int:
            client = pg_api.app.test_client()
            barrier.wait()
            return client.post("/v1/auth/token", data=exchange_form(token)).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(attempt, range(6)))

    assert statuses == [200] + [400] * 5


def test_an_issuer_with_a_nul_is_invalid_grant_not_a_database_error(pg_api: PgApiClient) -> None:
    with OidcIssuer() as issuer:
        pg_api.maintenance.trust_ops().add("ci", issuer.url, "sprongus", ["secrets:read"], projects=["p1"])
        for iss in (issuer.url + "\x00", "\ud800", "x" * 5000):
            response = pg_api.client.post("/v1/auth/token", data=exchange_form(issuer.mint(iss=iss)))
            assert (response.status_code, response.get_json()) == (400, INVALID_GRANT), iss[:40]
