"""Import and export: plaintext items or encrypted bundles (with history or not) in, metadata or bundles out.
Imports are atomic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from sprongus.domain.errors import IntegrityError, PermissionDenied, ReplayOutdated, ValidationError
from sprongus.domain.import_item import ImportItem, SealJob
from sprongus.domain.meta import validate_meta
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, Outcome, SecretRecord, view_of
from sprongus.domain.reports import ExportResult, ImportReport
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import SecretRepository
from sprongus.ports.progress import Progress
from sprongus.service.bundles import BundleCodec, ParsedBundle
from sprongus.service.deps import ServiceDeps
from sprongus.service.import_ahead import Plan, seal_before, sealed_now
from sprongus.service.import_plan import Incoming, batches, incoming, plan_versions
from sprongus.service.pages import pages, scope_pages
from sprongus.service.versioning import store_version

MODES = ("merge", "replace")


class TransferOps:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps
        self._codec = BundleCodec(deps)

    def export(self, principal: Principal, scope: Scope, prefix: str = "", bundle: bool = False,
               passphrase: SecretValue | None = None, progress: Progress | None = None,
               all_versions: bool = False) -> ExportResult:
        """Live secrets only (a deleted one is not exported): metadata, or a bundle of their current versions, or
        with `all_versions` of every version they keep. A bundle writes one audit row per secret besides the
        summary. The result's items are the current versions."""
        with self._d.auditor.failures(principal, AuditAction.EXPORT, scope):
            prefix = validate_prefix(prefix)
            if all_versions and not bundle:
                raise ValidationError("allVersions", "only goes with a bundle")
            authorize(principal, scope, Permission.REVEAL if bundle else Permission.READ)
            if bundle:  # with a passphrase, a bundle is a bulk reveal: limit it like one
                self._d.throttle.principal(principal, "reveal")
            records, items = [], []
            for rows in self._pages(principal, scope, prefix, progress):
                records += rows
                items += self._with_history(principal, rows) if all_versions else rows
            document = self._codec.build(items, passphrase, history=all_versions) if bundle else None
            if bundle and records:
                self._d.auditor.record_many(principal, AuditAction.EXPORT, scope,
                                            [(r.key, None if r.defect else r.version, Outcome.SUCCESS)
                                             for r in records], bundle=True, all_versions=all_versions)
            self._d.auditor.record(principal, AuditAction.EXPORT, scope, None, None, count=len(records),
                                   bundle=bundle, prefix=prefix, versions=len(items))
            return ExportResult([view_of(r) for r in records], document)

    def _pages(self, principal: Principal, scope: Scope, prefix: str,
               progress: Progress | None) -> Iterator[list[SecretRecord]]:
        done = 0
        for rows in scope_pages(self._d.uow, principal, scope, prefix, self._d.batch_size):
            yield rows
            done += len(rows)
            if progress:
                progress(done, None)

    def _with_history(self, principal: Principal, rows: list[SecretRecord]) -> list[SecretRecord]:
        """Each secret's kept versions, oldest first, then its current one (one read for the page). The current rows
        were read in another transaction: a write since then kept the row read as a version too, and it came twice
        (a bundle no import takes); so only versions older than the row read."""
        with self._d.uow.transaction(principal, readonly=True) as repo:
            return [r for row in rows for r in [*reversed([kept for kept in repo.versions(row.scope, row.key)
                                                           if kept.version < row.version]), row]]

    def import_(self, principal: Principal, items: list[ImportItem] | None = None,
                bundle: dict[str, Any] | None = None, mode: str = "merge", allow_plaintext: bool = False,
                passphrase: SecretValue | None = None, prefix: str = "", dry_run: bool = False,
                progress: Progress | None = None) -> ImportReport:
        with self._d.auditor.failures(principal, AuditAction.IMPORT, None):
            prefix, parsed = self._admit(principal, items, bundle, mode, allow_plaintext, passphrase, prefix,
                                         dry_run)
            # Only an admitted caller gets here: the passphrase KDF or the master-key unwrap, the MAC, decryption.
            if parsed is None:
                secrets = [Incoming([item]) for item in items or []]  # _admit checked them already
            else:
                secrets = incoming(self._codec.open(parsed, passphrase), parsed.history)
                # now with the decrypted values and the authenticated meta
                _check_items([s.current for s in secrets], prefix)
                _check_items([i for s in secrets for i in s.items], prefix, repeats=True)
            if not dry_run:
                self._d.sealer.before_write()
            return self._apply(principal, secrets, mode, prefix, dry_run, progress)

    def admit(self, principal: Principal, items: list[ImportItem] | None = None,
              bundle: dict[str, Any] | None = None, mode: str = "merge", allow_plaintext: bool = False,
              passphrase: SecretValue | None = None, prefix: str = "", dry_run: bool = False,
              count: bool = True) -> None:
        """The checks `import_` makes before any expensive step, for an answer given without it (a replay); with
        `count` False, without counting the write (a check before the import itself runs, which counts it)."""
        with self._d.auditor.failures(principal, AuditAction.IMPORT, None):
            self._admit(principal, items, bundle, mode, allow_plaintext, passphrase, prefix, dry_run, count)

    def check_stored(self, principal: Principal, places: list[tuple[str, str]]) -> None:
        """A replayed import's answer says these (scope, key) were added or updated: ReplayOutdated unless each is
        still there (as a PUT's replay): "200 added" for a secret purged since would tell the client its value is
        stored when it is not."""
        by_scope: dict[str, list[str]] = {}
        for scope, key in places:
            by_scope.setdefault(scope, []).append(key)
        with self._d.uow.transaction(principal, readonly=True) as repo:
            for scope, keys in by_scope.items():
                names = sorted(set(keys))
                found = sum(len(repo.get_many(Scope.parse(scope), names[i:i + 500])) for i in range(0, len(names), 500))
                if found != len(names):  # (500 names per statement: below any SQLite's limit on parameters)
                    raise ReplayOutdated("a secret this import wrote was deleted after the first request with this "
                                         "Idempotency-Key; send the request again with a new key")

    def _admit(self, principal: Principal, items: list[ImportItem] | None, bundle: dict[str, Any] | None,
               mode: str, allow_plaintext: bool, passphrase: SecretValue | None, prefix: str,
               dry_run: bool, count: bool = True) -> tuple[str, ParsedBundle | None]:
        """Validate, authorize and count the write, in that order, before any KDF, unwrap or write.

        A bundle's scopes are read from its items before its MAC is checked, so they are unauthenticated here.
        That is safe for this purpose: a forged scope can only make this check refuse, never let anything
        through, because the MAC checked next covers these very items and a failed MAC stops the import before
        any write. What it buys: a caller who may not write every scope the document names (or, for a document
        naming none, anything) is refused, and one who may is counted against the write limit, before the server
        runs a passphrase KDF at a cost the document itself chooses, or calls the KMS.
        """
        if mode not in MODES:
            raise ValidationError("mode", "must be merge or replace")
        prefix = validate_prefix(prefix)
        if (items is None) == (bundle is None):
            raise ValidationError("items", "give either plaintext items or a bundle")
        if items is not None and not allow_plaintext:
            raise ValidationError("plaintext", "plaintext import is refused unless explicitly allowed "
                                  "(--allow-plaintext / allowPlaintext)")
        parsed = None if items is not None else self._codec.parse(bundle, passphrase)
        if items is not None:
            _check_items(items, prefix)
            places = [(e.scope, e.key) for e in items]
        else:
            assert parsed is not None
            places = parsed.places
            _check_places(places, prefix, "bundle.items")
        _authorize(principal, {scope for scope, _ in places}, mode == "replace")
        for scope, key in places:  # a key-prefix token writes only under its prefix (others look absent)
            authorize(principal, scope, Permission.WRITE, key)
        if count:
            self._d.throttle.principal(principal, "write")
        return prefix, parsed

    def _apply(self, principal: Principal, secrets: list[Incoming], mode: str, prefix: str, dry_run: bool,
               progress: Progress | None) -> ImportReport:
        """All in one transaction. Each secret's versions are sealed afresh (a KMS call each, in the pool; where
        the transaction holds the whole store, before it opens: service/import_ahead.py) and stored the way every
        writer stores (the version they replace is kept); see `plan_versions` for the numbers. One audit row per
        secret added, updated or removed, besides the summary."""
        report = ImportReport(dry_run=dry_run)
        early = None if dry_run or self._d.seal_ahead is None else \
            seal_before(self._d, principal, secrets, self._plan(principal), progress)
        with self._d.uow.transaction(principal) as repo:
            existing = {s.place: repo.get_any(*s.place) for s in secrets}  # a deleted secret comes back
            visible = principal.narrow(prefix)
            removed: list[SecretRecord] = []
            if mode == "replace" and visible is not None:  # a key-prefix token replaces only under its prefix
                removed = self._stale(repo, secrets, visible)
                report.removed = [(str(r.scope), r.key) for r in removed]
            for secret in secrets:
                previous = existing[secret.place]
                live = previous is not None and previous.deleted_at is None
                (report.updated if live else report.added).append((str(secret.place[0]), secret.place[1]))
            if dry_run:
                return report
            stored: dict[tuple[Scope, str], SecretRecord] = {}
            done, total = 0, sum(len(s.items) for s in secrets)
            plan = self._plan(principal)
            for batch in batches(secrets, self._d.batch_size):
                planned = {s.place: plan(repo, s, existing[s.place]) for s in batch}
                sealed = sealed_now(self._d, planned, early or {})  # the KMS calls, in bulk (those not made early)
                for secret in batch:  # each secret's versions oldest first
                    stored[secret.place] = self._store(principal, repo, existing[secret.place], sealed[secret.place])
                done += sum(len(jobs) for jobs in planned.values())
                if progress and early is None:  # sealing early reported it
                    progress(done, total)
            for record in removed:
                repo.mark_deleted(record.scope, record.key, self._d.clock.now())  # soft delete: restorable
            self._audit_keys(principal, mode, report, stored, removed)
            self._d.auditor.record(principal, AuditAction.IMPORT, None, None, None, mode=mode,
                                   added=len(report.added), updated=len(report.updated),
                                   removed=len(report.removed), versions=total)
        return report

    def _numbers(self, repo: SecretRepository, secret: Incoming, previous: SecretRecord | None) -> list[int]:
        if previous is not None and previous.defect:  # its version is a placeholder: nothing to number after
            raise IntegrityError()
        last = previous.version if previous is not None else repo.last_purged_version(*secret.place)
        return plan_versions(secret.versions, last, previous is None)

    def _plan(self, principal: Principal) -> Plan:
        """A secret's new versions as seal jobs, numbered after what the repository holds."""
        def plan(repo: SecretRepository, secret: Incoming, previous: SecretRecord | None) -> list[SealJob]:
            return [self._job(principal, previous, item, number)
                    for item, number in zip(secret.items, self._numbers(repo, secret, previous), strict=True)]
        return plan

    def _job(self, principal: Principal, previous: SecretRecord | None, item: ImportItem, number: int) -> SealJob:
        """One version under its planned number with a fresh DEK (a KMS call). Meta as given, else kept."""
        meta = item.meta if item.meta is not None or previous is None else dict(previous.meta)
        return SealJob(None, item.scope, item.key, item.value, meta, after_version=number - 1, by=principal.subject)

    def _store(self, principal: Principal, repo: SecretRepository, previous: SecretRecord | None,
               records: list[SecretRecord]) -> SecretRecord:
        """Store one secret's new versions in order, each replacing the one before (kept, retention applied)."""
        first = previous or records[0]  # every version belongs to the one secret: its id and creation time
        for record in records:
            record = replace(record, id=first.id, created_at=first.created_at,
                             last_rotated_at=first.last_rotated_at)
            if previous is None:
                repo.save(record, None)
            else:
                store_version(self._d, principal, repo, previous, record)
            previous = record
        assert previous is not None  # every secret brings at least one version
        return previous

    def _audit_keys(self, principal: Principal, mode: str, report: ImportReport,
                    stored: dict[tuple[Scope, str], SecretRecord], removed: list[SecretRecord]) -> None:
        """One row per key (its scope, name and new version; never a value), batched per scope and change."""
        for action, change, rows in ((AuditAction.IMPORT, "added", [stored[(Scope.parse(s), k)]
                                                                     for s, k in report.added]),
                                     (AuditAction.IMPORT, "updated", [stored[(Scope.parse(s), k)]
                                                                       for s, k in report.updated]),
                                     (AuditAction.DELETE, "removed", removed)):
            for scope in sorted({r.scope for r in rows}):
                self._d.auditor.record_many(
                    principal, action, scope,
                    [(r.key, None if r.defect else r.version, Outcome.SUCCESS) for r in rows if r.scope == scope],
                    change=change, mode=mode)

    def _stale(self, repo: SecretRepository, secrets: list[Incoming], prefix: str) -> list[SecretRecord]:
        """Live secrets of the named scopes (under the prefix) that the import does not contain."""
        wanted = {s.place for s in secrets}
        stale: list[SecretRecord] = []
        size = self._d.batch_size
        for scope in sorted({s.place[0] for s in secrets}):
            def fetch(after: str | None, scope: Scope = scope) -> list[SecretRecord]:
                return repo.list_page(scope, prefix, after, size)
            for rows in pages(fetch, _key_of, size):
                stale += [r for r in rows if (r.scope, r.key) not in wanted]
        return stale


def _key_of(record: SecretRecord) -> str:
    return record.key


def _authorize(principal: Principal, scopes: set[Scope], needs_read: bool) -> None:
    """Write on every named scope. A replace, dry run or not, also needs read: its report lists the keys it removes
    (or would), names a writer without read could not otherwise learn (and could then restore one by one, each
    restore answering the key's meta)."""
    if not scopes and not principal.has(Permission.WRITE):  # nothing named, but still only for writers
        raise PermissionDenied(f"missing permission {Permission.WRITE.value}", required=Permission.WRITE.value)
    for scope in sorted(scopes):
        authorize(principal, scope, Permission.WRITE)
        if needs_read:
            authorize(principal, scope, Permission.READ)


def _check_items(entries: list[ImportItem], prefix: str, repeats: bool = False) -> None:
    for i, entry in enumerate(entries):
        # Items built in code skip parse_items: validate here too, so nothing invalid is ever written.
        if not isinstance(entry.scope, Scope):
            raise ValidationError(f"items[{i}].scope", "must be user:<id>, project:<id> or system")
        validate_key_name(entry.key, f"items[{i}].key")
        if not isinstance(entry.value, SecretValue):
            raise ValidationError(f"items[{i}].value", "must be a SecretValue")
        if entry.meta is not None:
            validate_meta(entry.meta, f"items[{i}].meta")
    _check_places([(e.scope, e.key) for e in entries], prefix, "items", repeats)


def _check_places(places: list[tuple[Scope, str]], prefix: str, where: str, repeats: bool = False) -> None:
    """No (scope, key) twice (unless `repeats`: the versions of one secret), every key under the prefix. The
    rules name the item, never its key or scope."""
    seen: set[tuple[Scope, str]] = set()
    for i, place in enumerate(places):
        if place in seen and not repeats:
            raise ValidationError(f"{where}[{i}].key", "repeats the scope and key of an earlier item")
        if prefix and not place[1].startswith(prefix):
            raise ValidationError(f"{where}[{i}].key", "must start with the import's prefix")
        seen.add(place)

