"""What the API's database role (row-level security, `sprongus_app`) can do with identity tables if the API
process is taken over: it must not mint itself a credential an exchange could not give, write trusts, revoke a
token it cannot name.

It may delete rows of jwt_replay (an exchange that fails on an outage releases its JWT id, which must be possible
before the JWT expires), so it could make a spent JWT usable again; that gives it nothing the insert policy does not
already allow it: a token within a trust's bounds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from sprongus.domain.api_token import token_hash
from sprongus.domain.errors import PermissionDenied, SprongusError
from sprongus.domain.principal import TokenKind
from tests.e2e.api.pg_api import PgApiClient, pg_api_client
from tests.harness import CANARY
from tests.pg import PgDatabase

pytestmark = pytest.mark.postgres

INSERT_TOKEN = ("INSERT INTO api_token (id, token_hash, subject, scopes, projects, created_at, expires_at, auth_time, "
                "kind, trust, key_prefix) VALUES (%s, %s, 'mallory', 'secrets:admin,secrets:read,secrets:reveal', "
                "'p1,p2', now(), now() + interval '3650 days', now(), %s, %s, '')")


@pytest.fixture
def pg_api(pg_db: PgDatabase) -> Iterator[PgApiClient]:
    with pg_api_client(pg_db) as api:
        yield api


def _refused(pg: PgDatabase, sql: str, params: tuple[object, ...] = ()) -> bool:
    with psycopg.connect(pg.app_url) as conn:
        try:
            with conn.transaction():
                conn.execute(sql, params)
        except psycopg.Error:
            return True
    return False


def test_the_app_role_cannot_write_trusts_or_operator_tokens_or_revoke_by_id(pg_api: PgApiClient) -> None:
    """Defences that hold: no operator token, no trust written, no UPDATE of api_token (revocation by id)."""
    pg = pg_api.pg
    pg_api.maintenance.trust_ops().add("ci", "https://idp.example.com", "sprongus", ["secrets:read"])
    _, victim_id = pg_api.issue("alice")
    assert _refused(pg, INSERT_TOKEN, ("tok_op", "sha256:op", "operator", None))
    assert _refused(pg, "INSERT INTO oidc_trust (name, issuer, audience, subject_claim, subject_prefix, scopes, "
                        "projects, key_prefix, ttl_seconds, kind, created_at) VALUES ('rogue', 'https://evil', "
                        "'a', 'sub', '', 'secrets:admin', '', '', 60, 'workload', now())")
    assert _refused(pg, "UPDATE oidc_trust SET scopes = 'secrets:admin'")
    assert _refused(pg, "DELETE FROM oidc_trust")
    assert _refused(pg, "UPDATE api_token SET revoked_at = now() WHERE id = %s", (victim_id,))
    assert _refused(pg, "UPDATE api_token SET kind = 'workload', scopes = 'secrets:admin'")
    assert _refused(pg, "SELECT sprongus_revoke_token(%s, now())", ("no-such-hash",)) is False  # by hash: allowed
    with pytest.raises(PermissionDenied):
        pg_api.container.token_service().revoke(victim_id)
    with pytest.raises(PermissionDenied):
        pg_api.container.token_service().create("mallory", ["secrets:admin"], [], 3600)
    with pytest.raises(PermissionDenied):
        pg_api.container.trust_ops().remove("ci")
    assert [t.name for t in pg_api.maintenance.trust_ops().list()] == ["ci"]


@pytest.mark.parametrize("kind", ["workload", "user"])
def test_the_app_role_cannot_mint_a_subject_outside_the_trusts_prefix(pg_api: PgApiClient, kind: str) -> None:
    """Found by an attack review: the policy did not check the subject, so a stolen app login inserted a `user`
    token named after a person the trust's provider never signed in (its prefix is `corp.`), with a fresh
    auth_time, and read that person's scope through the API, which decrypts for it."""
    pg_api.maintenance.trust_ops().add("people", "https://idp.example.com", "sprongus",
                                       ["secrets:read", "secrets:reveal"], subject_prefix="corp.", ttl_seconds=900,
                                       kind=kind)
    pg_api.seed("user:alice", "bank.pin", CANARY)
    insert = ("INSERT INTO api_token (id, token_hash, subject, scopes, projects, created_at, expires_at, auth_time, "
              "kind, trust, key_prefix) VALUES (%s, %s, %s, 'secrets:read,secrets:reveal', '', now(), "
              "now() + interval '10 minutes', now(), %s, 'people', '')")
    bearer = "spr_" + "A" * 43
    for n, subject in enumerate(["alice", "corp", "Corp.alice", "xcorp.alice"]):
        hashed = token_hash(bearer) if n == 0 else f"sha256:outside{n}"
        assert _refused(pg_api.pg, insert, (f"tok_out{n}", hashed, subject, kind)), subject
    assert not _refused(pg_api.pg, insert, ("tok_in", "sha256:inside", "corp.alice", kind))  # what it issues
    response = pg_api.reveal("/v1/secrets/user/alice/bank.pin", bearer)
    assert response.status_code == 401 and CANARY not in response.get_data(as_text=True)


@pytest.mark.parametrize("kind", ["workload", "user"])
def test_the_app_role_cannot_mint_an_exchanged_token_no_trust_would_issue(pg_api: PgApiClient, kind: str) -> None:
    """Found by an attack review: the api_token INSERT policy checked only `kind IN ('workload', 'user')`, so a
    taken-over API inserted a `workload` token with no trust, secrets:admin, every project and a life of ten years,
    and read the system scope with no step-up. The policy now requires an existing trust of that kind, scopes and
    projects within the trust's, a key prefix under the trust's, and a life within the trust's TTL."""
    pg_api.maintenance.trust_ops().add(f"narrow-{kind}", "https://issuer.example", "sprongus",
                                       ["secrets:read", "secrets:reveal"], projects=["p1"], key_prefix="app.",
                                       ttl_seconds=900, kind=kind)
    insert = ("INSERT INTO api_token (id, token_hash, subject, scopes, projects, created_at, expires_at, auth_time, "
              "kind, trust, key_prefix) VALUES (%s, %s, 'mallory', %s, %s, now(), now() + %s::interval, now(), %s, "
              "%s, %s)")
    trust = f"narrow-{kind}"
    ok = ("secrets:read", "p1", "10 minutes", kind, trust, "app.")
    assert _refused(pg_api.pg, INSERT_TOKEN, (f"tok_{kind}", f"sha256:{kind}", kind, None))
    assert _refused(pg_api.pg, INSERT_TOKEN, (f"tok_{kind}2", f"sha256:{kind}2", kind, "no-such-trust"))
    for n, bad in enumerate([("secrets:admin,secrets:read", *ok[1:]), (ok[0], "p1,p2", *ok[2:]),
                             (*ok[:2], "3650 days", *ok[3:]), (*ok[:5], ""),
                             (*ok[:3], "workload" if kind == "user" else "user", *ok[4:])]):
        assert _refused(pg_api.pg, insert, (f"tok_bad{n}", f"sha256:bad{n}", *bad)), bad
    assert not _refused(pg_api.pg, insert, ("tok_ok", "sha256:ok", *ok))  # what the trust issues still goes in

    now = pg_api.clock.now()
    try:
        secret, _ = pg_api.container.token_service().issue(
            "mallory", ["secrets:admin", "secrets:reveal"], ["p1"], now + timedelta(days=3650), now,
            TokenKind(kind), None, "")
    except SprongusError:
        return  # refused: the defence holds end to end
    pg_api.seed("system", "root.key", CANARY)
    pg_api.clock.advance(3600)
    response = pg_api.reveal("/v1/secrets/system/-/root.key", secret.reveal())
    assert response.status_code != 200 and CANARY not in response.get_data(as_text=True)
