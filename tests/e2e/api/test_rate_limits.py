"""Rate limits on reveal and writes, per principal: 429 problem+json with Retry-After and RateLimit headers."""

from __future__ import annotations

import re
from collections.abc import Callable

from werkzeug.test import TestResponse

from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY


def _assert_limited(response: TestResponse, policy: str, quota: int) -> None:
    body = problem(response, 429)
    assert body["type"].endswith(":rate-limited") and CANARY not in response.get_data(as_text=True)
    retry_after = response.headers["Retry-After"]
    assert re.fullmatch(r"\d+", retry_after) and 1 <= int(retry_after) <= 60, retry_after
    assert response.headers["RateLimit-Policy"] == f'"{policy}";q={quota};w=60'
    assert re.fullmatch(rf'"{policy}";r=0;t=\d+', response.headers["RateLimit"]), response.headers["RateLimit"]


def test_the_fourth_reveal_in_a_minute_is_429(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_REVEAL="3/minute")
    api.seed("project:p1", "db.password", CANARY)
    for _ in range(3):
        assert api.reveal(KEY).status_code == 200
    limited = api.reveal(KEY)
    _assert_limited(limited, "reveal", 3)
    _assert_limited(api.call("POST", KEY + ":reveal", json={"oneTime": True}), "reveal", 3)  # minting counts
    _assert_limited(api.call("GET", "/v1/secrets:export?ownerType=project&ownerId=p1&bundle=true"), "reveal", 3)
    assert api.call("GET", KEY).status_code == 200  # masked reads are not reveals
    assert api.put(KEY, "new").status_code == 200  # nor are writes
    bob = api.token("bob")  # limits are per principal
    assert api.reveal(KEY, bob).get_json()["value"] == "new"


def test_writes_are_limited_by_the_write_setting(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(SPRONGUS_RATE_LIMIT_WRITE="2/minute")
    assert api.put(KEY, CANARY).status_code == 201
    assert api.call("POST", KEY + ":rotate").status_code == 200
    items = [{"scope": "project:p1", "key": "x", "value": "v"}]
    for method, path, body in [("PUT", KEY, {"value": CANARY}), ("DELETE", KEY, None),
                               ("POST", KEY + ":rotate", None),
                               ("POST", "/v1/secrets:import", {"allowPlaintext": True, "items": items})]:
        _assert_limited(api.call(method, path, json=body), "write", 2)
    assert api.reveal(KEY).get_json()["version"] == 2  # nothing limited was written
    assert api.put(KEY, "bob's", api.token("bob")).status_code == 200


def test_by_default_reveal_is_stricter_than_writes(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False)  # no SPRONGUS_RATE_LIMIT_* at all
    for _ in range(11):  # 11 writes are fine ...
        assert api.put(KEY, CANARY).status_code in (200, 201)
    for _ in range(10):
        assert api.reveal(KEY).status_code == 200
    limited = api.reveal(KEY)  # ... the 11th reveal is not
    _assert_limited(limited, "reveal", 10)
