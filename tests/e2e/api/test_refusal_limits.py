"""Requests refused for their token are counted per client address (`unauthenticated`): within the limit each is a
401 and an audit row; past it the same 401 and no row, so anyone without a token cannot grow the trail at wire
speed, and a client that shares the address still gets the 401 it renews its token on. The other endpoints that
need no token (redeem, token exchange) write no row past their own per-address limits either."""

from __future__ import annotations

from collections.abc import Callable

from sprongus.domain.records import AuditAction
from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

ATTACKER, NEIGHBOUR = "203.0.113.7", "198.51.100.20"
FORGED = "spr_" + CANARY  # a token the attacker made up, carrying the canary
EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "a.b.c",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}


def _rows(api: ApiClient, action: AuditAction = AuditAction.AUTHENTICATE) -> int:
    return sum(1 for e in api.events() if e.action is action)


def _as(api: ApiClient, address: str, token: str | None, path: str = KEY) -> int:
    response = api.call("GET", path, token, anonymous=token is None, environ_base={"REMOTE_ADDR": address})
    return response.status_code


def test_refusals_past_the_limit_are_401_and_write_no_audit_row(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_UNAUTHENTICATED="4/minute")
    api.seed("project:p1", "db.password", CANARY)
    # a forged token, no token at all, a bearer without the prefix and another scheme all count as refusals
    basic = api.call("GET", KEY, anonymous=True, headers={"Authorization": "Basic " + CANARY},
                     environ_base={"REMOTE_ADDR": ATTACKER}).status_code
    assert [_as(api, ATTACKER, FORGED), _as(api, ATTACKER, None), _as(api, ATTACKER, "not-a-token"), basic] == [401] * 4
    assert _rows(api) == 4
    for path in (KEY, "/v1/audit", "/v1/auth/whoami", "/v1/secrets?ownerType=project&ownerId=p1"):
        response = api.call("GET", path, FORGED, environ_base={"REMOTE_ADDR": ATTACKER})
        body = problem(response, 401)
        assert body["type"].endswith(":unauthenticated") and "WWW-Authenticate" in response.headers
        assert CANARY not in response.get_data(as_text=True)
    assert _rows(api) == 4, "a refusal past the limit wrote an audit row"
    assert all(CANARY not in repr(e) for e in api.events())


def test_only_refusals_count_and_only_the_callers_address(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_UNAUTHENTICATED="2/minute")
    api.seed("project:p1", "db.password", CANARY)
    for _ in range(5):  # a valid token is never counted, before or after the address runs out of audited refusals
        assert _as(api, ATTACKER, api.alice) == 200
    assert [_as(api, ATTACKER, FORGED) for _ in range(3)] == [401] * 3
    assert _rows(api) == 2
    assert _as(api, ATTACKER, api.alice) == 200  # a real client behind the attacker's address still gets in
    assert _as(api, NEIGHBOUR, FORGED) == 401 and _rows(api) == 3  # another address has its own budget
    for host in (5, 6, 7):
        assert _as(api, f"2001:db8:1:2::{host}", FORGED) == 401
    assert _rows(api) == 5  # an IPv6 /64 is one budget: its third refusal wrote none


def test_the_default_limit_is_sixty_a_minute(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False)
    assert [_as(api, ATTACKER, FORGED) for _ in range(61)] == [401] * 61
    assert _rows(api) == 60


def test_with_the_limit_store_down_refusals_are_401s_and_write_no_row(make_api: Callable[..., ApiClient]) -> None:
    """The count decides only whether a refusal is audited: a store that is down leaves it a 401 (not a 503), and
    unaudited, or anyone could again write a row per request (found by review); token exchanges then answer 503
    and write no row either."""
    api = make_api(SPRONGUS_RATE_LIMIT_UNAUTHENTICATED="100/minute", SPRONGUS_RATE_LIMIT_STORAGE="redis://127.0.0.1:9/0")
    assert [_as(api, ATTACKER, FORGED) for _ in range(3)] == [401] * 3
    exchanges = [api.client.post("/v1/auth/token", data=EXCHANGE, environ_base={"REMOTE_ADDR": ATTACKER}).status_code
                 for _ in range(3)]
    assert exchanges == [503] * 3
    assert (_rows(api), _rows(api, AuditAction.EXCHANGE)) == (0, 0)


def test_redeems_and_exchanges_past_their_limits_write_no_row(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_REDEEM="2/minute", SPRONGUS_RATE_LIMIT_EXCHANGE="2/minute")
    redeems = [api.redeem("srt_" + CANARY, address=ATTACKER).status_code for _ in range(5)]
    assert redeems == [410, 410, 429, 429, 429]
    exchanges = [api.client.post("/v1/auth/token", data=EXCHANGE, environ_base={"REMOTE_ADDR": ATTACKER}).status_code
                 for _ in range(5)]
    assert exchanges[2:] == [429] * 3 and all(status in (400, 401) for status in exchanges[:2]), exchanges
    assert (_rows(api, AuditAction.REDEEM), _rows(api, AuditAction.EXCHANGE)) == (2, 2)
    assert all(CANARY not in repr(e) for e in api.events())
