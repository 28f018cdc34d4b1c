from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sprongus.ports.audit import AuditSink, AuditTrail
from sprongus.ports.identity import JwtReplayStore, TrustStore
from sprongus.ports.repository import UnitOfWork
from sprongus.ports.tokens import ApiTokenStore, IdempotencyStore, RevealTokenStore
from sprongus.ports.vault_keys import VaultKeyStore


@dataclass(frozen=True)
class Storage:
    """Every store of one backend, chosen together: they share one database, so they never disagree on it."""

    uow: UnitOfWork
    audit: AuditSink
    audit_trail: AuditTrail | None  # None where nothing persists a chain to verify (in memory)
    api_tokens: ApiTokenStore
    reveal_tokens: RevealTokenStore
    idempotency: IdempotencyStore
    vault_keys: VaultKeyStore
    trusts: TrustStore
    jwt_replay: JwtReplayStore
    database: Any = None  # the engine's handle (peewee BoundModels) for operator commands; None in memory
