"""Per-secret rotation, master-key rotation and verification. Batched, streaming and resumable."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sprongus.domain.envelope import aad_for, checksum
from sprongus.domain.errors import (
    Conflict,
    IntegrityError,
    KeyProviderError,
    KeyProviderUnavailable,
    NotFound,
    PermissionDenied,
)
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, SecretRecord, SecretView, view_of
from sprongus.domain.results import RotationReport, VerifyReport
from sprongus.domain.scope import Scope
from sprongus.ports.progress import Progress
from sprongus.service.deps import ServiceDeps
from sprongus.service.pages import scope_pages, vault_pages
from sprongus.service.sealing import sealed_of


class RotationOps:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def rotate(self, principal: Principal, scope: Scope, key: str | None = None, prefix: str = "",
               rotated_before: datetime | None = None, progress: Progress | None = None) -> RotationReport:
        """New DEK and nonce, version+1. `rotated_before` skips rows already rotated since then (resume)."""
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
                resealed = self._d.pool.map(self._resealed, due)  # KMS calls in the pool, no DB work there
                report.rotated += sum(self._store_rotated(principal, seen, new) is not None
                                      for seen, new in zip(due, resealed, strict=True))
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
            stored = None if seen is None else self._store_rotated(principal, seen, self._resealed(seen))
            if stored is None:
                raise NotFound(f"secret {key} not found in {scope}")
            return view_of(stored)

    def _resealed(self, seen: SecretRecord) -> SecretRecord:
        return self._d.sealer.seal(seen, seen.scope, seen.key, self._d.sealer.open(seen), None, rotated=True)

    def _store_rotated(self, principal: Principal, seen: SecretRecord,
                       record: SecretRecord) -> SecretRecord | None:
        """Compare-and-set the re-sealed version; a concurrent writer's new version counts as rotated too.

        The record now stored, or None when the secret was deleted meanwhile."""
        with self._d.uow.transaction(principal) as repo:
            try:
                repo.save(record, seen.version)
            except Conflict:
                return repo.get(seen.scope, seen.key)  # a writer made a new version: fresh DEK too
            self._d.auditor.record(principal, AuditAction.ROTATE, seen.scope, seen.key, record.version)
        return record

    def check_master_key(self, principal: Principal) -> None:
        """Unwrap one stored data key: a wrong or missing master key fails here, before anything changes."""
        _require_admin(principal)
        with self._d.uow.transaction(principal, readonly=True) as repo:
            sample = repo.scan(None, 1)
        for row in sample:
            self._d.sealer.envelope.unwrap_dek(sealed_of(row), aad_for(row.scope, row.key, row.version))

    def rotate_master(self, principal: Principal, progress: Progress | None = None) -> RotationReport:
        """Re-wrap every DEK not on the current master key. Values and versions stay; reruns finish the job."""
        with self._d.auditor.failures(principal, AuditAction.ROTATE_MASTER, None):
            _require_admin(principal)
            # The current key checked against the vault and recorded (it may have been added a moment ago), or a
            # key added elsewhere adopted, before anything moves onto it.
            self._d.sealer.before_write(fresh=True)
            current = self._d.sealer.envelope.current_master_key_id()
            total = sum(n for key_id, n in self._d.uow.count_by_master_key(principal).items() if key_id != current)
            report = RotationReport()
            for rows in vault_pages(self._d.uow, principal, self._d.batch_size, not_on_master_key=current):
                rewrapped = self._d.pool.map(self._rewrapped, rows)  # KMS calls, outside any lock
                with self._d.uow.transaction(principal) as repo:
                    for row in rewrapped:
                        try:
                            repo.save(row, row.version)
                            report.rotated += 1
                        except Conflict:
                            report.skipped += 1  # rewritten meanwhile (with a fresh DEK on the current key)
                if progress:
                    progress(report.rotated + report.skipped, total)
            moved, skipped = (0, 0)
            if self._d.sealer.vault_keys is not None:  # the vault's HMAC keys move onto the current key too
                moved, skipped = self._d.sealer.vault_keys.rewrap_hmac_keys()
                report.hmac_keys_damaged = skipped
            self._d.auditor.record(principal, AuditAction.ROTATE_MASTER, None, None, None,
                                   rotated=report.rotated, master_key_id=current, hmac_keys_moved=moved,
                                   hmac_keys_damaged=skipped)
            return report

    def _rewrapped(self, row: SecretRecord) -> SecretRecord:
        aad = aad_for(row.scope, row.key, row.version)
        sealed = self._d.sealer.envelope.rewrap(sealed_of(row), aad)
        self._d.sealer.confirm(sealed.master_key_id)
        return replace(row, dek_wrapped=sealed.dek_wrapped, master_key_id=sealed.master_key_id, hmac=sealed.hmac,
                       checksum=checksum(sealed, aad))

    def verify(self, principal: Principal, progress: Progress | None = None) -> VerifyReport:
        """Check every row's checksum (no key needed), then decrypt it and check its HMAC."""
        with self._d.auditor.failures(principal, AuditAction.VERIFY, None):
            _require_admin(principal)
            report = VerifyReport()
            for rows in vault_pages(self._d.uow, principal, self._d.batch_size):
                for row in rows:
                    report.checked += 1
                    reason = self._problem(row)
                    if reason:
                        report.failures.append((_place_of(row), row.key, reason))
                if progress:
                    progress(report.checked, None)
            if self._d.audit_trail is not None:
                report.audit_problems = self._d.audit_trail.verify_chain().problems
            self._d.auditor.record(principal, AuditAction.VERIFY, None, None, None, checked=report.checked,
                                   failed=len(report.failures), audit_problems=len(report.audit_problems))
            return report

    def _problem(self, row: SecretRecord) -> str | None:
        if row.defect:  # one bad row is reported like any other; the check goes on with the next
            return f"stored row does not decode ({', '.join(row.defect)})"
        if checksum(sealed_of(row), aad_for(row.scope, row.key, row.version)) != row.checksum:
            return "checksum mismatch"
        if row.hmac is None and self._d.sealer.envelope.signs_values:
            return "hmac missing (written before HMAC keys existed, or stripped): rotate it to sign it"
        try:
            self._d.sealer.open(row)
        except IntegrityError:
            return "decryption or hmac failed"
        except KeyProviderUnavailable:
            # An outage is not a finding: the row was not checked, so the whole run stops (exit 8, try again)
            # instead of reporting every following row as a problem.
            raise
        except KeyProviderError:
            return "master key unavailable"
        return None


def _place_of(row: SecretRecord) -> str:
    """The row's scope as text, or `?` when the scope itself did not decode (its placeholder is not the place)."""
    return "?" if {"owner_type", "owner_id"} & set(row.defect) else str(row.scope)


def _require_admin(principal: Principal) -> None:
    """Whole-vault operations are for the vault's operator: they see every tenant's rows and key names.

    A token's secrets:admin covers the system scope, not other tenants, so it is not enough.
    """
    if not principal.owner:
        raise PermissionDenied("only the vault operator (local mode) may verify or rotate the master key",
                               required=Permission.ADMIN.value)
