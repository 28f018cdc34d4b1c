"""Every store in memory: the test profile's storage (nothing survives the process)."""

from __future__ import annotations

from sprongus.adapters.memory import InMemoryAuditSink, InMemoryUnitOfWork
from sprongus.adapters.memory_identity import InMemoryJwtReplayStore, InMemoryTrustStore
from sprongus.adapters.memory_tokens import InMemoryApiTokenStore, InMemoryIdempotencyStore, InMemoryRevealTokenStore
from sprongus.adapters.memory_vault_keys import InMemoryVaultKeyStore
from sprongus.ports.storage import Storage
from sprongus.ports.tokens import ApiStores


def memory_storage() -> Storage:
    uow = InMemoryUnitOfWork()
    audit = InMemoryAuditSink()
    stores = ApiStores(api_tokens=InMemoryApiTokenStore(), reveal_tokens=InMemoryRevealTokenStore(),
                       idempotency=InMemoryIdempotencyStore(), trusts=InMemoryTrustStore(),
                       jwt_replay=InMemoryJwtReplayStore())
    return Storage(uow=uow, audit=audit, audit_trail=audit, vault_keys=InMemoryVaultKeyStore(uow),
                   api_stores=lambda: stores)
