"""The in-memory test harness: the use cases wired to fakes, with handles on each fake."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring
from sprongus.adapters.memory import InMemoryAuditSink, InMemoryUnitOfWork, ManualClock
from sprongus.adapters.memory_tokens import InMemoryRevealTokenStore
from sprongus.adapters.random_os import OsRandomSource
from sprongus.adapters.rate_limit_limits import LimitsRateLimiter
from sprongus.domain.envelope import Envelope
from sprongus.domain.principal import Permission, Principal
from sprongus.ports import MasterKeyProvider
from sprongus.service.auditing import Auditor
from sprongus.service.deps import ServiceDeps
from sprongus.service.history import HistoryOps
from sprongus.service.parallel import BoundedPool
from sprongus.service.reveal_tokens import RevealTokenOps
from sprongus.service.rotation import RotationOps
from sprongus.service.sealing import Sealer
from sprongus.service.secrets import SecretOps
from sprongus.service.throttle import Throttle
from sprongus.service.transfer import TransferOps

# A distinctive value every leak test searches for.
CANARY = "CANARY-sprongus-7f3a9c-do-not-leak"

ALL_PERMISSIONS = frozenset({Permission.READ, Permission.WRITE, Permission.REVEAL})


@dataclass
class Harness:
    deps: ServiceDeps
    secrets: SecretOps
    transfer: TransferOps
    rotation: RotationOps
    reveal_tokens: RevealTokenOps
    uow: InMemoryUnitOfWork
    audit: InMemoryAuditSink
    clock: ManualClock
    master: LocalMasterKeyProvider
    versions: KeyVersions
    cipher: AesGcmDataCipher = field(default_factory=AesGcmDataCipher)

    @property
    def history(self) -> HistoryOps:
        return HistoryOps(self.deps)

    def add_master_key(self) -> None:
        self.versions = self.versions.with_new_master()
        self.master.reload(self.versions.master)


def make_harness(versions: KeyVersions | None = None, *, batch_size: int = 500, hmac: bool = True,
                 reveal_limit: str = "10/minute", write_limit: str = "1000/minute", concurrency: int = 1,
                 wrap_keys: Callable[[MasterKeyProvider], MasterKeyProvider] | None = None) -> Harness:
    """`wrap_keys` puts a test double around the master-key provider (a slow KMS, say)."""
    versions = versions or KeyVersions.fresh()
    master = LocalMasterKeyProvider("memory", versions.master)
    random = OsRandomSource()
    cipher = AesGcmDataCipher(random)
    keys: MasterKeyProvider = CompositeMasterKeyProvider(master)
    envelope = Envelope({cipher.alg: cipher}, cipher.alg, wrap_keys(keys) if wrap_keys else keys,
                        StaticHmacKeyring(versions.hmac, "memory") if hmac else None)
    uow, audit, clock = InMemoryUnitOfWork(), InMemoryAuditSink(), ManualClock()
    limiter = LimitsRateLimiter({"reveal": reveal_limit, "write": write_limit, "redeem": "30/minute",
                                 "reveal_workload": "600/minute", "reveal_batch": "60/minute",
                                 "exchange": "60/minute"})
    deps = ServiceDeps(uow=uow, sealer=Sealer(envelope, clock, random), auditor=Auditor(audit, clock),
                       throttle=Throttle(limiter), pool=BoundedPool(concurrency), clock=clock, random=random,
                       batch_size=batch_size)
    return Harness(deps, SecretOps(deps), TransferOps(deps), RotationOps(deps),
                   RevealTokenOps(deps, InMemoryRevealTokenStore()), uow, audit, clock, master, versions, cipher)


def is_new_key_id(actual: str | None, numbered: str) -> bool:
    """Generated key ids carry a random part (`file:v1-9f2c41d0`): no two keys share an id."""
    return actual is not None and re.fullmatch(re.escape(numbered) + r"-[0-9a-f]{8}", actual) is not None


_GENERATED_ID = re.compile(r"\b(file|memory|keychain|db):([vh]\d+)-[0-9a-f]{8}\b")


def numbered(data: Any) -> Any:
    """Text or JSON with generated key ids cut to their number (`file:v1-9f2c41d0` -> `file:v1`), for tests that
    compare whole outputs."""
    if isinstance(data, str):
        return _GENERATED_ID.sub(r"\1:\2", data)
    if isinstance(data, dict):
        return {numbered(k): numbered(v) for k, v in data.items()}
    if isinstance(data, list):
        return [numbered(item) for item in data]
    return data


def owner() -> Principal:
    return Principal.local_owner("owner")


def tenant(subject: str = "alice", projects: tuple[str, ...] = ("p1",),
           permissions: frozenset[Permission] = ALL_PERMISSIONS) -> Principal:
    return Principal(subject=subject, permissions=permissions, projects=frozenset(projects))


@dataclass
class UseCaseSet:
    """The use cases of one container, for tests that drive a real (SQLite, Postgres, KMS) vault directly."""

    secrets: SecretOps
    transfer: TransferOps
    rotation: RotationOps
    reveal_tokens: RevealTokenOps
    history: HistoryOps


def use_cases(container: Any) -> UseCaseSet:
    return UseCaseSet(container.secret_ops(), container.transfer_ops(), container.rotation_ops(),
                      container.reveal_token_ops(), container.history_ops())
