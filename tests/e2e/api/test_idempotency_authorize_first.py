"""A request with an Idempotency-Key is authorized before its key is stored or its body fingerprinted: a caller who
may not write leaves no row behind (before, its row was inserted, then deleted when the view refused it) and costs
no HMAC over its body; the write limit is still counted once per request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.api.conftest import KEY, READ, WRITE, ApiClient, problem
from tests.harness import CANARY

IMPORT = "/v1/secrets:import"
ITEMS = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "db.password", "value": CANARY}]}


@pytest.fixture
def store_calls(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call the app makes on its Idempotency-Key store, and every fingerprint it computes."""
    calls: list[str] = []
    store = api.container.idempotency_store()
    for name in ("begin", "finish", "abandon"):
        real = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *a, _real=real, _name=name: (calls.append(_name), _real(*a))[1])
    from sprongus.entrypoints.api.idempotency import Idempotency

    real_fingerprint = Idempotency.fingerprint

    def fingerprint(self: Idempotency, *args: Any, **kwargs: Any) -> str:
        calls.append("fingerprint")
        return real_fingerprint(self, *args, **kwargs)

    monkeypatch.setattr(Idempotency, "fingerprint", fingerprint)
    return calls


@pytest.mark.parametrize(("token", "status"), [(("alice", (READ,), ("p1",)), 403), (("alice", None, ("p2",)), 404),
                                               (("mallory", None, ("p9",)), 404)],
                         ids=["no write", "not a member", "another tenant"])
def test_a_refused_put_stores_and_fingerprints_nothing(api: ApiClient, store_calls: list[str],
                                                       token: tuple[str, Any, tuple[str, ...]], status: int) -> None:
    subject, scopes, projects = token
    caller = api.token(subject, scopes or ("secrets:read", "secrets:write", "secrets:reveal"), projects)
    refused = api.put(KEY, CANARY, caller, headers={"Idempotency-Key": "k-1"})
    problem(refused, status)
    assert store_calls == []
    assert CANARY not in refused.get_data(as_text=True)
    assert [e.outcome for e in api.events() if e.action == "update"] == ["denied"]  # audited once, as before


def test_a_refused_import_stores_and_fingerprints_nothing(api: ApiClient, store_calls: list[str]) -> None:
    problem(api.call("POST", IMPORT, api.token("alice", (READ,)), json=ITEMS, headers={"Idempotency-Key": "i"}), 403)
    replace_without_read = {**ITEMS, "mode": "replace"}
    problem(api.call("POST", IMPORT, api.token("alice", (WRITE,)), json=replace_without_read,
                     headers={"Idempotency-Key": "i"}), 403)
    problem(api.call("POST", IMPORT, api.token("alice", (WRITE,)), json={**ITEMS, "allowPlaintext": False},
                     headers={"Idempotency-Key": "i"}), 422)
    assert store_calls == []
    assert api.call("GET", KEY).status_code == 404  # nothing imported


def test_an_allowed_request_is_stored_and_replayed_as_before(api: ApiClient, store_calls: list[str]) -> None:
    first = api.put(KEY, CANARY, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 201 and store_calls == ["fingerprint", "begin", "finish"]
    again = api.put(KEY, CANARY, headers={"Idempotency-Key": "k-2"})
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_data() == first.get_data()
    imported = api.call("POST", IMPORT, json=ITEMS, headers={"Idempotency-Key": "i-2"})
    assert imported.status_code == 200 and imported.get_json()["updated"] == 1


def test_the_write_limit_counts_a_keyed_request_once(make_api: Any) -> None:
    """The check before the key is stored does not count the write: three keyed writes (a PUT, two imports) pass
    a limit of three, and the fourth is the one refused."""
    api: ApiClient = make_api(SPRONGUS_RATE_LIMIT_WRITE="3/minute")
    assert api.put(KEY, "v0", headers={"Idempotency-Key": "w-0"}).status_code == 201
    for n in range(2):
        body = {**ITEMS, "items": [{**ITEMS["items"][0], "value": f"x{n}"}]}
        assert api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": f"i-{n}"}).status_code == 200
    problem(api.put(KEY, "one too many", headers={"Idempotency-Key": "w-1"}), 429)


@pytest.mark.parametrize("token", [("alice", (READ,), ("p1",)), ("alice", None, ("p2",))], ids=["reader", "outsider"])
def test_a_keyed_put_answers_in_the_order_an_unkeyed_one_does(api: ApiClient, token: tuple[str, Any, tuple[str, ...]]
                                                               ) -> None:
    """Bad meta from a caller who may not write: 422 with or without an Idempotency-Key, as `set` checks it first."""
    subject, scopes, projects = token
    caller = api.token(subject, scopes or ("secrets:read", "secrets:write", "secrets:reveal"), projects)
    body = {"value": CANARY, "meta": {"bad key!": "x"}}
    plain = api.call("PUT", KEY, caller, json=body)
    keyed = api.call("PUT", KEY, caller, json=body, headers={"Idempotency-Key": "m-1"})
    assert plain.status_code == keyed.status_code == 422
    assert [e.outcome for e in api.events() if e.action == "update"] == ["invalid", "invalid"]
