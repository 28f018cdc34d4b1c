from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sprongus.domain.audit_log import AuditCheckpoint
from sprongus.domain.records import AuditEvent

if TYPE_CHECKING:  # loaded by the commands that read the trail or verify it
    from sprongus.domain.audit_rows import AuditFilter, StoredAuditEvent
    from sprongus.domain.audit_verify import AuditChainReport


class AuditSink(Protocol):
    """Records audit events durably. Raises AuditUnavailable when it cannot (the caller then fails closed)."""

    def record(self, event: AuditEvent) -> None: ...

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """All of them, in order, or none (AuditUnavailable): a batch is audited whole before it is answered."""
        ...


class CheckpointSigner(Protocol):
    """MACs checkpoints of the chain head with a key the database cannot read (derived from the vault's value-HMAC
    key, which the master key wraps)."""

    def sign(self, checkpoint: AuditCheckpoint) -> AuditCheckpoint:
        """The checkpoint with its key id and MAC; unchanged (unsigned) when the vault has no key yet."""
        ...

    def check(self, checkpoint: AuditCheckpoint) -> str | None:
        """None when its MAC holds; otherwise what is wrong (a bad MAC, a key this vault does not know). An
        unavailable key provider raises (an outage is not a finding)."""
        ...

    def signing_key(self) -> str | None:
        """The key id new checkpoints are signed with; None when the vault has no value-HMAC key yet."""
        ...


class AuditTrail(Protocol):
    """Reads the stored trail back, and checks it for edited, deleted, reordered or cut-off events."""

    def verify_chain(self) -> AuditChainReport:
        """The chain and the checkpoints (an `AuditTrailReport` from domain/audit_verify.py)."""
        ...

    def page(self, where: AuditFilter, after: int | None, limit: int, newest_first: bool) -> list[StoredAuditEvent]:
        """Up to `limit` events matching `where`, by seq (keyset: `after` is the last seq of the previous page)."""
        ...

    def newest_checkpoint(self) -> AuditCheckpoint | None: ...

    def use_signer(self, signer: CheckpointSigner) -> None:
        """Sign the checkpoints written from now on (the container calls it before any event is written)."""
        ...
