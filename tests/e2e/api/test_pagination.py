"""Keyset pagination of GET /v1/secrets: every key exactly once, in key-name order, across many pages."""

from __future__ import annotations

import random
import string

import pytest

from tests.e2e.api.conftest import ApiClient, problem
from tests.harness import CANARY

LIST = "/v1/secrets?ownerType=project&ownerId=p1"


def _names(count: int) -> list[str]:
    rng = random.Random(20260101)
    first, rest = string.ascii_letters, string.ascii_letters + string.digits + "_-"
    names: set[str] = set()
    while len(names) < count:
        segments = ["".join(rng.choices(rest, k=rng.randint(0, 6))) for _ in range(rng.randint(0, 2))]
        names.add(rng.choice(first) + "".join(rng.choices(rest, k=rng.randint(0, 8)))
                  + "".join("." + (s or "x") for s in segments))
    return list(names)


def test_walking_next_cursor_visits_every_key_once_in_order(any_api: ApiClient) -> None:
    names = _names(1000)
    items = [{"scope": "project:p1", "key": name, "value": CANARY} for name in names]
    any_api.seed("project:p2", "elsewhere", CANARY)
    any_api.seed("user:alice", "elsewhere", CANARY)
    imported = any_api.call("POST", "/v1/secrets:import", json={"allowPlaintext": True, "items": items})
    assert imported.status_code == 200 and imported.get_json()["added"] == 1000
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        response = any_api.call("GET", LIST + "&limit=37" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200
        assert CANARY not in response.get_data(as_text=True)
        page = response.get_json()
        assert len(page["items"]) <= 37
        seen.extend(item["keyName"] for item in page["items"])
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 37  # only the last page is short
    assert seen == sorted(names)  # every key once, in order, no gaps, nothing from another scope
    assert pages == 28  # ceil(1000 / 37)


def test_pages_follow_the_prefix_and_the_default_limit(api: ApiClient) -> None:
    for i in range(60):
        api.seed("project:p1", f"notion.k{i:02d}", "v")
    api.seed("project:p1", "other", "v")
    first = api.call("GET", LIST).get_json()
    assert len(first["items"]) == 50 and first["nextCursor"]
    rest = api.call("GET", LIST + f"&cursor={first['nextCursor']}").get_json()
    assert [i["keyName"] for i in rest["items"]][-1] == "other" and rest["nextCursor"] is None
    prefixed = api.call("GET", LIST + "&prefix=notion.&limit=500").get_json()
    assert len(prefixed["items"]) == 60 and prefixed["nextCursor"] is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", "azE6", "%00", "k1:abc", "a" * 400])
def test_a_bad_cursor_is_422(api: ApiClient, cursor: str) -> None:
    api.seed("project:p1", "a", "v")
    body = problem(api.call("GET", LIST + f"&cursor={cursor}"), 422)
    assert "cursor" in body["errors"]
