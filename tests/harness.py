"""The in-memory test harness: a SecretsService wired to fakes, with handles on each fake."""

from __future__ import annotations

from dataclasses import dataclass, field

from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring
from sprongus.adapters.memory import InMemoryAuditSink, InMemoryUnitOfWork, ManualClock
from sprongus.adapters.rate_limit_limits import LimitsRateLimiter
from sprongus.domain.envelope import Envelope
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.service import SecretsService, ServiceDeps

# A distinctive value every leak test searches for.
CANARY = "CANARY-sprongus-7f3a9c-do-not-leak"

ALL_PERMISSIONS = frozenset({Permission.READ, Permission.WRITE, Permission.REVEAL})


@dataclass
class Harness:
    service: SecretsService
    uow: InMemoryUnitOfWork
    audit: InMemoryAuditSink
    clock: ManualClock
    master: LocalMasterKeyProvider
    versions: KeyVersions
    cipher: AesGcmDataCipher = field(default_factory=AesGcmDataCipher)

    def add_master_key(self) -> None:
        self.versions = self.versions.with_new_master()
        self.master.reload(self.versions.master)


def make_harness(versions: KeyVersions | None = None, *, batch_size: int = 500, hmac: bool = True,
                 reveal_limit: str = "10/minute", write_limit: str = "1000/minute") -> Harness:
    versions = versions or KeyVersions.fresh()
    master = LocalMasterKeyProvider("memory", versions.master)
    cipher = AesGcmDataCipher()
    envelope = Envelope({cipher.alg: cipher}, cipher.alg, CompositeMasterKeyProvider(master),
                        StaticHmacKeyring(versions.hmac, "memory") if hmac else None)
    uow, audit, clock = InMemoryUnitOfWork(), InMemoryAuditSink(), ManualClock()
    limiter = LimitsRateLimiter({"reveal": reveal_limit, "write": write_limit, "redeem": "30/minute"})
    deps = ServiceDeps(uow=uow, envelope=envelope, audit=audit, clock=clock, limiter=limiter,
                       batch_size=batch_size)
    return Harness(SecretsService(deps), uow, audit, clock, master, versions, cipher)


def owner() -> Principal:
    return Principal.local_owner("owner")


def tenant(subject: str = "alice", projects: tuple[str, ...] = ("p1",),
           permissions: frozenset[Permission] = ALL_PERMISSIONS) -> Principal:
    return Principal(subject=subject, permissions=permissions, projects=frozenset(projects))
