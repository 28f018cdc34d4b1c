"""An import pays for nothing before the caller is authorized and counted: no passphrase KDF, no master-key unwrap
for a token that may not write the bundle's scopes, nor past the write limit; costs and sizes are capped.

Release 1 ran scrypt with the bundle's own cost (up to n=2^20, r=16, p=4: ~3 s of CPU, 235 MiB) before it checked
any permission: a read-only token could keep a worker busy for free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.e2e.api.conftest import READ, REVEAL, WRITE, ApiClient, problem
from tests.harness import CANARY

IMPORT = "/v1/secrets:import"
PASSPHRASE = "correct horse battery"


class Spy:
    """Counts the expensive steps: every scrypt run and every master-key unwrap, whoever makes them."""

    def __init__(self, api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kdf = 0
        self.unwraps = 0
        real_scrypt, master = hashlib.scrypt, api.container.master_keys()
        real_unwrap = master.unwrap

        def scrypt(*args: Any, **kwargs: Any) -> bytes:
            self.kdf += 1
            return real_scrypt(*args, **kwargs)

        def unwrap(*args: Any, **kwargs: Any) -> bytes:
            self.unwraps += 1
            return bytes(real_unwrap(*args, **kwargs))

        monkeypatch.setattr(hashlib, "scrypt", scrypt)
        monkeypatch.setattr(master, "unwrap", unwrap)


def _bundle(api: ApiClient, passphrase: str | None, scope: str = "project:p1") -> dict[str, Any]:
    api.seed(scope, "db.password", CANARY)
    doc = api.container.transfer_ops().export(Principal.local_owner("ops"), Scope.parse(scope), bundle=True,
                                              passphrase=None if passphrase is None else SecretValue(passphrase))
    assert doc.bundle is not None
    return doc.bundle


def _import(api: ApiClient, body: dict[str, Any], token: str | None = None) -> Any:
    return api.call("POST", IMPORT, token, json=body)


@pytest.mark.parametrize("passphrase", [PASSPHRASE, None], ids=["passphrase bundle", "master-key bundle"])
def test_a_read_only_token_gets_403_and_costs_no_kdf_and_no_unwrap(api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                                  passphrase: str | None) -> None:
    bundle = _bundle(api, passphrase)
    spy = Spy(api, monkeypatch)
    reader = api.token("alice", (READ, REVEAL))
    costly = {**bundle, "protection": {**bundle["protection"], "n": 2**17}} if passphrase else bundle
    response = _import(api, {"bundle": costly, "passphrase": passphrase}, reader)
    body = problem(response, 403)
    assert 'scope="secrets:write"' in response.headers["WWW-Authenticate"] and CANARY not in str(body)
    assert (spy.kdf, spy.unwraps) == (0, 0)
    denied = [e for e in api.events() if e.action == "import"]
    assert [e.outcome for e in denied] == ["denied"]  # refused and audited, not silently dropped


def test_a_bundle_naming_another_tenants_scope_costs_nothing(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _bundle(api, PASSPHRASE, scope="project:p2")  # alice has p1 only
    spy = Spy(api, monkeypatch)
    problem(_import(api, {"bundle": bundle, "passphrase": PASSPHRASE}), 404)
    assert spy.kdf == 0


def test_an_empty_bundle_still_needs_a_writer(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle naming no scope has nothing to authorize against: it must not be a free KDF for readers."""
    empty = api.container.transfer_ops().export(Principal.local_owner("ops"), Scope.parse("project:p9"),
                                                bundle=True, passphrase=SecretValue(PASSPHRASE)).bundle
    assert empty is not None and empty["items"] == []
    spy = Spy(api, monkeypatch)
    problem(_import(api, {"bundle": empty, "passphrase": PASSPHRASE}, api.token("alice", (READ,))), 403)
    assert spy.kdf == 0
    done = _import(api, {"bundle": empty, "passphrase": PASSPHRASE})  # a writer: runs, and finds nothing to do
    assert done.status_code == 200 and done.get_json()["added"] == 0 and spy.kdf == 1


def test_the_write_limit_is_counted_before_the_kdf(make_api: Callable[..., ApiClient],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_WRITE="1/minute")
    bundle = _bundle(api, PASSPHRASE)
    spy = Spy(api, monkeypatch)
    assert _import(api, {"bundle": bundle, "passphrase": PASSPHRASE}).status_code == 200
    assert spy.kdf == 1
    problem(_import(api, {"bundle": bundle, "passphrase": PASSPHRASE}), 429)
    assert spy.kdf == 1  # the second import was refused before its scrypt ran


@pytest.mark.parametrize(("change", "field"), [
    ({"n": 2**18}, "n"), ({"n": 2**20, "r": 16, "p": 4}, "n"), ({"n": 2**15 + 1}, "n"), ({"r": 16}, "r"),
    ({"p": 2}, "p")])
def test_a_scrypt_cost_over_the_cap_is_422_naming_the_field(api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                            change: dict[str, int], field: str) -> None:
    bundle = _bundle(api, PASSPHRASE)
    spy = Spy(api, monkeypatch)
    costly = {**bundle, "protection": {**bundle["protection"], **change}}
    body = problem(_import(api, {"bundle": costly, "passphrase": PASSPHRASE}), 422)
    assert list(body["errors"]) == [f"bundle.protection.{field}"], body
    assert spy.kdf == 0


@pytest.mark.parametrize("where", ["items", "bundle.items"])
def test_more_than_5000_items_is_422_before_any_work(api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                     where: str) -> None:
    items = [{"scope": "project:p1", "key": f"k{i}", "value": CANARY} for i in range(5001)]
    if where == "items":
        body: dict[str, Any] = {"allowPlaintext": True, "items": items}
    else:
        bundle = _bundle(api, PASSPHRASE)
        body = {"bundle": {**bundle, "items": bundle["items"] * 5001, "count": 5001}, "passphrase": PASSPHRASE}
    spy = Spy(api, monkeypatch)
    response = _import(api, body)
    detail = problem(response, 422)
    assert list(detail["errors"]) == [where] and "5000" in detail["errors"][where][0]
    assert CANARY not in response.get_data(as_text=True) and spy.kdf == 0
    assert api.call("GET", "/v1/secrets/project/p1/k0").status_code == 404
    assert _import(api, {**body, "items": items[:5000]} if where == "items" else
                   {"allowPlaintext": True, "items": items[:5000]}).status_code == 200  # the cap itself is fine


def test_an_unknown_master_key_id_is_422_with_a_fixed_text(api: ApiClient) -> None:
    bundle = _bundle(api, None)
    forged = {**bundle, "protection": {**bundle["protection"], "masterKeyId": "guess-" + CANARY}}
    response = _import(api, {"bundle": forged})
    body = problem(response, 422)
    assert list(body["errors"]) == ["bundle.protection.masterKeyId"]
    assert "guess-" not in response.get_data(as_text=True) and CANARY not in response.get_data(as_text=True)


def test_a_write_token_still_imports_a_passphrase_bundle(api: ApiClient) -> None:
    bundle = _bundle(api, PASSPHRASE)
    api.call("DELETE", "/v1/secrets/project/p1/db.password")
    writer = api.token("alice", (WRITE,))
    assert _import(api, {"bundle": bundle, "passphrase": PASSPHRASE}, writer).get_json()["added"] == 1
    assert api.reveal("/v1/secrets/project/p1/db.password").get_json()["value"] == CANARY
