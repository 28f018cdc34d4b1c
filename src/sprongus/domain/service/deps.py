"""What the service needs, all behind ports, plus small shared helpers."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sprongus.domain.envelope import Envelope, Sealed, aad_for, checksum
from sprongus.domain.errors import RateLimited
from sprongus.domain.meta import MetaValue
from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretRecord, SecretView
from sprongus.domain.scope import Scope
from sprongus.domain.service.auditing import Auditor
from sprongus.domain.values import SecretValue
from sprongus.ports import AuditSink, AuditTrail, Clock, RateLimiter, UnitOfWork
from sprongus.ports.tokens import RevealTokenStore

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int | None], None]
"""Called with (done, total or None) as bulk work advances."""


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class ServiceDeps:
    uow: UnitOfWork
    envelope: Envelope
    audit: AuditSink
    clock: Clock
    limiter: RateLimiter
    new_id: Callable[[], str] = _new_id
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    batch_size: int = 500
    audit_trail: AuditTrail | None = None
    concurrency: int = 1  # parallel master-key calls in bulk work: a slow KMS must not make it serial
    reveal_tokens: RevealTokenStore | None = None
    auditor: Auditor = field(init=False)

    def __post_init__(self) -> None:
        self.auditor = Auditor(self.audit, self.clock)

    def parallel_map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`fn` over items with at most `concurrency` calls in flight; results in order, first error raised."""
        if self.concurrency <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)),
                                thread_name_prefix="sprongus-kms") as pool:
            return list(pool.map(fn, items))

    def throttle(self, principal: Principal, policy: str) -> None:
        if not principal.rate_limited:
            return
        decision = self.limiter.hit(policy, principal.subject)
        if not decision.allowed:
            raise RateLimited(policy, limit=decision.limit, window_seconds=decision.window_seconds,
                              retry_after=max(1, decision.reset_after))

    def seal_record(self, previous: SecretRecord | None, scope: Scope, key: str, value: SecretValue,
                    meta: dict[str, MetaValue] | None, *, rotated: bool = False) -> SecretRecord:
        """A new version of (scope, key): fresh DEK and nonce, version+1, AAD bound to the new version."""
        now = self.clock.now()
        version = 1 if previous is None else previous.version + 1
        aad = aad_for(scope, key, version)
        sealed = self.envelope.seal(value, aad)
        return SecretRecord(
            id=previous.id if previous else self.new_id(),
            scope=scope, key=key, ciphertext=sealed.ciphertext, dek_wrapped=sealed.dek_wrapped,
            nonce=sealed.nonce, alg=sealed.alg, master_key_id=sealed.master_key_id, version=version,
            created_at=previous.created_at if previous else now, updated_at=now,
            last_rotated_at=now if rotated else (previous.last_rotated_at if previous else None),
            meta=dict(meta) if meta is not None else (dict(previous.meta) if previous else {}),
            hmac=sealed.hmac, checksum=checksum(sealed, aad),
        )

    def open_record(self, record: SecretRecord) -> SecretValue:
        return self.envelope.open(sealed_of(record), aad_for(record.scope, record.key, record.version))


def sealed_of(record: SecretRecord) -> Sealed:
    return Sealed(record.ciphertext, record.dek_wrapped, record.nonce, record.alg, record.master_key_id, record.hmac)


def view_of(record: SecretRecord, value: SecretValue | None = None) -> SecretView:
    return SecretView(record.scope, record.key, record.version, record.created_at, record.updated_at,
                      record.last_rotated_at, dict(record.meta), record.master_key_id, value)


def utc_iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
