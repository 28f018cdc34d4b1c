"""The one table between the domain's errors and RFC 9457 problem types: the API renders with it, the HTTP client
turns answers back into the same errors with it, so a remote command fails exactly like a local one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sprongus.domain import errors as e

TYPE_PREFIX = "urn:sprongus:problem:"
PROBLEM_JSON = "application/problem+json"
_POLICY = re.compile(r'\s*"(?P<name>[^"]+)";q=(?P<q>\d+);w=(?P<w>\d+)')


@dataclass(frozen=True, slots=True)
class ProblemType:
    error: type[e.SprongusError]
    status: int
    kind: str
    title: str
    server_fault: bool = False  # the client reports these as the API being unavailable, not as its own error


# Most specific first: the first class an error is an instance of decides.
PROBLEM_TYPES: tuple[ProblemType, ...] = (
    ProblemType(e.ValidationError, 422, "validation", "Invalid request"),
    ProblemType(e.StepUpRequired, 401, "insufficient-user-authentication", "Recent authentication required"),
    ProblemType(e.Unauthenticated, 401, "unauthenticated", "Authentication required"),
    ProblemType(e.NotFound, 404, "not-found", "Not found"),
    ProblemType(e.Gone, 410, "gone", "Gone"),
    ProblemType(e.PermissionDenied, 403, "insufficient-scope", "Insufficient scope"),
    ProblemType(e.PreconditionFailed, 412, "precondition-failed", "Precondition failed"),
    ProblemType(e.Conflict, 409, "conflict", "Conflict"),
    ProblemType(e.RateLimited, 429, "rate-limited", "Too many requests"),
    ProblemType(e.IntegrityError, 500, "integrity", "Integrity check failed"),
    ProblemType(e.KeyProviderUnavailable, 503, "key-provider-unavailable", "Key provider unavailable"),
    ProblemType(e.KeyProviderError, 500, "key-provider", "Key provider error"),
    ProblemType(e.AuditUnavailable, 503, "audit-unavailable", "Audit unavailable"),
    # An outage (unreachable, busy, disk full) and a refused statement answer alike, as they always did; the client
    # reads the kind back as the outage (the first row wins), so `--remote` exits 8 "try again" for both.
    ProblemType(e.StorageUnavailable, 503, "storage-unavailable", "Storage unavailable"),
    ProblemType(e.StorageError, 503, "storage-unavailable", "Storage unavailable"),
    ProblemType(e.Unavailable, 503, "unavailable", "Service unavailable"),
    ProblemType(e.ConfigError, 500, "configuration", "Server misconfigured", server_fault=True),
)
UNEXPECTED = ProblemType(e.SprongusError, 500, "error", "Error", server_fault=True)
_BY_KIND = {p.kind: p for p in reversed(PROBLEM_TYPES)}  # reversed: the first row of a kind wins
_BY_STATUS = {400: _BY_KIND["validation"], 422: _BY_KIND["validation"], 401: _BY_KIND["unauthenticated"],
              403: _BY_KIND["insufficient-scope"], 404: _BY_KIND["not-found"], 410: _BY_KIND["gone"],
              409: _BY_KIND["conflict"], 412: _BY_KIND["precondition-failed"], 429: _BY_KIND["rate-limited"]}


def problem_type_of(exc: e.SprongusError) -> ProblemType:
    return next((p for p in PROBLEM_TYPES if isinstance(exc, p.error)), UNEXPECTED)


MAX_DETAIL = 300  # characters of the server's text repeated in an error (and in a client's retry log line)


def error_from_problem(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> e.SprongusError:
    """The domain error a problem+json answer stands for; `headers` with lower-case names. An answer of the wrong
    shape (a broken server, a hostile one) is the status's error, never an exception of another kind."""
    try:
        return _error_from_problem(status, body, headers)
    except (TypeError, ValueError, AttributeError, RecursionError):
        return e.RemoteUnavailable(f"the API answered {status} with a problem document it could not read")


def _plain(text: Any) -> str:
    """The server's text as one short line: no line breaks or control characters to forge a log line with."""
    return "".join(c if c.isprintable() else " " for c in str(text)[:MAX_DETAIL])


def _error_from_problem(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> e.SprongusError:
    kind = str(body.get("type", "")).removeprefix(TYPE_PREFIX)
    detail = _plain(body.get("detail") or body.get("title") or f"HTTP {status}")
    # An answer of another kind (a framework's http-404, a proxy's or gateway's own 401 or 429) goes by its status,
    # so scripts that retry on "rate limited" or stop on "denied" behave the same whoever answered.
    problem = _BY_KIND.get(kind) or _BY_STATUS.get(status)
    if problem is None or problem.server_fault:
        return e.RemoteUnavailable(f"the API answered {status}: {detail}")
    error = problem.error
    if error is e.ValidationError:
        errors = body.get("errors")
        field, rules = next(iter(errors.items()), ("request", [detail])) if isinstance(errors, dict) and errors \
            else ("request", [detail])
        text = "; ".join(str(rule) for rule in rules) if isinstance(rules, list) else str(rules)
        return e.ValidationError(_plain(field), _plain(text))
    if error is e.RateLimited:
        return _rate_limited(headers)
    if error is e.StepUpRequired:
        return e.StepUpRequired(_max_age(headers.get("www-authenticate", "")))
    return error(detail)


def _rate_limited(headers: Mapping[str, str]) -> e.RateLimited:
    """The policy and delay the server named (RateLimit-Policy, Retry-After)."""
    policy = _POLICY.match(headers.get("ratelimit-policy") or "")
    retry = (headers.get("retry-after") or "").strip()
    return e.RateLimited(_plain(policy["name"]) if policy else "api", limit=int(policy["q"][:10]) if policy else 0,
                         window_seconds=int(policy["w"][:10]) if policy else 0,
                         retry_after=_seconds(retry))


def _seconds(text: str) -> int:
    """Retry-After as delta-seconds; anything else (an HTTP date, `²`, which str.isdigit accepts, a thousand digits)
    is 1 s: a malformed header from a proxy must not turn into an unexpected ValueError."""
    if not text.isascii() or not text.isdigit():
        return 1
    return min(int(text[:10]), 10**9)  # a thousand digits is "not for a very long time", not a crash


def _max_age(challenge: str) -> int:
    match = re.search(r"max_age=(\d+)", challenge)
    return min(int(match[1][:10]), 10**9) if match else 0
