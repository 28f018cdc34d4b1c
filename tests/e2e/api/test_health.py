"""`/v1/health/live` and `/v1/health/ready`: no token, no audit row, no secret, no cache; ready names what is down.

The outage drills on a real gunicorn (Postgres and Redis lost, frozen and back) are in
tests/e2e/gunicorn/test_outage_drills.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from tests.e2e.api.conftest import ApiClient, problem
from tests.harness import CANARY

READY = {"status": "ok", "checks": {"database": "ok", "rateLimitStore": "ok", "keyProvider": "ok"}}


@pytest.mark.parametrize(("path", "body"), [("/v1/health/live", {"status": "ok"}), ("/v1/health/ready", READY)])
def test_probes_answer_without_a_token_and_leave_no_audit_row(any_api: ApiClient, path: str, body: object) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    before = len(any_api.events()) if any_api.home is None else None

    for headers in ({}, {"Authorization": "Bearer spr_forged"}):  # a bad token is not even looked at
        response = any_api.client.get(path, headers=headers)
        assert (response.status_code, response.get_json()) == (200, body)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Request-ID"]
        assert CANARY not in response.get_data(as_text=True)
    if before is not None:
        assert len(any_api.events()) == before  # no authentication attempt, no denial: nothing to audit


def test_ready_names_the_rate_limit_store_when_redis_is_unreachable(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_STORAGE="redis://127.0.0.1:9/0")  # discard port

    body = problem(api.client.get("/v1/health/ready"), 503)
    assert body["type"] == "urn:sprongus:problem:not-ready"
    assert body["detail"] == "rate-limit store unavailable"
    assert api.client.get("/v1/health/live").status_code == 200


def test_successful_probes_stay_out_of_the_access_log_failing_ones_do_not(
        make_api: Callable[..., ApiClient], caplog: pytest.LogCaptureFixture) -> None:
    healthy, broken = make_api(), make_api(SPRONGUS_RATE_LIMIT_STORAGE="redis://127.0.0.1:9/0")
    with caplog.at_level(logging.INFO, logger="sprongus.api.access"):
        healthy.client.get("/v1/health/live")
        healthy.client.get("/v1/health/ready")
        broken.client.get("/v1/health/ready")
    lines = [r.getMessage() for r in caplog.records if r.name == "sprongus.api.access"]
    assert len(lines) == 1 and '"/v1/health/ready"' in lines[0] and '"status": 503' in lines[0], lines
