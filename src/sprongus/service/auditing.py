"""Audit events for every action, including denied and failed attempts. Never a value."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from sprongus.domain.errors import (
    AuditUnavailable,
    Conflict,
    Gone,
    IntegrityError,
    NotFound,
    PermissionDenied,
    RateLimited,
    SprongusError,
    Unavailable,
    ValidationError,
)
from sprongus.domain.principal import Principal, ScopeHidden
from sprongus.domain.records import AuditAction, AuditEvent, Outcome
from sprongus.domain.scope import Scope
from sprongus.ports import AuditSink, Clock

log = logging.getLogger("sprongus.audit")

_OUTCOMES: list[tuple[type[SprongusError], Outcome]] = [
    (ScopeHidden, Outcome.DENIED),
    (Gone, Outcome.DENIED),
    (PermissionDenied, Outcome.DENIED),
    (NotFound, Outcome.NOT_FOUND),
    (ValidationError, Outcome.INVALID),
    (Conflict, Outcome.CONFLICT),
    (RateLimited, Outcome.RATE_LIMITED),
    (IntegrityError, Outcome.INTEGRITY_ERROR),
]


def outcome_of(exc: BaseException) -> Outcome:
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return Outcome.ERROR


class Auditor:
    def __init__(self, sink: AuditSink, clock: Clock) -> None:
        self._sink = sink
        self._clock = clock

    def event(self, principal: Principal, action: AuditAction, scope: Scope | None, key: str | None,
              version: int | None = None, outcome: Outcome = Outcome.SUCCESS, **detail: Any) -> AuditEvent:
        """An event stamped now, for `record_events` to store with others in one append."""
        return AuditEvent(self._clock.now(), principal.subject, action, None if scope is None else str(scope),
                          key, version, outcome, principal.request_id, principal.client_address, detail)

    def record(self, principal: Principal, action: AuditAction, scope: Scope | None, key: str | None,
               version: int | None = None, outcome: Outcome = Outcome.SUCCESS, **detail: Any) -> None:
        """Record or raise AuditUnavailable: actions that must be audited then do not happen."""
        self._stored(self._sink.record, self.event(principal, action, scope, key, version, outcome, **detail))

    def record_many(self, principal: Principal, action: AuditAction, scope: Scope,
                    entries: Sequence[tuple[str, int | None, Outcome]], **detail: Any) -> None:
        """One event per (key, version, outcome), all at one time, stored all or none (else AuditUnavailable)."""
        now, where, shared = self._clock.now(), str(scope), dict(detail)  # one detail for all: serialized once
        self.record_events([AuditEvent(now, principal.subject, action, where, key, version, outcome,
                                       principal.request_id, principal.client_address, shared)
                            for key, version, outcome in entries])

    def record_events(self, events: Sequence[AuditEvent]) -> None:
        """Events of any actions in order, in one append (one read of the chain head, one INSERT), all or none:
        else AuditUnavailable."""
        self._stored(self._sink.record_many, events)

    @staticmethod
    def _stored(store: Callable[[Any], None], what: Any) -> None:
        try:
            store(what)
        except AuditUnavailable:
            raise
        except Exception as exc:
            raise AuditUnavailable("audit event could not be recorded; action refused") from exc

    def failures(self, principal: Principal, action: AuditAction, scope: Scope | None,
                 key: str | None = None, **detail: Any) -> _FailureAudit:
        """Audit the failed attempt of whatever runs inside, then re-raise the original error."""
        return _FailureAudit(self, principal, action, scope, key, detail)


class _FailureAudit:
    """A class, not a generator context manager: it wraps every service call."""

    __slots__ = ("_action", "_auditor", "_detail", "_key", "_principal", "_scope")

    def __init__(self, auditor: Auditor, principal: Principal, action: AuditAction, scope: Scope | None,
                 key: str | None, detail: dict[str, Any]) -> None:
        self._auditor, self._principal, self._action, self._scope, self._key = auditor, principal, action, scope, key
        self._detail = detail

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, AuditUnavailable) or not isinstance(exc, SprongusError):
            return
        try:
            self._auditor.record(self._principal, self._action, self._scope, self._key, None, outcome_of(exc),
                                 **self._detail)
        except AuditUnavailable:
            # An outage usually takes the audit store with it (the same database, the same full disk): the error
            # itself is already reported (one line on the CLI, a 503 on the API), so this is no second error line.
            log.log(logging.INFO if isinstance(exc, Unavailable) else logging.ERROR,
                    "could not audit a failed %s on %s", self._action.value, self._scope)
