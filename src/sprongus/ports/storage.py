from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sprongus.ports.audit import AuditSink, AuditTrail
from sprongus.ports.repository import UnitOfWork
from sprongus.ports.vault_keys import VaultKeyStore

if TYPE_CHECKING:  # loaded with the API's stores, on first use (Storage.api_stores)
    from sprongus.ports.tokens import ApiStores


@dataclass(frozen=True)
class Storage:
    """Every store of one backend, chosen together: they share one database, so they never disagree on it."""

    uow: UnitOfWork
    audit: AuditSink
    audit_trail: AuditTrail | None  # None where nothing persists a chain to verify (in memory)
    vault_keys: VaultKeyStore
    # The API's stores, built by the first call and returned by every later one: a local command needs none of
    # them, and their modules (with their records) cost its start-up a few milliseconds. The API's container makes
    # the first call at start-up, before any request thread could race it.
    api_stores: Callable[[], ApiStores]
    database: Any = None  # the engine's handle (peewee BoundModels) for operator commands; None in memory
