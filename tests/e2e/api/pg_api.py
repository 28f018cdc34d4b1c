"""The Flask app on a real, migrated Postgres database, as the row-level-security app role.

Tokens and seeds go through a second container logged in as the maintenance role: the app role may not write
`api_token` (tokens are made only by the operator), exactly as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container
from tests.e2e.api.conftest import ROOMY_LIMITS, SQLITE_KEYS, TENANT_SCOPES, ApiClient, container_with_clock
from tests.pg import PgDatabase


def _container(url: str, clock: ManualClock, settings: dict[str, str]) -> Container:
    env = {"SPRONGUS_ENV": "dev", "SPRONGUS_DATABASE_URL": url, **SQLITE_KEYS, **ROOMY_LIMITS, **settings}
    return container_with_clock(Settings.from_mapping(env), clock)


class PgApiClient(ApiClient):
    """ApiClient whose app runs as the app role; tokens, seeds and audit reads use the maintenance role."""

    def __init__(self, pg: PgDatabase, **settings: str) -> None:
        clock = ManualClock()
        self.pg = pg
        self.maintenance = _container(pg.maintenance_url, clock, settings)
        super().__init__(_container(pg.app_url, clock, settings), clock, None)

    def issue(self, subject: str, scopes: tuple[str, ...] = TENANT_SCOPES, projects: tuple[str, ...] = ("p1",),
              ttl: int = 3600) -> tuple[str, str]:
        secret, record = self.maintenance.token_service().create(subject, list(scopes), list(projects), ttl)
        return secret.reveal(), record.id

    def seed(self, scope: str, key: str, value: str, meta: dict[str, Any] | None = None) -> None:
        from sprongus.domain.principal import Principal
        from sprongus.domain.scope import Scope
        from sprongus.domain.values import SecretValue

        self.maintenance.secret_ops().set(Principal.local_owner("ops"), Scope.parse(scope), key,
                                          SecretValue(value), meta)

    def audit_rows(self, request_id: str) -> list[tuple[Any, ...]]:
        """(actor, action, outcome, scope, key_name, detail) of the rows with this request id, read as superuser."""
        with psycopg.connect(self.pg.admin_url) as conn:
            return list(conn.execute("SELECT actor, action, outcome, scope, key_name, detail FROM audit_event "
                                     "WHERE request_id = %s ORDER BY seq", (request_id,)).fetchall())

    def close(self) -> None:
        super().close()
        models = self.maintenance.database()
        if models is not None:
            models.db.close()


@contextmanager
def pg_api_client(pg: PgDatabase, **settings: str) -> Iterator[PgApiClient]:
    api = PgApiClient(pg, **settings)
    try:
        yield api
    finally:
        api.close()
