"""A stored row that does not decode, through the API on SQLite: that row answers 500 `integrity` (a fixed text),
the listing of its scope still answers 200 with the row by name, masked."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing

from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

LIST = "/v1/secrets?ownerType=project&ownerId=p1&withMeta=true"


def test_a_corrupt_row_is_500_integrity_and_the_scope_still_lists(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(sqlite=True)
    for key in ("a", "db.password", "z"):
        api.seed("project:p1", key, CANARY + key, {"tag": "x"})
    assert api.home is not None
    with closing(sqlite3.connect(api.home / "vault.db")) as conn, conn:
        conn.execute("UPDATE secret_kv SET updated_at = 'not a time' WHERE key_name = 'db.password'")

    for response in (api.call("GET", KEY), api.reveal(KEY), api.call("POST", KEY + ":rotate"),
                     api.put(KEY, "new value")):
        body = problem(response, 500)
        assert body["type"].endswith(":integrity") and "not a time" not in body["detail"]
        assert CANARY not in response.get_data(as_text=True)

    listed = api.call("GET", LIST)
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [i["keyName"] for i in items] == ["a", "db.password", "z"]
    damaged = items[1]
    assert (damaged["value"], damaged["version"], damaged["updatedAt"], damaged["meta"]) == ("********", 0, None, {})
    assert items[0]["version"] == 1 and items[0]["meta"] == {"tag": "x"}
    assert CANARY not in listed.get_data(as_text=True)

    assert api.call("DELETE", KEY).status_code == 204  # the way out: delete it, then write it again
    assert api.put(KEY, "fresh").status_code == 201
