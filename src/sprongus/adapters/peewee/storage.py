"""Every store on one peewee database (SQLite or Postgres)."""

from __future__ import annotations

from sprongus.adapters.peewee.audit import PeeweeAuditSink
from sprongus.adapters.peewee.identity import PeeweeJwtReplayStore, PeeweeTrustStore
from sprongus.adapters.peewee.models import BoundModels
from sprongus.adapters.peewee.repository import PeeweeUnitOfWork
from sprongus.adapters.peewee.tokens import PeeweeApiTokenStore, PeeweeIdempotencyStore, PeeweeRevealTokenStore
from sprongus.adapters.peewee.vault_keys import PeeweeVaultKeyStore
from sprongus.ports.storage import Storage


def peewee_storage(models: BoundModels) -> Storage:
    audit = PeeweeAuditSink(models)
    return Storage(uow=PeeweeUnitOfWork(models), audit=audit, audit_trail=audit,
                   api_tokens=PeeweeApiTokenStore(models), reveal_tokens=PeeweeRevealTokenStore(models),
                   idempotency=PeeweeIdempotencyStore(models), vault_keys=PeeweeVaultKeyStore(models),
                   trusts=PeeweeTrustStore(models), jwt_replay=PeeweeJwtReplayStore(models),
                   database=models)
