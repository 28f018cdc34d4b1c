"""Reading the audit trail: a page (the CLI's `audit list`, GET /v1/audit), an export (JSON lines) and the check
of the chain and its checkpoints (`audit verify`).

Who sees what: the vault's owner (local mode) every event; an API token with `secrets:admin` only events whose
scope is `system` or one of its projects (never `user:*` rows, never vault-wide rows without a scope, never another
project's), and under its key prefix when it has one. Rows name keys, never values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from sprongus.domain.audit_log import CHECKPOINT_EVERY
from sprongus.domain.audit_rows import AuditFilter, StoredAuditEvent
from sprongus.domain.audit_verify import AuditTrailReport
from sprongus.domain.errors import ConfigError, PermissionDenied
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.records import AuditAction
from sprongus.ports import Clock
from sprongus.ports.audit import AuditTrail
from sprongus.service.audit_query import (
    AuditQuery,
    CheckedQuery,
    check_limit,
    check_query,
    decode_cursor,
    encode_cursor,
)
from sprongus.service.auditing import Auditor


@dataclass(frozen=True)
class AuditPage:
    items: list[StoredAuditEvent]  # newest first
    next_cursor: str | None  # None on the last page


class AuditReader:
    def __init__(self, trail: AuditTrail | None, auditor: Auditor, clock: Clock, batch_size: int = 500) -> None:
        self._trail = trail
        self._auditor = auditor
        self._clock = clock
        self._batch = max(1, batch_size)

    def list(self, principal: Principal, query: AuditQuery, cursor: str | None = None,
             limit: int | str | None = None) -> AuditPage:
        """Newest first, keyset on seq: a page never repeats or skips an event, whatever is appended meanwhile."""
        with self._auditor.failures(principal, AuditAction.LIST, None, what="audit"):
            self._admit(principal)
            where = self._filter(principal, check_query(query, self._clock.now()))
            after, size = decode_cursor(cursor), check_limit(limit)
            rows = self._require().page(where, after, size + 1, True)
            more = len(rows) > size
            rows = rows[:size]
            return AuditPage(rows, encode_cursor(rows[-1].seq) if more else None)

    def export(self, principal: Principal, query: AuditQuery) -> Iterator[StoredAuditEvent]:
        """Oldest first, a page at a time (SPRONGUS_BATCH_SIZE rows): constant memory whatever the trail's size.
        The input is checked now, before the first row is read."""
        with self._auditor.failures(principal, AuditAction.EXPORT, None, what="audit"):
            self._admit(principal)
            where = self._filter(principal, check_query(query, self._clock.now()))
            trail = self._require()
        return self._pages(trail, where)

    def _pages(self, trail: AuditTrail, where: AuditFilter) -> Iterator[StoredAuditEvent]:
        after: int | None = None
        while True:
            rows = trail.page(where, after, self._batch, False)
            yield from rows
            if len(rows) < self._batch:
                return
            after = rows[-1].seq

    def verify(self, principal: Principal) -> AuditTrailReport:
        """The local operator's: it reads every tenant's events."""
        if not principal.owner:
            raise PermissionDenied("only the vault operator (local mode) may verify the audit trail")
        report = self._require().verify_chain()
        if not isinstance(report, AuditTrailReport):
            return AuditTrailReport(report.checked, report.problems)
        return _without_any_checkpoint(report)

    def admit(self, principal: Principal) -> None:
        """list's permission check on its own (audited when refused): a caller makes it before reading anything of
        the request, so a caller without the permission is told that, not what is wrong with its query."""
        with self._auditor.failures(principal, AuditAction.LIST, None, what="audit"):
            self._admit(principal)

    @staticmethod
    def _admit(principal: Principal) -> None:
        if not principal.has(Permission.ADMIN):
            raise PermissionDenied(f"missing permission {Permission.ADMIN.value}", required=Permission.ADMIN.value)

    @staticmethod
    def _filter(principal: Principal, query: CheckedQuery) -> AuditFilter:
        scopes: tuple[str, ...] | None = None if query.scope is None else (query.scope,)
        if not principal.owner:
            visible = ("system", *(f"project:{p}" for p in sorted(principal.projects)))
            scopes = visible if scopes is None else tuple(s for s in scopes if s in visible)
        return AuditFilter(scopes, query.key, query.actor, query.action, query.since, query.until,
                           "" if principal.owner else principal.key_prefix)

    def _require(self) -> AuditTrail:
        if self._trail is None:
            raise ConfigError("this storage backend keeps no audit trail to read")
        return self._trail


def _without_any_checkpoint(report: AuditTrailReport) -> AuditTrailReport:
    """The walk checks "N events after the newest checkpoint" only when a checkpoint is left: an attacker who
    deleted *every* checkpoint (then cut the tail at will) got `ok ... no checkpoint yet`. A checkpoint is written
    with the first event and at least every CHECKPOINT_EVERY events (the migration checkpoints an upgraded trail's
    head), so that many events and none at all is the same finding as checkpoints deleted behind the head."""
    if report.newest_checkpoint is not None or report.checkpoints or report.checked < CHECKPOINT_EVERY:
        return report
    problem = (f"{report.checked} events and no audit checkpoint: one is written at least every "
               f"{CHECKPOINT_EVERY:,} events, so the checkpoints were deleted (or could not be signed)")
    return replace(report, problems=[*report.problems, problem])
