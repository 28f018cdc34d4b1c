"""The collaborators every use case shares, built once by the container (or a test's harness)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sprongus.domain.names import DEFAULT_DELETE_RETENTION, DEFAULT_MAX_VERSIONS
from sprongus.ports import AuditTrail, Clock, UnitOfWork
from sprongus.ports.random import RandomSource
from sprongus.service.auditing import Auditor
from sprongus.service.parallel import BoundedPool
from sprongus.service.seal_ahead import SealAhead
from sprongus.service.sealing import Sealer
from sprongus.service.throttle import Throttle


@dataclass(frozen=True)
class ServiceDeps:
    """The collaborators every use case shares."""

    uow: UnitOfWork
    sealer: Sealer
    auditor: Auditor
    throttle: Throttle
    pool: BoundedPool
    clock: Clock
    random: RandomSource
    batch_size: int = 500
    audit_trail: AuditTrail | None = None
    max_versions: int = DEFAULT_MAX_VERSIONS  # kept per secret, the current one included
    delete_retention: timedelta = DEFAULT_DELETE_RETENTION  # a soft-deleted secret's wait before purge-expired
    seal_ahead: SealAhead | None = None  # set: writes seal before their transaction (service/seal_ahead.py)
