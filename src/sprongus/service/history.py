"""A secret's history: its kept versions, rollback to one of them, restore after a soft delete, and purge."""

from __future__ import annotations

from datetime import datetime

from sprongus.domain.errors import Conflict, IntegrityError, NotFound, PermissionDenied
from sprongus.domain.history import History, PurgeReport, VersionInfo
from sprongus.domain.names import validate_key_name, validate_version
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, SecretRecord, SecretView, SetResult, view_of
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.repository import SecretRepository
from sprongus.service.deps import ServiceDeps
from sprongus.service.sealing import SealedAhead
from sprongus.service.versioning import audit_destroyed, store_version

# A rollback loses its compare-and-set only to a concurrent writer; it is tried again on the new latest version.
ROLLBACK_ATTEMPTS = 8


class HistoryOps:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def history(self, principal: Principal, scope: Scope, key: str) -> History:
        """Every kept version, newest first (a deleted secret's too: that is what `restore` would bring back)."""
        with self._d.auditor.failures(principal, AuditAction.READ, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            authorize(principal, scope, Permission.READ, key)
            with self._d.uow.transaction(principal, readonly=True) as repo:
                current = repo.get_any(scope, key)
                older = [] if current is None else repo.versions(scope, key)
            if current is None:
                raise NotFound(f"secret {key} not found in {scope}")
            if current.defect:
                raise IntegrityError()
            items = [_info(current, True), *(_info(r, False) for r in older)]
            return History(items, current.deleted_at)

    def rollback(self, principal: Principal, scope: Scope, key: str, to: int) -> SetResult:
        """A new latest version holding version `to`'s value, sealed afresh (new DEK, nonce and AAD)."""
        with self._d.auditor.failures(principal, AuditAction.ROLLBACK, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            validate_version(to)
            authorize(principal, scope, Permission.WRITE, key)
            self._d.throttle.principal(principal, "write")
            self._d.sealer.before_write()
            for attempt in range(ROLLBACK_ATTEMPTS):
                try:
                    return self._rollback_once(principal, scope, key, to)
                except Conflict:
                    if attempt == ROLLBACK_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

    def _rollback_once(self, principal: Principal, scope: Scope, key: str, to: int) -> SetResult:
        if self._d.seal_ahead is None:
            return self._store_rollback(principal, scope, key, to, None)
        with self._d.seal_ahead.turn(scope, key) as mine:
            opened = self._opened_ahead(principal, scope, key, to) if mine else None
            return self._store_rollback(principal, scope, key, to, opened)

    def _store_rollback(self, principal: Principal, scope: Scope, key: str, to: int,
                        opened: tuple[SecretValue, SealedAhead] | None) -> SetResult:
        with self._d.uow.transaction(principal) as repo:
            current = repo.get(scope, key)
            if current is None:
                raise NotFound(f"secret {key} not found in {scope}")
            source = _version_of(repo, current, to)
            if source is None:
                raise NotFound(f"version {to} of secret {key} not found in {scope}")
            # A tampered version fails closed in the open: nothing is written.
            value = opened[0] if opened is not None else self._d.sealer.open(source)
            record = self._d.sealer.seal(current, scope, key, value, dict(source.meta), by=principal.subject,
                                         ahead=None if opened is None else opened[1])
            store_version(self._d, principal, repo, current, record, then=self._d.auditor.event(
                principal, AuditAction.ROLLBACK, scope, key, record.version, from_version=to))
        return SetResult(view_of(record), False)

    def _opened_ahead(self, principal: Principal, scope: Scope, key: str,
                      to: int) -> tuple[SecretValue, SealedAhead] | None:
        """Version `to` opened and its value sealed as the next version before the write transaction: two KMS round
        trips that no longer hold the store (service/seal_ahead.py). A version's number names one value for good
        (purged numbers are never used again), so the value opened here is the one the transaction finds."""
        with self._d.uow.transaction(principal, readonly=True) as repo:
            current = repo.get(scope, key)
            source = None if current is None else _version_of(repo, current, to)
        if current is None or source is None:
            return None  # the transaction answers NotFound
        value = self._d.sealer.open(source)
        return value, self._d.sealer.seal_ahead(current, scope, key, value)

    def restore(self, principal: Principal, scope: Scope, key: str) -> SecretView:
        """Undo a soft delete: the secret is live again with the versions it had."""
        with self._d.auditor.failures(principal, AuditAction.RESTORE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            authorize(principal, scope, Permission.WRITE, key)
            self._d.throttle.principal(principal, "write")
            with self._d.uow.transaction(principal) as repo:
                if not repo.mark_deleted(scope, key, None):
                    raise NotFound(f"no deleted secret {key} in {scope}")
                record = repo.get(scope, key)
                if record is None:  # pragma: no cover - the row was just made live in this transaction
                    raise NotFound(f"secret {key} not found in {scope}")
                self._d.auditor.record(principal, AuditAction.RESTORE, scope, key,
                                       None if record.defect else record.version)
            return view_of(record)

    def purge(self, principal: Principal, scope: Scope, key: str) -> list[int]:
        """Destroy the secret and every version at once, live or deleted; the numbers destroyed."""
        with self._d.auditor.failures(principal, AuditAction.PURGE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            authorize(principal, scope, Permission.WRITE, key)
            authorize(principal, scope, Permission.ADMIN, key)
            self._d.throttle.principal(principal, "write")
            with self._d.uow.transaction(principal) as repo:
                destroyed = repo.purge(scope, key, self._d.clock.now())
                if not destroyed:
                    raise NotFound(f"secret {key} not found in {scope}")
                audit_destroyed(self._d, principal, scope, key, destroyed, "purge")
                self._d.auditor.record(principal, AuditAction.PURGE, scope, key, destroyed[0],
                                       versions=len(destroyed))
            return destroyed

    def purge_expired(self, principal: Principal) -> PurgeReport:
        """Destroy the secrets deleted longer ago than the retention (the operator's job: every tenant's)."""
        with self._d.auditor.failures(principal, AuditAction.PURGE, None):
            if not principal.owner:
                raise PermissionDenied("only the vault operator (local mode) may purge expired secrets",
                                       required=Permission.ADMIN.value)
            cutoff = self._d.clock.now() - self._d.delete_retention
            report = PurgeReport()
            # A damaged row (its deletion time, or its scope, does not read back) may be left in place: it keeps its
            # place at the front of the listing, which then starts after it. Read again from the start, a batch of
            # them was the same batch for ever (`db upgrade` runs this too).
            left = 0
            while True:  # one short transaction per secret: a crash leaves each either whole or gone
                with self._d.uow.transaction(principal, readonly=True) as repo:
                    due = repo.deleted_before(cutoff, self._d.batch_size, skip=left)
                for row in due:
                    destroyed = self._purge_expired_one(principal, row, cutoff)
                    left += bool(row.defect) and not destroyed  # a sound row not purged has left the listing
                    report.versions += destroyed
                    report.secrets += destroyed > 0  # one restored or set again meanwhile is not counted
                if len(due) < self._d.batch_size:
                    break
            self._d.auditor.record(principal, AuditAction.PURGE, None, None, None, expired=True,
                                   secrets=report.secrets, versions=report.versions)
            return report

    def _purge_expired_one(self, principal: Principal, row: SecretRecord, cutoff: datetime) -> int:
        """Versions destroyed. A damaged row whose deletion time or scope does not read back is not found again
        here, and is left as it is (never destroyed on a guess: `secrets verify` reports it)."""
        with self._d.uow.transaction(principal) as repo:
            again = repo.get_any(row.scope, row.key)
            if again is None or again.deleted_at is None or again.id != row.id or again.deleted_at >= cutoff:
                return 0  # restored, set again, or restored and deleted again meanwhile: no longer expired
            destroyed = repo.purge(row.scope, row.key, self._d.clock.now())
            audit_destroyed(self._d, principal, row.scope, row.key, destroyed, "expired")
            return len(destroyed)


def _info(record: SecretRecord, current: bool) -> VersionInfo:
    if record.defect:
        return VersionInfo(record.version, None, None, current)
    return VersionInfo(record.version, record.updated_at, record.version_by, current)


def _version_of(repo: SecretRepository, current: SecretRecord, to: int) -> SecretRecord | None:
    """Version `to` of the secret whose current row is `current` (a kept version unless it is the current one)."""
    return current if current.version == to else repo.get_version(current.scope, current.key, to)
