"""`GET /v1/secrets:export?bundle=true&allVersions=true`: a bundle with every kept version, which imports back
under the same numbers; per-key audit rows for the export and the import, never a value."""

from __future__ import annotations

import json

from tests.e2e.api.conftest import ApiClient, problem
from tests.harness import CANARY

EXPORT = "/v1/secrets:export?ownerType=project&ownerId=p1&bundle=true"


def test_all_versions_exports_the_history_and_imports_it_back(api: ApiClient) -> None:
    any_api = api  # the in-memory profile: its audit events are inspectable
    for n in (1, 2, 3):
        any_api.seed("project:p1", "a", f"{CANARY}-{n}")
    any_api.seed("project:p1", "b", "b1")
    plain = any_api.call("GET", EXPORT).get_json()
    assert "history" not in plain and [i["version"] for i in plain["items"]] == [3, 1]
    response = any_api.call("GET", EXPORT + "&allVersions=true")
    assert response.status_code == 200 and CANARY not in response.get_data(as_text=True)
    doc = response.get_json()
    assert doc["history"] is True
    assert [(i["key"], i["version"]) for i in doc["items"]] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    exported = [(e.key_name, e.version) for e in any_api.events() if e.action.value == "export" and e.key_name]
    assert sorted(exported) == [("a", 3), ("a", 3), ("b", 1), ("b", 1)]  # one row per key, per export

    for key in ("a", "b"):  # soft deleted: they still exist, so the history is appended after their versions
        assert any_api.call("DELETE", f"/v1/secrets/project/p1/{key}").status_code == 204
    imported = any_api.call("POST", "/v1/secrets:import", json={"mode": "merge", "bundle": doc})
    assert imported.status_code == 200 and imported.get_json()["added"] == 2
    assert any_api.reveal("/v1/secrets/project/p1/a").get_json()["version"] == 6
    rows = [(e.key_name, e.version) for e in any_api.events() if e.action.value == "import" and e.key_name]
    assert sorted(rows) == [("a", 6), ("b", 2)]
    assert CANARY not in json.dumps([e.detail for e in any_api.events()], default=str)


def test_all_versions_round_trips_under_the_same_numbers_on_every_store(any_api: ApiClient) -> None:
    for n in (1, 2):
        any_api.seed("project:p1", "a", f"{CANARY}-{n}")
    doc = any_api.call("GET", EXPORT + "&allVersions=true").get_json()
    problem(any_api.call("GET", EXPORT + "&allVersions=maybe"), 422)
    any_api.seed("project:p1", "a", "newer")  # v3: the target has the secret, so the history is appended
    assert any_api.call("POST", "/v1/secrets:import", json={"mode": "merge", "bundle": doc}).status_code == 200
    latest = any_api.reveal("/v1/secrets/project/p1/a").get_json()
    assert (latest["version"], latest["value"]) == (5, f"{CANARY}-2")
