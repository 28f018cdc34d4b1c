"""The vault-wide half of rotation, for the operator: re-wrap every data key onto the current master key, and
verify every stored version. Both cover the current rows (secret_kv, deleted secrets' too) and every kept version
(secret_version): a DEK left on a retired key, or a tampered old version, is as real as a current one."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace

from sprongus.domain.envelope import aad_for, checksum
from sprongus.domain.errors import IntegrityError, KeyProviderError, KeyProviderUnavailable
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditAction, SecretRecord
from sprongus.domain.reports import RotationReport, VerifyReport
from sprongus.ports import UnitOfWork
from sprongus.ports.crypto import BULK_WORK
from sprongus.ports.progress import Progress
from sprongus.service.deps import ServiceDeps
from sprongus.service.pages import pages, vault_pages
from sprongus.service.sealing import sealed_of


def version_pages(uow: UnitOfWork, principal: Principal, size: int,
                  not_on_master_key: str | None = None) -> Iterator[list[SecretRecord]]:
    """Every kept version by (secret id, version), one short read-only transaction per page."""
    def fetch(after: tuple[str, int] | None) -> list[SecretRecord]:
        with uow.transaction(principal, readonly=True) as repo:
            return repo.scan_versions(after, size, not_on_master_key=not_on_master_key)
    return pages(fetch, lambda row: (row.id, row.version), size)


def rewrap_vault(deps: ServiceDeps, principal: Principal, progress: Progress | None) -> RotationReport:
    """Re-wrap every DEK not on the current master key, current rows first, then kept versions.

    Per page: the KMS calls run in the pool outside any transaction, then one transaction writes the whole page
    in one statement, each row compare-and-set on the checksum it was read with (a row rewritten meanwhile got a
    fresh DEK on the current key: skipped, not overwritten). Pages are keyset-paged and each commits on its own,
    so memory stays flat and a rerun finishes what an interruption left.

    With concurrency (a KMS), the next page's KMS calls run while this thread writes the page before and reads the
    one after (one page ahead, never more calls in flight than the pool allows): the database and the KMS overlap.
    """
    patient = BULK_WORK.set(True)  # the pool's threads and the page read ahead run in copies of this context
    try:
        return _rewrap_vault(deps, principal, progress)
    finally:
        BULK_WORK.reset(patient)


def _rewrap_vault(deps: ServiceDeps, principal: Principal, progress: Progress | None) -> RotationReport:
    current = deps.sealer.envelope.current_master_key_id()
    total = sum(n for key_id, n in deps.uow.count_by_master_key(principal).items() if key_id != current)
    report = RotationReport()

    def store(kept: bool, rows: list[SecretRecord], rewrapped: list[SecretRecord]) -> None:
        with deps.uow.transaction(principal) as repo:
            done = repo.rewrap_many([(new, old.checksum) for old, new in zip(rows, rewrapped, strict=True)],
                                    kept=kept)
        report.rotated += done
        report.skipped += len(rows) - done
        if progress:
            progress(report.rotated + report.skipped, total)

    with ExitStack() as stack:
        ahead = None if deps.pool.concurrency <= 1 else stack.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sprongus-rewrap"))
        for kept, rows_of in ((False, vault_pages), (True, version_pages)):
            pending: tuple[list[SecretRecord], Future[list[SecretRecord]]] | None = None
            for rows in rows_of(deps.uow, principal, deps.batch_size, not_on_master_key=current):
                if ahead is None:
                    store(kept, rows, _rewrapped(deps, rows))  # KMS calls, outside any lock
                    continue
                future = ahead.submit(contextvars.copy_context().run, _rewrapped_after,
                                      None if pending is None else pending[1], deps, rows)
                if pending is not None:
                    store(kept, pending[0], pending[1].result())
                pending = (rows, future)
            if pending is not None:
                store(kept, pending[0], pending[1].result())
    return report


def _rewrapped_after(before: Future[list[SecretRecord]] | None, deps: ServiceDeps,
                     rows: list[SecretRecord]) -> list[SecretRecord]:
    """The next page's KMS calls, unless the page before failed: one worker runs the pages in order, so `before` is
    done here. Without this check, a KMS that refused everything (a used-up quota) was waited out twice, once per
    page, before the rotation reported it."""
    if before is not None and before.exception() is not None:
        raise KeyProviderUnavailable("the page before failed: this one was not started")
    return _rewrapped(deps, rows)


def _rewrapped(deps: ServiceDeps, rows: list[SecretRecord]) -> list[SecretRecord]:
    """The whole page to the envelope at once: a provider that re-wraps in bulk (transit batches, AWS ReEncrypt)
    gets it in few requests; any other gets one call per row, all in the pool."""
    aads = [aad_for(row.scope, row.key, row.version) for row in rows]
    done = deps.sealer.envelope.rewrap_many([(sealed_of(row), aad) for row, aad in zip(rows, aads, strict=True)],
                                            deps.pool.map)
    for key_id in {sealed.master_key_id for sealed in done}:
        deps.sealer.confirm(key_id)
    return [replace(row, dek_wrapped=sealed.dek_wrapped, master_key_id=sealed.master_key_id, hmac=sealed.hmac,
                    checksum=checksum(sealed, aad)) for row, sealed, aad in zip(rows, done, aads, strict=True)]


def verify_vault(deps: ServiceDeps, principal: Principal, progress: Progress | None) -> VerifyReport:
    """Check every current row and every kept version: checksum (no key needed), then decryption and HMAC. A kept
    version's finding names its number (`v3: checksum mismatch`); the current row's names none."""
    report = VerifyReport()
    for kept, rows_of in ((False, vault_pages), (True, version_pages)):
        for rows in rows_of(deps.uow, principal, deps.batch_size):
            for row in rows:
                report.checked += 1
                reason = _problem(deps, row)
                if reason:
                    report.failures.append((_place_of(row), row.key, f"v{row.version}: {reason}" if kept else reason))
            if progress:
                progress(report.checked, None)
    if deps.audit_trail is not None:
        report.audit_problems = deps.audit_trail.verify_chain().problems
    deps.auditor.record(principal, AuditAction.VERIFY, None, None, None, checked=report.checked,
                        failed=len(report.failures), audit_problems=len(report.audit_problems))
    return report


def _problem(deps: ServiceDeps, row: SecretRecord) -> str | None:
    if row.defect:  # one bad row is reported like any other; the check goes on with the next
        return f"stored row does not decode ({', '.join(row.defect)})"
    if checksum(sealed_of(row), aad_for(row.scope, row.key, row.version)) != row.checksum:
        return "checksum mismatch"
    if row.hmac is None and deps.sealer.envelope.signs_values:
        return "hmac missing (written before HMAC keys existed, or stripped): rotate it to sign it"
    try:
        deps.sealer.open(row)
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
