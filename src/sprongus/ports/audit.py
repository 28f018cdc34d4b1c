from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sprongus.domain.records import AuditChainReport, AuditEvent


class AuditSink(Protocol):
    """Records audit events durably. Raises AuditUnavailable when it cannot (the caller then fails closed)."""

    def record(self, event: AuditEvent) -> None: ...

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """All of them, in order, or none (AuditUnavailable): a batch is audited whole before it is answered."""
        ...


class AuditTrail(Protocol):
    """Checks a stored audit trail for edited, deleted or reordered events."""

    def verify_chain(self) -> AuditChainReport: ...
