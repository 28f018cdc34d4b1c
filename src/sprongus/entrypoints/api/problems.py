"""Domain errors rendered as RFC 9457 problem+json, through the table the HTTP client reads them back with."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Response

from sprongus.adapters.problem_types import PROBLEM_JSON, TYPE_PREFIX, problem_type_of
from sprongus.domain import errors as e
from sprongus.domain.redaction import scrub_answer

__all__ = ["PROBLEM_JSON", "from_domain_error", "problem", "rate_limit_headers"]
log = logging.getLogger("sprongus.api")


def problem(status: int, kind: str, title: str, detail: str | None = None,
            errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": TYPE_PREFIX + kind, "title": title, "status": status}
    if detail:
        body["detail"] = scrub_answer(detail)
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_domain_error(exc: e.SprongusError) -> Response:
    """The answer shows the error's public detail: never request text, a driver's or a vendor's words."""
    kind = problem_type_of(exc)
    errors = exc.errors if isinstance(exc, e.ValidationError) else None
    if kind.status >= 500 and exc.public is not None:  # the operator still needs the cause the answer leaves out
        log.error("%s answered %s: %r", type(exc).__name__, kind.status, exc.message)
    return problem(kind.status, kind.kind, kind.title, exc.public_detail, errors, _headers(exc))


def _headers(exc: e.SprongusError) -> dict[str, str]:
    if isinstance(exc, e.StepUpRequired):
        return {"WWW-Authenticate": f'Bearer realm="sprongus", error="insufficient_user_authentication", '
                                    f'error_description="a more recent authentication is required", '
                                    f'max_age={exc.max_age}'}
    if isinstance(exc, e.Unauthenticated):
        return {"WWW-Authenticate": 'Bearer realm="sprongus"'}
    if isinstance(exc, e.PermissionDenied):
        scope = f', scope="{exc.required}"' if exc.required else ""
        return {"WWW-Authenticate": f'Bearer realm="sprongus", error="insufficient_scope"{scope}'}
    if isinstance(exc, e.RateLimited):
        return {**rate_limit_headers(exc.policy, exc.limit, exc.window_seconds, 0, exc.retry_after),
                "Retry-After": str(exc.retry_after)}
    return {}


def rate_limit_headers(policy: str, limit: int, window: int, remaining: int, reset: int) -> dict[str, str]:
    """IETF draft-ietf-httpapi-ratelimit-headers (draft 11 syntax)."""
    return {"RateLimit-Policy": f'"{policy}";q={limit};w={window}', "RateLimit": f'"{policy}";r={remaining};t={reset}'}
