"""Import (atomic, plaintext only when allowed, merge/replace, bundles) and export (metadata or bundle)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.api.conftest import READ, WRITE, ApiClient, problem
from tests.harness import CANARY

EXPORT = "/v1/secrets:export?ownerType=project&ownerId=p1"


def _import(api: ApiClient, body: dict[str, Any], **kwargs: Any) -> Any:
    return api.call("POST", "/v1/secrets:import", json=body, **kwargs)


def _item(key: str, value: str = CANARY, scope: str = "project:p1", **extra: Any) -> dict[str, Any]:
    return {"scope": scope, "key": key, "value": value, **extra}


def _names(api: ApiClient, scope: str = "ownerType=project&ownerId=p1") -> list[str]:
    return [item["keyName"] for item in api.call("GET", f"/v1/secrets?{scope}").get_json()["items"]]


def test_import_merges_plaintext_items_when_allowed(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "kept", "old")
    any_api.seed("project:p1", "changed", "old")
    items = [_item("changed", "new"), _item("added", CANARY, meta={"provider": "notion"}),
             _item("mine", "u", scope="user:alice")]
    response = _import(any_api, {"mode": "merge", "allowPlaintext": True, "items": items})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    report = response.get_json()
    assert (report["added"], report["updated"], report["removed"]) == (2, 1, 0)
    assert CANARY not in response.get_data(as_text=True)
    assert _names(any_api) == ["added", "changed", "kept"]
    assert any_api.reveal("/v1/secrets/project/p1/changed").get_json()["version"] == 2
    added = any_api.reveal("/v1/secrets/project/p1/added").get_json()
    assert added["value"] == CANARY and added["meta"] == {"provider": "notion"}
    assert any_api.reveal("/v1/secrets/user/alice/mine").get_json()["value"] == "u"


def test_plaintext_import_is_refused_without_allow_plaintext(any_api: ApiClient) -> None:
    for body in ({"items": [_item("a")]}, {"allowPlaintext": False, "items": [_item("a")]}):
        refused = problem(_import(any_api, body), 422)
        assert "plaintext" in refused["errors"] and CANARY not in str(refused)
    assert _names(any_api) == []


BAD_ITEMS = [
    ({"scope": "project:p1", "key": "9starts-with-a-digit", "value": CANARY}, "items[2].key"),
    ({"scope": "project:p1", "key": "ok", "value": 42}, "items[2].value"),
    ({"scope": "planet:mars", "key": "ok", "value": CANARY}, "items[2].scope"),
    ({"scope": "project:p1", "key": "ok", "value": CANARY, "meta": {"Bad Key": CANARY}}, "items[2].meta"),
    ({"scope": "project:p1", "key": "ok", "value": CANARY + "x" * 65537}, "items[2].value"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_ITEMS, ids=[f for _, f in BAD_ITEMS])
def test_one_bad_item_rejects_the_whole_import(any_api: ApiClient, bad: dict[str, Any], field: str) -> None:
    any_api.seed("project:p1", "existing", "old")
    items = [_item("first"), _item("existing", "new"), bad, _item("last")]
    for mode in ("merge", "replace"):
        response = _import(any_api, {"mode": mode, "allowPlaintext": True, "items": items})
        body = problem(response, 422)
        assert field in body["errors"], body
        assert CANARY not in response.get_data(as_text=True)
    assert _names(any_api) == ["existing"]  # nothing written, nothing removed
    assert any_api.reveal("/v1/secrets/project/p1/existing").get_json()["value"] == "old"


def test_an_item_in_a_scope_not_yours_rejects_the_whole_import(any_api: ApiClient) -> None:
    items = [_item("first"), _item("theirs", scope="project:p2")]
    problem(_import(any_api, {"allowPlaintext": True, "items": items}), 404)
    assert _names(any_api) == []


def test_replace_removes_what_the_import_does_not_name_within_scope_and_prefix(any_api: ApiClient) -> None:
    for key in ("notion.a", "notion.b", "other"):
        any_api.seed("project:p1", key, "old")
    any_api.seed("user:alice", "notion.c", "old")
    items = [_item("notion.a", "new"), _item("notion.d", "new")]
    report = _import(any_api, {"mode": "replace", "prefix": "notion.", "allowPlaintext": True,
                               "items": items}).get_json()
    assert (report["added"], report["updated"], report["removed"]) == (1, 1, 1)
    assert report["changes"]["removed"] == [{"scope": "project:p1", "keyName": "notion.b"}]
    assert _names(any_api) == ["notion.a", "notion.d", "other"]
    assert _names(any_api, "ownerType=user&ownerId=alice") == ["notion.c"]  # a scope the import did not name


def test_dry_run_reports_and_writes_nothing(api: ApiClient) -> None:
    api.seed("project:p1", "gone", "old")
    report = _import(api, {"mode": "replace", "dryRun": True, "allowPlaintext": True,
                           "items": [_item("new")]}).get_json()
    assert report["dryRun"] is True and (report["added"], report["removed"]) == (1, 1)
    assert _names(api) == ["gone"]


def test_export_lists_metadata_never_values(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "notion.api_token", CANARY, {"provider": "notion"})
    any_api.seed("project:p1", "openai", CANARY)
    exported = any_api.call("GET", EXPORT + "&prefix=notion.")
    assert exported.status_code == 200 and exported.headers["Cache-Control"] == "no-store"
    doc = exported.get_json()
    assert (doc["format"], doc["scope"], doc["prefix"]) == ("sprongus.metadata.v1", "project:p1", "notion.")
    assert [item["keyName"] for item in doc["items"]] == ["notion.api_token"]
    assert doc["items"][0]["meta"] == {"provider": "notion"} and doc["items"][0]["version"] == 1
    assert "value" not in doc["items"][0] and "masked" not in doc["items"][0]
    assert CANARY not in exported.get_data(as_text=True)


def test_an_exported_bundle_imports_back_and_needs_the_reveal_scope(any_api: ApiClient) -> None:
    any_api.seed("project:p1", "a", CANARY, {"provider": "x"})
    any_api.seed("project:p1", "b", CANARY + "-b")
    problem(any_api.call("GET", EXPORT + "&bundle=true", any_api.token("alice", (READ, WRITE))), 403)
    exported = any_api.call("GET", EXPORT + "&bundle=true")
    assert exported.status_code == 200 and exported.headers["Cache-Control"] == "no-store"
    assert CANARY not in exported.get_data(as_text=True)  # encrypted, not plaintext
    bundle = exported.get_json()
    assert bundle["format"] == "sprongus.bundle.v1"
    # sent as the service built it (its MAC covers every field), in the order a local export writes
    assert list(bundle) == ["format", "createdAt", "protection", "count", "items", "mac"]
    for key in ("a", "b"):
        assert any_api.call("DELETE", f"/v1/secrets/project/p1/{key}").status_code == 204
    restored = _import(any_api, {"mode": "merge", "bundle": bundle})  # no allowPlaintext needed
    assert restored.status_code == 200 and restored.get_json()["added"] == 2
    a = any_api.reveal("/v1/secrets/project/p1/a").get_json()
    assert a["value"] == CANARY and a["meta"] == {"provider": "x"}
    assert any_api.reveal("/v1/secrets/project/p1/b").get_json()["value"] == CANARY + "-b"


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "edited ciphertext": lambda b: b["items"][0].update(ciphertext=b["items"][1]["ciphertext"]),
    "dropped item": lambda b: b["items"].pop(),
    "reordered items": lambda b: b["items"].reverse(),
    "edited key name": lambda b: b["items"][0].update(key="renamed"),
    "edited meta": lambda b: b["items"][0].update(meta={"provider": "evil"}),
    "edited count": lambda b: b.update(count=3),
    "no mac": lambda b: b.pop("mac"),
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_a_tampered_bundle_is_422_and_writes_nothing(api: ApiClient, tamper: str) -> None:
    api.seed("project:p1", "a", CANARY)
    api.seed("project:p1", "b", CANARY)
    bundle = api.call("GET", EXPORT + "&bundle=true").get_json()
    for key in ("a", "b"):
        api.call("DELETE", f"/v1/secrets/project/p1/{key}")
    broken = copy.deepcopy(bundle)
    TAMPERINGS[tamper](broken)
    response = _import(api, {"mode": "replace", "bundle": broken})
    body = problem(response, 422)
    assert "bundle" in body["errors"] and CANARY not in response.get_data(as_text=True)
    assert _names(api) == []
