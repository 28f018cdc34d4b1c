"""Writing a new current version the one way every writer does: keep the old one, store the new one, and destroy
what falls out of the window (each destroyed version audited by number, never by value)."""

from __future__ import annotations

from sprongus.domain.history import oldest_kept
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditAction, Outcome, SecretRecord
from sprongus.domain.scope import Scope
from sprongus.ports.repository import SecretRepository
from sprongus.service.deps import ServiceDeps


def store_version(deps: ServiceDeps, principal: Principal, repo: SecretRepository, previous: SecretRecord | None,
                  record: SecretRecord) -> None:
    """Inside the caller's transaction: `record` replaces `previous` (compare-and-set on its version; Conflict if
    it moved). A row that does not decode is not kept: it has no version to keep."""
    if previous is not None and not previous.defect:
        repo.archive(previous)
    repo.save(record, None if previous is None else previous.version)
    below = oldest_kept(record.version, deps.max_versions)
    if below > 1:  # a secret with fewer versions than the window has nothing to prune: no statement for it
        destroyed = repo.prune(record.scope, record.key, below)
        audit_destroyed(deps, principal, record.scope, record.key, destroyed, "retention")


def audit_destroyed(deps: ServiceDeps, principal: Principal, scope: Scope, key: str, versions: list[int],
                    reason: str) -> None:
    if versions:
        deps.auditor.record_many(principal, AuditAction.DESTROY, scope,
                                 [(key, version, Outcome.SUCCESS) for version in versions], reason=reason)
