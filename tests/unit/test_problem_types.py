"""One table between errors and problem types: what the API renders, the HTTP client turns back into the same error,
so a remote command exits like a local one."""

from __future__ import annotations

import json

import pytest

from sprongus.adapters.problem_types import PROBLEM_TYPES, error_from_problem
from sprongus.domain import errors as e
from sprongus.entrypoints.api.problems import from_domain_error
from sprongus.entrypoints.cli.errors import exit_code_for
from tests.harness import CANARY

SAMPLES: list[e.SprongusError] = [
    e.ValidationError("value", "must be at most 65536 bytes"),
    e.StepUpRequired(900),
    e.Unauthenticated("the bearer token is unknown, revoked or expired"),
    e.NotFound("secret db.password not found in project:p1"),
    e.Gone("the reveal token is used, expired or unknown"),
    e.PermissionDenied("missing scope", required="secrets:reveal"),
    e.PreconditionFailed("If-Match: the current version is 3"),
    e.Conflict("version does not match If-Match"),
    e.RateLimited("reveal", limit=10, window_seconds=60, retry_after=42),
    e.IntegrityError(),
    e.KeyProviderUnavailable("the KMS did not answer"),
    e.KeyProviderError("master key disabled"),
    e.AuditUnavailable("audit event could not be recorded; action refused"),
    e.StorageUnavailable("database unavailable: connection refused"),
    e.StorageError("database error: file is not a database"),
    e.Unavailable("a dependency is down"),
    e.ConfigError("SPRONGUS_DATABASE_URL: required"),
]


def test_every_row_of_the_table_has_a_sample() -> None:
    assert {type(sample) for sample in SAMPLES} == {row.error for row in PROBLEM_TYPES}


@pytest.mark.parametrize("error", SAMPLES, ids=lambda error: type(error).__name__)
def test_a_rendered_error_reads_back_as_the_same_error(error: e.SprongusError) -> None:
    response = from_domain_error(error)
    body = json.loads(response.get_data(as_text=True))
    back = error_from_problem(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})
    row = next(row for row in PROBLEM_TYPES if isinstance(error, row.error))
    if row.server_fault:  # the server's own misconfiguration: the caller sees an unavailable API
        assert isinstance(back, e.RemoteUnavailable) and exit_code_for(back) == 8  # was 1: an outage (issue 11)
        return
    if type(error) is e.StorageError:  # answered 503 storage-unavailable as ever: the caller can only try again
        assert type(back) is e.StorageUnavailable and exit_code_for(back) == 8
        return
    assert type(back) is type(error)
    assert exit_code_for(back) == exit_code_for(error)  # --remote exits as local mode would
    if isinstance(error, e.RateLimited):
        assert isinstance(back, e.RateLimited)
        assert (back.policy, back.limit, back.window_seconds, back.retry_after) == ("reveal", 10, 60, 42)
    if isinstance(error, e.ValidationError):
        assert isinstance(back, e.ValidationError) and back.errors == error.errors
    if isinstance(error, e.StepUpRequired):
        assert isinstance(back, e.StepUpRequired) and back.max_age == 900


@pytest.mark.parametrize(("status", "exit_code"), [(400, 2), (422, 2), (401, 4), (403, 4), (404, 3), (410, 3),
                                                  (409, 5), (412, 5), (429, 6), (500, 8), (502, 8), (503, 8)])
def test_answers_of_other_kinds_go_by_their_status(status: int, exit_code: int) -> None:
    """A gateway's or framework's own answer (no problem type of ours) still maps as its status says; a 5xx is the
    API being unavailable, 8 (was 1)."""
    for body in ({}, {"type": "urn:other", "title": "from a proxy"}, {"type": "urn:sprongus:problem:http-404"}):
        back = error_from_problem(status, body, {"retry-after": "7"})
        assert exit_code_for(back) == exit_code, (status, body, back)
        if status >= 500:
            assert isinstance(back, e.RemoteUnavailable) and str(status) in str(back)
        if status == 429:
            assert isinstance(back, e.RateLimited) and back.retry_after == 7


def test_a_rendered_problem_never_carries_a_live_value() -> None:
    from sprongus.domain.values import SecretValue

    alive = SecretValue(CANARY)
    response = from_domain_error(e.NotFound(f"secret {CANARY} not found"))
    assert CANARY not in response.get_data(as_text=True)
    assert alive.reveal() == CANARY
