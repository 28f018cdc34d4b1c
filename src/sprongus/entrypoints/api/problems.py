"""One table from the domain's error tree to HTTP statuses, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from sprongus.domain import errors as e
from sprongus.domain.redaction import scrub_text
from sprongus.domain.tokens import StepUpRequired, Unauthenticated

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:sprongus:problem:"

class PreconditionFailed(e.Conflict):
    """If-Match named another version (HTTP 412)."""


# (error class, status, problem kind); most specific first.
STATUS_TABLE: list[tuple[type[Exception], int, str]] = [
    (e.ValidationError, 422, "validation"),
    (Unauthenticated, 401, "unauthenticated"),
    (e.NotFound, 404, "not-found"),
    (e.Gone, 410, "gone"),
    (e.PermissionDenied, 403, "insufficient-scope"),
    (PreconditionFailed, 412, "precondition-failed"),
    (e.Conflict, 409, "conflict"),
    (e.RateLimited, 429, "rate-limited"),
    (e.IntegrityError, 500, "integrity"),
    (e.KeyProviderUnavailable, 503, "key-provider-unavailable"),
    (e.KeyProviderError, 500, "key-provider"),
    (e.AuditUnavailable, 503, "audit-unavailable"),
    (e.StorageError, 503, "storage-unavailable"),
    (e.ConfigError, 500, "configuration"),
]


def problem(status: int, kind: str, title: str, detail: str | None = None,
            errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": TYPE_PREFIX + kind, "title": title, "status": status}
    if detail:
        body["detail"] = scrub_text(detail)
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_domain_error(exc: e.SprongusError) -> Response:
    status, kind = next(((st, k) for cls, st, k in STATUS_TABLE if isinstance(exc, cls)), (500, "error"))
    headers: dict[str, str] = {}
    errors = exc.errors if isinstance(exc, e.ValidationError) else None
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="sprongus"'
    if isinstance(exc, StepUpRequired):
        headers["WWW-Authenticate"] = (f'Bearer realm="sprongus", error="insufficient_user_authentication", '
                                       f'error_description="a more recent authentication is required", '
                                       f'max_age={exc.max_age}')
    if isinstance(exc, e.PermissionDenied):
        scope = f', scope="{exc.required}"' if exc.required else ""
        headers["WWW-Authenticate"] = f'Bearer realm="sprongus", error="insufficient_scope"{scope}'
    if isinstance(exc, e.RateLimited):
        headers.update(rate_limit_headers(exc.policy, exc.limit, exc.window_seconds, 0, exc.retry_after))
        headers["Retry-After"] = str(exc.retry_after)
    title = _TITLES.get(kind, "Error")
    if status == 401 and isinstance(exc, StepUpRequired):
        kind, title = "insufficient-user-authentication", "Recent authentication required"
    return problem(status, kind, title, str(exc), errors, headers)


def rate_limit_headers(policy: str, limit: int, window: int, remaining: int, reset: int) -> dict[str, str]:
    """IETF draft-ietf-httpapi-ratelimit-headers (draft 11 syntax)."""
    return {"RateLimit-Policy": f'"{policy}";q={limit};w={window}', "RateLimit": f'"{policy}";r={remaining};t={reset}'}


_TITLES = {
    "validation": "Invalid request", "unauthenticated": "Authentication required", "not-found": "Not found",
    "gone": "Gone", "insufficient-scope": "Insufficient scope", "conflict": "Conflict",
    "rate-limited": "Too many requests", "precondition-failed": "Precondition failed",
    "integrity": "Integrity check failed",
    "key-provider-unavailable": "Key provider unavailable", "key-provider": "Key provider error",
    "audit-unavailable": "Audit unavailable", "storage-unavailable": "Storage unavailable",
    "configuration": "Server misconfigured",
}
