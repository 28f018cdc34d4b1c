from __future__ import annotations

from typing import Protocol

from sprongus.domain.records import AuditChainReport, AuditEvent


class AuditSink(Protocol):
    """Records audit events durably. Raises AuditUnavailable when it cannot (the caller then fails closed)."""

    def record(self, event: AuditEvent) -> None: ...


class AuditTrail(Protocol):
    """Checks a stored audit trail for edited, deleted or reordered events."""

    def verify_chain(self) -> AuditChainReport: ...
