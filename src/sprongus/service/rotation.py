"""Per-secret rotation (every DEK of the secret, kept versions included), master-key rotation and verification.
Batched, streaming and resumable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import NotFound, PermissionDenied
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, SecretRecord, SecretView, view_of
from sprongus.domain.reports import RotationReport, VerifyReport
from sprongus.domain.scope import Scope
from sprongus.ports.progress import Progress
from sprongus.service.deps import ServiceDeps
from sprongus.service.pages import scope_pages
from sprongus.service.sealing import sealed_of
from sprongus.service.vault_rewrap import rewrap_vault, verify_vault
from sprongus.service.versioning import store_version


class RotationOps:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def rotate(self, principal: Principal, scope: Scope, key: str | None = None, prefix: str = "",
               rotated_before: datetime | None = None, progress: Progress | None = None) -> RotationReport:
        """New DEK and nonce, version+1, and every kept version re-sealed in place: one audit row per secret.
        `rotated_before` skips rows already rotated since then (resume)."""
        if key is not None:
            self.rotate_key(principal, scope, key)
            return RotationReport(rotated=1)
        with self._d.auditor.failures(principal, AuditAction.ROTATE, scope):
            prefix = validate_prefix(prefix)
            authorize(principal, scope, Permission.WRITE)
            self._d.throttle.principal(principal, "write")
            self._d.sealer.before_write()
            report = RotationReport()
            for rows in scope_pages(self._d.uow, principal, scope, prefix, self._d.batch_size):
                due = [r for r in rows if not (rotated_before and r.last_rotated_at
                                               and r.last_rotated_at >= rotated_before)]
                report.skipped += len(rows) - len(due)
                with self._d.uow.transaction(principal, readonly=True) as repo:
                    older = [repo.versions(r.scope, r.key) for r in due]
                # KMS calls in the pool (one secret per call, its versions in turn), no DB work there
                plans = self._d.pool.map(lambda pair: self._plan(principal, *pair, parallel=False),
                                         list(zip(due, older, strict=True)))
                report.rotated += sum(self._store_rotated(principal, plan) is not None for plan in plans)
                if progress:
                    progress(report.rotated + report.skipped, None)
            return report

    def rotate_key(self, principal: Principal, scope: Scope, key: str) -> SecretView:
        """Rotate one secret and return its masked view: what a writer gets back from a write anyway.

        The view comes from the rotation itself, not from a read afterwards: a read needs `secrets:read`, and a
        writer without it used to get 403 for a rotation that had already been committed.
        """
        with self._d.auditor.failures(principal, AuditAction.ROTATE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            authorize(principal, scope, Permission.WRITE, key)
            self._d.throttle.principal(principal, "write")
            self._d.sealer.before_write()
            with self._d.uow.transaction(principal, readonly=True) as repo:
                seen = repo.get(scope, key)
                older = [] if seen is None else repo.versions(scope, key)
            stored = None if seen is None else self._store_rotated(principal,
                                                                   self._plan(principal, seen, older, parallel=True))
            if stored is None:
                raise NotFound(f"secret {key} not found in {scope}")
            return view_of(stored)

    def _plan(self, principal: Principal, seen: SecretRecord, older: list[SecretRecord],
              parallel: bool) -> _Rotation:
        """Every DEK of the secret replaced: its value as version+1, and each version it keeps (the current one
        about to be kept included) re-sealed under its own number. A version that does not open fails the whole
        rotation (IntegrityError) before anything is written: `keys verify` names it."""
        sealer = self._d.sealer
        new = sealer.seal(seen, seen.scope, seen.key, sealer.open(seen), None, rotated=True, by=principal.subject)
        kept = [seen, *older]
        resealed = self._d.pool.map(sealer.reseal, kept) if parallel else [sealer.reseal(r) for r in kept]
        return _Rotation(seen, new, resealed[0], list(zip(older, resealed[1:], strict=True)))

    def _store_rotated(self, principal: Principal, plan: _Rotation) -> SecretRecord | None:
        """Store the plan in one transaction, compare-and-set: the new version on the one read, each kept version
        on the checksum read. A concurrent writer's new version counts as rotated too (it made a fresh DEK); the
        version it kept is the one read, which is re-sealed like the others.

        The record now current, or None when the secret was deleted meanwhile."""
        seen = plan.seen
        with self._d.uow.transaction(principal) as repo:
            now = repo.get_any(seen.scope, seen.key)  # read under the write lock: nothing moves until commit
            if now is None or now.deleted_at is not None or now.id != seen.id:
                return None
            older = list(plan.older)
            # The version decides, not the checksum: a rotate-master that re-wrapped the row meanwhile changed its
            # checksum but not its value, and the rotation must still write its fresh data key.
            if now.version == seen.version:
                store_version(self._d, principal, repo, plan.kept, plan.new)  # seen is kept with a fresh DEK
                current = plan.new
            else:
                current = now
                older.append((seen, plan.kept))
            resealed = sum(repo.save_version(new, old.checksum) for old, new in older)
            self._d.auditor.record(principal, AuditAction.ROTATE, seen.scope, seen.key,
                                   None if current.defect else current.version, versions_resealed=resealed)
        return current

    def check_master_key(self, principal: Principal) -> None:
        """Unwrap one stored data key: a wrong or missing master key fails here, before anything changes."""
        _require_admin(principal)
        with self._d.uow.transaction(principal, readonly=True) as repo:
            sample = repo.scan(None, 1)
        for row in sample:
            self._d.sealer.envelope.unwrap_dek(sealed_of(row), aad_for(row.scope, row.key, row.version))

    def rotate_master(self, principal: Principal, progress: Progress | None = None) -> RotationReport:
        """Re-wrap every DEK not on the current master key, kept versions' too (see vault_rewrap). Values and
        version numbers stay; reruns finish the job."""
        with self._d.auditor.failures(principal, AuditAction.ROTATE_MASTER, None):
            _require_admin(principal)
            # The current key checked against the vault and recorded (it may have been added a moment ago), or a
            # key added elsewhere adopted, before anything moves onto it.
            self._d.sealer.before_write(fresh=True)
            current = self._d.sealer.envelope.current_master_key_id()
            report = rewrap_vault(self._d, principal, progress)
            moved, skipped = (0, 0)
            if self._d.sealer.vault_keys is not None:  # the vault's HMAC keys move onto the current key too
                moved, skipped = self._d.sealer.vault_keys.rewrap_hmac_keys()
                report.hmac_keys_damaged = skipped
            self._d.auditor.record(principal, AuditAction.ROTATE_MASTER, None, None, None,
                                   rotated=report.rotated, master_key_id=current, hmac_keys_moved=moved,
                                   hmac_keys_damaged=skipped)
            return report

    def verify(self, principal: Principal, progress: Progress | None = None) -> VerifyReport:
        """Check every stored version (current and kept, deleted secrets' too) and the audit chain."""
        with self._d.auditor.failures(principal, AuditAction.VERIFY, None):
            _require_admin(principal)
            return verify_vault(self._d, principal, progress)


@dataclass(frozen=True)
class _Rotation:
    """One secret's rotation, sealed and waiting to be stored."""

    seen: SecretRecord  # the current version as read
    new: SecretRecord  # its value as version+1 under a fresh DEK
    kept: SecretRecord  # `seen` re-sealed: what is kept of it
    older: list[tuple[SecretRecord, SecretRecord]]  # each kept version as read, and re-sealed


def _require_admin(principal: Principal) -> None:
    """Whole-vault operations are for the vault's operator: they see every tenant's rows and key names.

    A token's secrets:admin covers the system scope, not other tenants, so it is not enough.
    """
    if not principal.owner:
        raise PermissionDenied("only the vault operator (local mode) may verify or rotate the master key",
                               required=Permission.ADMIN.value)
