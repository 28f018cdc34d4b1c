"""Domain errors rendered as RFC 9457 problem+json, through the table the HTTP client reads them back with."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from sprongus.adapters.problem_types import PROBLEM_JSON, TYPE_PREFIX, problem_type_of
from sprongus.domain import errors as e
from sprongus.domain.redaction import scrub_text

__all__ = ["PROBLEM_JSON", "from_domain_error", "problem", "rate_limit_headers"]


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
    kind = problem_type_of(exc)
    errors = exc.errors if isinstance(exc, e.ValidationError) else None
    return problem(kind.status, kind.kind, kind.title, str(exc), errors, _headers(exc))


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
