"""Who owns `user:<subject>`: a token an operator minted (any kind) and a person's exchanged token do; a workload's
exchanged token does not, whatever its subject (an IdP chose it: `sub=alice` under a trust with no subject prefix
revealed alice's secrets to a CI job). On Postgres, row-level security enforces the same rule on its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from sprongus.domain.errors import ValidationError
from sprongus.domain.principal import Principal, TokenKind
from sprongus.domain.scope import Scope
from tests.e2e.api.conftest import ApiClient
from tests.e2e.api.pg_api import PgApiClient
from tests.harness import CANARY
from tests.pg import PgDatabase

ALICE_KEY = "/v1/secrets/user/alice/db.password"
READ_REVEAL = ["secrets:read", "secrets:reveal"]


def workload_token(api: ApiClient, trust: str | None) -> str:
    tokens = api.container.token_service()
    now = api.clock.now()
    secret, _ = tokens.issue("alice", READ_REVEAL, [], now + timedelta(hours=1), now, TokenKind.WORKLOAD, trust, "")
    return secret.reveal()


def test_an_operators_workload_token_keeps_its_subjects_scope(api: ApiClient) -> None:
    """`sprongus tokens create --kind workload --subject svc`: a service keeping its secrets in user:svc."""
    api.seed("user:alice", "db.password", CANARY)
    minted = workload_token(api, None)
    assert api.call("POST", ALICE_KEY + ":reveal", minted).get_json()["value"] == CANARY
    exchanged = workload_token(api, "ci")
    assert api.call("POST", ALICE_KEY + ":reveal", exchanged).status_code == 404


def test_no_token_of_any_kind_is_named_anonymous(api: ApiClient) -> None:
    for kind in TokenKind:
        with pytest.raises(ValidationError, match=r"^subject: 'anonymous' is reserved"):
            api.container.token_service().create("anonymous", READ_REVEAL, [], 60, kind)


@pytest.fixture
def pg_api(pg_db: PgDatabase) -> Iterator[PgApiClient]:
    client = PgApiClient(pg_db)
    yield client
    client.close()


def test_on_postgres_row_level_security_hides_user_rows_from_an_exchanged_workload(pg_api: PgApiClient) -> None:
    """The service check (Principal.can_see) is not the only one: read past it, as the app role, the row is not
    there for a caller without a personal scope."""
    pg_api.seed("user:alice", "db.password", CANARY)
    uow = pg_api.container.unit_of_work()
    scope = Scope.parse("user:alice")
    person = Principal("alice", frozenset(), kind=TokenKind.USER)
    workload = Principal("alice", frozenset(), kind=TokenKind.WORKLOAD, personal_scope=False)
    assert uow.current(person, scope, "db.password") is not None
    assert uow.current(workload, scope, "db.password") is None
