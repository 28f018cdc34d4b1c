"""Requests refused for their token are counted per client address (`unauthenticated`): within the limit each is a
401 and an audit row; past it a 429 and no row, so anyone without a token cannot grow the trail at wire speed."""

from __future__ import annotations

from collections.abc import Callable

from sprongus.domain.records import AuditAction
from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

ATTACKER, NEIGHBOUR = "203.0.113.7", "198.51.100.20"
FORGED = "spr_" + CANARY  # a token the attacker made up, carrying the canary


def _refusals(api: ApiClient) -> int:
    return sum(1 for e in api.events() if e.action is AuditAction.AUTHENTICATE)


def _as(api: ApiClient, address: str, token: str | None, path: str = KEY) -> int:
    response = api.call("GET", path, token, anonymous=token is None, environ_base={"REMOTE_ADDR": address})
    return response.status_code


def test_refusals_past_the_limit_are_429_and_write_no_audit_row(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_UNAUTHENTICATED="4/minute")
    api.seed("project:p1", "db.password", CANARY)
    # a forged token, no token at all, a bearer without the prefix and another scheme all count as refusals
    basic = api.call("GET", KEY, anonymous=True, headers={"Authorization": "Basic " + CANARY},
                     environ_base={"REMOTE_ADDR": ATTACKER}).status_code
    assert [_as(api, ATTACKER, FORGED), _as(api, ATTACKER, None), _as(api, ATTACKER, "not-a-token"), basic] == [401] * 4
    assert _refusals(api) == 4
    for path in (KEY, "/v1/audit", "/v1/auth/whoami", "/v1/secrets?ownerType=project&ownerId=p1"):
        response = api.call("GET", path, FORGED, environ_base={"REMOTE_ADDR": ATTACKER})
        body = problem(response, 429)
        assert body["type"].endswith(":rate-limited") and response.headers["Retry-After"].isdigit()
        assert response.headers["RateLimit-Policy"] == '"unauthenticated";q=4;w=60'
        assert CANARY not in response.get_data(as_text=True)
    assert _refusals(api) == 4, "a refusal past the limit wrote an audit row"
    assert all(CANARY not in repr(e) for e in api.events())


def test_only_refusals_count_and_only_the_callers_address(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_UNAUTHENTICATED="2/minute")
    api.seed("project:p1", "db.password", CANARY)
    for _ in range(5):  # a valid token is never counted, before or after the address runs out of refusals
        assert _as(api, ATTACKER, api.alice) == 200
    assert [_as(api, ATTACKER, FORGED) for _ in range(3)] == [401, 401, 429]
    assert _as(api, ATTACKER, api.alice) == 200  # a real client behind the attacker's address still gets in
    assert _as(api, NEIGHBOUR, FORGED) == 401  # another address has its own budget
    assert _as(api, "2001:db8:1:2::5", FORGED) == 401
    assert _as(api, "2001:db8:1:2::6", FORGED) == 401
    assert _as(api, "2001:db8:1:2::7", FORGED) == 429  # an IPv6 /64 is one budget
    assert _refusals(api) == 5


def test_the_default_limit_is_sixty_a_minute(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False)
    assert [_as(api, ATTACKER, FORGED) for _ in range(60)] == [401] * 60
    assert _as(api, ATTACKER, FORGED) == 429
    assert _refusals(api) == 60
