from __future__ import annotations

from typing import Protocol

from sprongus.domain.records import AuditEvent


class AuditSink(Protocol):
    """Records audit events durably. Raises AuditUnavailable when it cannot (the caller then fails closed)."""

    def record(self, event: AuditEvent) -> None: ...
