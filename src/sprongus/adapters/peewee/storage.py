"""Every store on one peewee database (SQLite or Postgres)."""

from __future__ import annotations

from functools import cache, partial
from typing import TYPE_CHECKING

from sprongus.adapters.peewee.audit import PeeweeAuditSink
from sprongus.adapters.peewee.models import BoundModels
from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
from sprongus.adapters.peewee.vault_keys import PeeweeVaultKeyStore
from sprongus.ports.storage import Storage

if TYPE_CHECKING:
    from sprongus.ports.tokens import ApiStores


def peewee_storage(models: BoundModels) -> Storage:
    audit = PeeweeAuditSink(models)
    return Storage(uow=PeeweeUnitOfWork(models), audit=audit, audit_trail=audit,
                   vault_keys=PeeweeVaultKeyStore(models), api_stores=cache(partial(_api_stores, models)),
                   database=models)


def _api_stores(models: BoundModels) -> ApiStores:
    from sprongus.adapters.peewee.identity import PeeweeJwtReplayStore, PeeweeTrustStore
    from sprongus.adapters.peewee.tokens import PeeweeApiTokenStore, PeeweeIdempotencyStore, PeeweeRevealTokenStore
    from sprongus.ports.tokens import ApiStores

    return ApiStores(api_tokens=PeeweeApiTokenStore(models), reveal_tokens=PeeweeRevealTokenStore(models),
                     idempotency=PeeweeIdempotencyStore(models), trusts=PeeweeTrustStore(models),
                     jwt_replay=PeeweeJwtReplayStore(models))
