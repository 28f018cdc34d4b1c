"""Import and export: plaintext items or encrypted bundles in, metadata or bundles out. Imports are atomic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sprongus.domain.errors import PermissionDenied, ValidationError
from sprongus.domain.import_item import ImportItem
from sprongus.domain.meta import validate_meta
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, SecretRecord, view_of
from sprongus.domain.results import ExportResult, ImportReport
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import SecretRepository
from sprongus.ports.progress import Progress
from sprongus.service.bundles import BundleCodec, ParsedBundle
from sprongus.service.deps import ServiceDeps
from sprongus.service.pages import pages, scope_pages

MODES = ("merge", "replace")


class TransferOps:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps
        self._codec = BundleCodec(deps)

    def export(self, principal: Principal, scope: Scope, prefix: str = "", bundle: bool = False,
               passphrase: SecretValue | None = None, progress: Progress | None = None) -> ExportResult:
        with self._d.auditor.failures(principal, AuditAction.EXPORT, scope):
            prefix = validate_prefix(prefix)
            authorize(principal, scope, Permission.REVEAL if bundle else Permission.READ)
            if bundle:  # with a passphrase, a bundle is a bulk reveal: limit it like one
                self._d.throttle.principal(principal, "reveal")
            records = list(self._records(principal, scope, prefix, progress))
            document = self._codec.build(records, passphrase) if bundle else None
            self._d.auditor.record(principal, AuditAction.EXPORT, scope, None, None, count=len(records),
                                   bundle=bundle, prefix=prefix)
            return ExportResult([view_of(r) for r in records], document)

    def _records(self, principal: Principal, scope: Scope, prefix: str,
                 progress: Progress | None) -> Iterator[SecretRecord]:
        done = 0
        for rows in scope_pages(self._d.uow, principal, scope, prefix, self._d.batch_size):
            yield from rows
            done += len(rows)
            if progress:
                progress(done, None)

    def import_(self, principal: Principal, items: list[ImportItem] | None = None,
                bundle: dict[str, Any] | None = None, mode: str = "merge", allow_plaintext: bool = False,
                passphrase: SecretValue | None = None, prefix: str = "", dry_run: bool = False,
                progress: Progress | None = None) -> ImportReport:
        with self._d.auditor.failures(principal, AuditAction.IMPORT, None):
            prefix, parsed = self._admit(principal, items, bundle, mode, allow_plaintext, passphrase, prefix,
                                         dry_run)
            # Only an admitted caller gets here: the passphrase KDF or the master-key unwrap, the MAC, decryption.
            if parsed is None:
                entries = items or []  # _admit checked them already
            else:
                entries = self._codec.open(parsed, passphrase)
                _check_items(entries, prefix)  # now with the decrypted values and the authenticated meta
            if not dry_run:
                self._d.sealer.before_write()
            return self._apply(principal, entries, mode, prefix, dry_run, progress)

    def admit(self, principal: Principal, items: list[ImportItem] | None = None,
              bundle: dict[str, Any] | None = None, mode: str = "merge", allow_plaintext: bool = False,
              passphrase: SecretValue | None = None, prefix: str = "", dry_run: bool = False) -> None:
        """The checks `import_` makes before any expensive step, for an answer given without it (a replay)."""
        with self._d.auditor.failures(principal, AuditAction.IMPORT, None):
            self._admit(principal, items, bundle, mode, allow_plaintext, passphrase, prefix, dry_run)

    def _admit(self, principal: Principal, items: list[ImportItem] | None, bundle: dict[str, Any] | None,
               mode: str, allow_plaintext: bool, passphrase: SecretValue | None, prefix: str,
               dry_run: bool) -> tuple[str, ParsedBundle | None]:
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
        _authorize(principal, {scope for scope, _ in places}, mode == "replace" and dry_run)
        for scope, key in places:  # a key-prefix token writes only under its prefix (others look absent)
            authorize(principal, scope, Permission.WRITE, key)
        self._d.throttle.principal(principal, "write")
        return prefix, parsed

    def _apply(self, principal: Principal, entries: list[ImportItem], mode: str, prefix: str, dry_run: bool,
               progress: Progress | None) -> ImportReport:
        report = ImportReport(dry_run=dry_run)
        with self._d.uow.transaction(principal) as repo:
            existing = {(e.scope, e.key): repo.get(e.scope, e.key) for e in entries}
            visible = principal.narrow(prefix)
            if mode == "replace" and visible is not None:  # a key-prefix token replaces only under its prefix
                report.removed = self._stale(repo, entries, visible)
            for entry in entries:
                previous = existing[(entry.scope, entry.key)]
                (report.added if previous is None else report.updated).append((str(entry.scope), entry.key))
            for start in range(0, 0 if dry_run else len(entries), self._d.batch_size):
                batch = entries[start:start + self._d.batch_size]
                records = self._d.pool.map(  # each seal wraps a fresh DEK: a KMS call
                    lambda e: self._d.sealer.seal(existing[(e.scope, e.key)], e.scope, e.key, e.value, e.meta),
                    batch)
                for record in records:
                    previous = existing[(record.scope, record.key)]
                    repo.save(record, None if previous is None else previous.version)
                if progress:
                    progress(start + len(batch), len(entries))
            if not dry_run:
                for scope_text, key in report.removed:
                    repo.delete(Scope.parse(scope_text), key)
                self._d.auditor.record(principal, AuditAction.IMPORT, None, None, None, mode=mode,
                                       added=len(report.added), updated=len(report.updated),
                                       removed=len(report.removed))
        return report

    def _stale(self, repo: SecretRepository, entries: list[ImportItem], prefix: str) -> list[tuple[str, str]]:
        """Keys of the named scopes (under the prefix) that the import does not contain."""
        wanted = {(e.scope, e.key) for e in entries}
        stale: list[tuple[str, str]] = []
        size = self._d.batch_size
        for scope in sorted({e.scope for e in entries}):
            def fetch(after: str | None, scope: Scope = scope) -> list[SecretRecord]:
                return repo.list_page(scope, prefix, after, size)
            for rows in pages(fetch, _key_of, size):
                stale += [(str(r.scope), r.key) for r in rows if (r.scope, r.key) not in wanted]
        return stale


def _key_of(record: SecretRecord) -> str:
    return record.key


def _authorize(principal: Principal, scopes: set[Scope], needs_read: bool) -> None:
    """Write on every named scope. A replace dry run also needs read: its report lists the keys a replace would
    remove, names a writer without read could not otherwise learn."""
    if not scopes and not principal.has(Permission.WRITE):  # nothing named, but still only for writers
        raise PermissionDenied(f"missing permission {Permission.WRITE.value}", required=Permission.WRITE.value)
    for scope in sorted(scopes):
        authorize(principal, scope, Permission.WRITE)
        if needs_read:
            authorize(principal, scope, Permission.READ)


def _check_items(entries: list[ImportItem], prefix: str) -> None:
    for i, entry in enumerate(entries):
        # Items built in code skip parse_items: validate here too, so nothing invalid is ever written.
        if not isinstance(entry.scope, Scope):
            raise ValidationError(f"items[{i}].scope", "must be user:<id>, project:<id> or system")
        validate_key_name(entry.key, f"items[{i}].key")
        if not isinstance(entry.value, SecretValue):
            raise ValidationError(f"items[{i}].value", "must be a SecretValue")
        if entry.meta is not None:
            validate_meta(entry.meta, f"items[{i}].meta")
    _check_places([(e.scope, e.key) for e in entries], prefix, "items")


def _check_places(places: list[tuple[Scope, str]], prefix: str, where: str) -> None:
    """No (scope, key) twice, every key under the prefix. The rules name the item, never its key or scope."""
    seen: set[tuple[Scope, str]] = set()
    for i, place in enumerate(places):
        if place in seen:
            raise ValidationError(f"{where}[{i}].key", "repeats the scope and key of an earlier item")
        if prefix and not place[1].startswith(prefix):
            raise ValidationError(f"{where}[{i}].key", "must start with the import's prefix")
        seen.add(place)

