"""Single-secret use cases: set, get (masked or revealed), unset, list."""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace

from sprongus.domain.errors import Conflict, IntegrityError, NotFound, ReplayOutdated, ValidationError
from sprongus.domain.meta import MetaValue, validate_meta
from sprongus.domain.names import validate_key_name, validate_prefix, validate_version
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, Page, SecretRecord, SecretView, SetResult, view_of
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.service.deps import ServiceDeps
from sprongus.service.sealing import SealedAhead
from sprongus.service.versioning import audit_destroyed, store_version

MAX_PAGE = 500
DEFAULT_PAGE = 50
# An unconditional set retries a lost compare-and-set a few times: every writer gets its own version.
SET_ATTEMPTS = 8


def _live_version(record: SecretRecord | None) -> int | None:
    """The version an If-Match names: the current one, or None for a missing or soft-deleted secret."""
    return record.version if record is not None and record.deleted_at is None else None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"k1:{key}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("k1:"):
        raise ValidationError("cursor", "must be a nextCursor returned by a previous page")
    return validate_key_name(text[3:], "cursor")


class SecretOps:
    """set, get, unset and list for any principal: authorize, throttle, then touch storage, audited."""

    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def set(self, principal: Principal, scope: Scope, key: str, value: SecretValue,
            meta: object = None, expected_version: int | None = None) -> SetResult:
        """Write a new version. `expected_version` (If-Match) turns a lost race into Conflict."""
        with self._d.auditor.failures(principal, AuditAction.UPDATE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            clean_meta = None if meta is None else validate_meta(meta)
            if not isinstance(value, SecretValue):
                raise ValidationError("value", "must be a SecretValue")
            _authorize_set(principal, scope, key, expected_version is not None)
            self._d.throttle.principal(principal, "write")
            self._d.sealer.before_write()
            attempts = 1 if expected_version is not None else SET_ATTEMPTS
            for attempt in range(attempts):
                try:
                    return self._set_once(principal, scope, key, value, clean_meta, expected_version)
                except Conflict:
                    if attempt == attempts - 1:
                        raise
            raise AssertionError("unreachable")

    def check_set(self, principal: Principal, scope: Scope, key: str, conditional: bool,
                  meta: object = None) -> None:
        """The checks `set` makes before acting, in its order, for an answer given without calling it (a malformed
        If-Match) or before it is called (an Idempotency-Key's row)."""
        with self._d.auditor.failures(principal, AuditAction.UPDATE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            if meta is not None:
                validate_meta(meta)
            _authorize_set(principal, scope, key, conditional)

    def check_replay(self, principal: Principal, scope: Scope, key: str, conditional: bool,
                     must_exist: bool) -> None:
        """An Idempotency-Key replay of `set` passes what the first request passed: validation, permissions and
        the write limit. A replayed success also needs the secret to exist still (`ReplayOutdated` otherwise):
        "201 created" for a secret deleted since would tell the client its value is stored when it is not."""
        with self._d.auditor.failures(principal, AuditAction.UPDATE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            _authorize_set(principal, scope, key, conditional)
            self._d.throttle.principal(principal, "write")
            if not must_exist:
                return
            with self._d.uow.transaction(principal, readonly=True) as repo:
                record = repo.get(scope, key)
            if record is None:
                raise ReplayOutdated("the secret was deleted after the first request with this Idempotency-Key; "
                                     "send the request again with a new key")

    def _set_once(self, principal: Principal, scope: Scope, key: str, value: SecretValue,
                  meta: dict[str, MetaValue] | None, expected_version: int | None) -> SetResult:
        if self._d.seal_ahead is None:
            return self._store(principal, scope, key, value, meta, expected_version, None)
        with self._d.seal_ahead.turn(scope, key) as mine:
            ahead = self._sealed_ahead(principal, scope, key, value, expected_version) if mine else None
            return self._store(principal, scope, key, value, meta, expected_version, ahead)

    def _store(self, principal: Principal, scope: Scope, key: str, value: SecretValue,
               meta: dict[str, MetaValue] | None, expected_version: int | None,
               ahead: SealedAhead | None) -> SetResult:
        with self._d.uow.transaction(principal) as repo:
            previous = repo.get_any(scope, key)  # a deleted secret comes back with a new version
            current = _live_version(previous)
            live = current is not None
            if expected_version is not None and expected_version != current:
                raise Conflict("version does not match If-Match", current_version=current)
            after = repo.last_purged_version(scope, key) if previous is None else 0
            record = self._d.sealer.seal(previous, scope, key, value, meta, after_version=after,
                                         by=principal.subject, ahead=ahead)
            auditor = self._d.auditor
            event = (auditor.event(principal, AuditAction.UPDATE, scope, key, record.version) if live
                     else auditor.event(principal, AuditAction.CREATE, scope, key, record.version,
                                        restored=previous is not None))  # new, or a deleted secret set again
            store_version(self._d, principal, repo, previous, record, then=event)
        return SetResult(view_of(record), not live)

    def _sealed_ahead(self, principal: Principal, scope: Scope, key: str, value: SecretValue,
                      expected_version: int | None) -> SealedAhead | None:
        """The value sealed for the version after the one read now, before the write transaction (see
        service/seal_ahead.py); None where the transaction will refuse the write anyway."""
        with self._d.uow.transaction(principal, readonly=True) as repo:
            previous = repo.get_any(scope, key)
            after = repo.last_purged_version(scope, key) if previous is None else 0
        if previous is not None and previous.defect:
            return None  # the transaction refuses it
        if expected_version is not None and expected_version != _live_version(previous):
            return None  # the transaction answers Conflict, unless the version came back to the one expected
        return self._d.sealer.seal_ahead(previous, scope, key, value, after_version=after)

    def check_reveal(self, principal: Principal, scope: Scope, key: str) -> None:
        """The checks a reveal makes first, for the API to make before its step-up check: a caller who may not
        reveal this secret is refused as ever (404 or 403), not asked to sign in again."""
        with self._d.auditor.failures(principal, AuditAction.REVEAL, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            authorize(principal, scope, Permission.REVEAL, key)

    def get(self, principal: Principal, scope: Scope, key: str, reveal: bool = False,
            version: int | None = None) -> SecretView:
        """The current version, or with `version` a kept one (a destroyed or unknown one is NotFound)."""
        action = AuditAction.REVEAL if reveal else AuditAction.READ
        with self._d.auditor.failures(principal, action, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            if version is not None:
                validate_version(version)
            authorize(principal, scope, Permission.REVEAL if reveal else Permission.READ, key)
            if reveal:
                self._d.throttle.principal(principal, "reveal")
            if version is None:
                record = self._d.uow.current(principal, scope, key)
            else:
                with self._d.uow.transaction(principal, readonly=True) as repo:
                    record = repo.get(scope, key)
                    if record is not None and version != record.version:
                        record = repo.get_version(scope, key, version)
            if record is None:
                raise NotFound(f"secret {key} not found in {scope}" if version is None
                               else f"version {version} of secret {key} not found in {scope}")
            if record.defect:  # a row that does not decode is reported, not shown with made-up fields
                raise IntegrityError()
            if not reveal:
                return view_of(record)
            value = self._d.sealer.open(record)
            # Fail closed: no audit row, no plaintext.
            self._d.auditor.record(principal, AuditAction.REVEAL, scope, key, record.version)
            return view_of(record, value)

    def unset(self, principal: Principal, scope: Scope, key: str) -> None:
        """Soft delete: the secret answers "not found" and keeps every version (`restore` brings it back)."""
        with self._d.auditor.failures(principal, AuditAction.DELETE, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            authorize(principal, scope, Permission.WRITE, key)
            self._d.throttle.principal(principal, "write")
            with self._d.uow.transaction(principal) as repo:
                record = repo.get(scope, key)
                if record is None:
                    raise NotFound(f"secret {key} not found in {scope}")
                if record.defect:
                    # A current row that does not decode cannot be kept, restored or written over (its version is
                    # unknown): deleting it destroys it and its kept versions, which is how such a row is cleared.
                    # The last version number is still remembered, so a new value continues after it.
                    destroyed = repo.purge(scope, key, self._d.clock.now())
                    audit_destroyed(self._d, principal, scope, key, destroyed, "damaged")
                elif not repo.mark_deleted(scope, key, self._d.clock.now()):
                    raise NotFound(f"secret {key} not found in {scope}")
                self._d.auditor.record(principal, AuditAction.DELETE, scope, key,
                                       None if record.defect else record.version)

    def list(self, principal: Principal, scope: Scope, prefix: str = "", with_meta: bool = False,
             cursor: str | None = None, limit: int = DEFAULT_PAGE, deleted: bool = False) -> Page:
        """A page of live secrets, or with `deleted` of soft-deleted ones (each with its deletedAt)."""
        with self._d.auditor.failures(principal, AuditAction.LIST, scope):
            prefix = validate_prefix(prefix)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
                raise ValidationError("limit", f"must be an integer between 1 and {MAX_PAGE}")
            after = None if not cursor else decode_cursor(cursor)
            authorize(principal, scope, Permission.READ)
            visible = principal.narrow(prefix)
            if visible is None:  # the caller's key prefix and this one share no key
                return Page([], None)
            with self._d.uow.transaction(principal, readonly=True) as repo:
                rows = repo.list_page(scope, visible, after, limit + 1, deleted=deleted)
            more = len(rows) > limit
            rows = rows[:limit]
            items = [view_of(r) if with_meta else _without_meta(view_of(r)) for r in rows]
            return Page(items, encode_cursor(rows[-1].key) if more else None)


def _authorize_set(principal: Principal, scope: Scope, key: str, conditional: bool) -> None:
    """Write, and with If-Match read too: its 412 names the current version, which is for readers only."""
    authorize(principal, scope, Permission.WRITE, key)
    if conditional:
        authorize(principal, scope, Permission.READ, key)


def _without_meta(view: SecretView) -> SecretView:
    return replace(view, meta={})
