"""Writing a new current version the one way every writer does: keep the old one, store the new one, and destroy
what falls out of the window (each destroyed version audited by number, never by value)."""

from __future__ import annotations

from dataclasses import replace

from sprongus.domain.names import oldest_kept
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditAction, AuditEvent, Outcome, SecretRecord
from sprongus.domain.scope import Scope
from sprongus.ports.repository import SecretRepository
from sprongus.service.deps import ServiceDeps


def store_version(deps: ServiceDeps, principal: Principal, repo: SecretRepository, previous: SecretRecord | None,
                  record: SecretRecord, then: AuditEvent | None = None) -> None:
    """Inside the caller's transaction: `record` replaces `previous` (compare-and-set on its version; Conflict if
    it moved). A row that does not decode is not kept: it has no version to keep.

    `then`: the caller's own event for this write, stored after the retention rows in the same append. A key written
    past its window destroys a version on every write; one append instead of two saves a read of the chain head
    and an INSERT while the write holds the database's one writer (SQLite) or the audit lock (Postgres)."""
    if previous is not None and not previous.defect:
        repo.archive(previous)
    repo.save(record, None if previous is None else previous.version)
    events = [] if then is None else [then]
    below = oldest_kept(record.version, deps.max_versions)
    if below > 1:  # a secret with fewer versions than the window has nothing to prune: no statement for it
        destroyed = repo.prune(record.scope, record.key, below)
        events[:0] = [deps.auditor.event(principal, AuditAction.DESTROY, record.scope, record.key, version,
                                         reason="retention") for version in destroyed]
    if events:
        # One write, one instant, stamped as late as it can be: just before the append (which on Postgres takes the
        # chain's lock), as when each event was recorded on its own.
        now = deps.clock.now()
        deps.auditor.record_events([replace(event, time=now) for event in events])


def audit_destroyed(deps: ServiceDeps, principal: Principal, scope: Scope, key: str, versions: list[int],
                    reason: str) -> None:
    if versions:
        deps.auditor.record_many(principal, AuditAction.DESTROY, scope,
                                 [(key, version, Outcome.SUCCESS) for version in versions], reason=reason)
