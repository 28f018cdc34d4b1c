"""Error answers are no value oracle: a probe whose input holds another tenant's live value gets, byte for byte, the
answer it gets while that value is alive nowhere, and never a mask where the value would be.

Release 1 scrubbed every answer against every value alive in the worker, and echoed request text (a bundle's
master key id, a scope, a key name) in its errors: a probe saw `********` exactly when its guess was a value another
tenant was writing or revealing at that moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import TestResponse

from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import MASK
from tests.e2e.api.conftest import ApiClient

# The other tenant's value, shaped to fit every field that could echo it: a key name, an owner id, a prefix, a
# meta key and a master key id.
ORACLE = "oracle-canary-7f3a9c"
DECOY = "oracle-decoy-000000"  # the same shape, alive nowhere, ever
ALICE_KEY = "/v1/secrets/project/p1/db.password"
IMPORT = "/v1/secrets:import"
# Inputs the answers still repeat (a meta key in its rule): byte-identical, but the text itself may appear.
ECHOED = {"meta key"}

Probe = Callable[[], TestResponse]
MAX_ROUNDS = 200  # mallory's mints count against her reveal limit (1000/minute here)


def _probes(api: ApiClient, mallory: str, bundle: dict[str, Any], guess: str) -> dict[str, Probe]:
    """Requests by mallory (another tenant: project p2) with `guess` in every field an error might repeat."""
    forged = {**bundle, "protection": {**bundle["protection"], "masterKeyId": guess}}
    passphrase_doc = {**bundle, "protection": {"type": "passphrase", "kdf": "scrypt", "salt": guess,
                                               "n": 2**15, "r": 8, "p": 1}}

    def call(method: str, path: str, **kwargs: Any) -> Probe:
        return lambda: api.call(method, path, mallory, **kwargs)

    def items(*keys: str, **extra: Any) -> dict[str, Any]:
        return {"allowPlaintext": True, "items": [{"scope": "project:p2", "key": k, "value": "x"} for k in keys],
                **extra}

    return {
        "bundle master key id": call("POST", IMPORT, json={"bundle": forged}),
        "bundle salt": call("POST", IMPORT, json={"bundle": passphrase_doc, "passphrase": "correct horse"}),
        "hidden user scope": call("GET", f"/v1/secrets/user/{guess}/db.password"),
        "hidden project scope": call("PUT", f"/v1/secrets/project/{guess}/k", json={"value": "x"}),
        "absent key": call("GET", f"/v1/secrets/project/p2/{guess}"),
        "delete absent key": call("DELETE", f"/v1/secrets/project/p2/{guess}"),
        "rotate absent key": call("POST", f"/v1/secrets/project/p2/{guess}:rotate"),
        "mint for absent key": call("POST", f"/v1/secrets/project/p2/{guess}:reveal", json={"oneTime": True}),
        "list hidden scope": call("GET", f"/v1/secrets?ownerType=user&ownerId={guess}"),
        "export hidden scope": call("GET", f"/v1/secrets:export?ownerType=project&ownerId={guess}"),
        "cursor": call("GET", f"/v1/secrets?ownerType=project&ownerId=p2&cursor={guess}"),
        "duplicate key": call("POST", IMPORT, json=items(guess, guess)),
        "prefix": call("POST", IMPORT, json=items("other", prefix=guess)),
        "If-Match": call("PUT", "/v1/secrets/project/p2/existing", json={"value": "x"},
                         headers={"If-Match": guess}),
        "meta key": call("PUT", "/v1/secrets/project/p2/k", json={"value": "x", "meta": {guess: "y" * 300}}),
    }


def _answer(response: TestResponse) -> tuple[int, bytes]:
    return response.status_code, response.get_data()


def _check(name: str, response: TestResponse, baseline: tuple[int, bytes]) -> None:
    body = response.get_data(as_text=True)
    assert _answer(response) == baseline, (name, body)
    assert MASK not in body, (name, body)
    if name not in ECHOED:
        assert ORACLE not in body, (name, body)


@pytest.fixture
def probed(api: ApiClient) -> tuple[ApiClient, dict[str, Probe], dict[str, tuple[int, bytes]]]:
    mallory = api.token("mallory", projects=("p2",))
    api.seed("project:p2", "existing", "mallory's own")
    bundle = api.container.transfer_ops().export(Principal.local_owner("ops"), Scope.parse("project:p2"),
                                                 bundle=True).bundle
    assert bundle is not None
    probes = _probes(api, mallory, bundle, ORACLE)
    baseline = {name: _answer(probe()) for name, probe in probes.items()}  # ORACLE alive nowhere yet
    assert all(status >= 400 for status, _ in baseline.values()), baseline
    assert baseline["bundle master key id"][0] == 422  # a client's unknown key id, not a server fault
    # Errors echo nothing: another guess gets the very same bytes (bar the one rule that names a meta key).
    for name, probe in _probes(api, mallory, bundle, DECOY).items():
        status, body = _answer(probe())
        assert (status, body.replace(DECOY.encode(), ORACLE.encode())) == baseline[name], name
        assert name in ECHOED or body == baseline[name][1], name
    return api, probes, baseline


def test_probes_answer_the_same_while_another_request_holds_the_value(
        probed: tuple[ApiClient, dict[str, Probe], dict[str, tuple[int, bytes]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic: alice's PUT of ORACLE is held mid-flight (its SecretValue alive) while mallory probes."""
    api, probes, baseline = probed
    service = api.container.secret_ops()
    entered, release = threading.Event(), threading.Event()
    real_set = service.set

    def held_set(principal: Principal, *args: Any, **kwargs: Any) -> Any:
        if principal.subject == "alice":
            entered.set()
            assert release.wait(30)
        return real_set(principal, *args, **kwargs)

    monkeypatch.setattr(service, "set", held_set)
    alice = api.app.test_client()
    results: list[int] = []
    writer = threading.Thread(target=lambda: results.append(alice.put(
        ALICE_KEY, json={"value": ORACLE}, headers={"Authorization": f"Bearer {api.alice}"}).status_code))
    writer.start()
    try:
        assert entered.wait(30)
        for name, probe in probes.items():
            _check(name, probe(), baseline[name])
    finally:
        release.set()
        writer.join(30)
    assert results == [201]


def test_probes_answer_the_same_while_another_tenant_writes_and_reveals(
        probed: tuple[ApiClient, dict[str, Probe], dict[str, tuple[int, bytes]]]) -> None:
    """Real concurrency: alice writes and reveals ORACLE in a loop on another thread while mallory probes."""
    api, probes, baseline = probed
    alice = api.app.test_client()
    auth = {"Authorization": f"Bearer {api.alice}"}
    done = threading.Event()
    failures: list[str] = []

    def write_and_reveal() -> None:
        try:
            for _ in range(40):
                assert alice.put(ALICE_KEY, json={"value": ORACLE}, headers=auth).status_code in (200, 201)
                revealed = alice.post(ALICE_KEY + ":reveal", headers=auth)
                assert revealed.get_json()["value"] == ORACLE
        except AssertionError as exc:  # reported by the main thread
            failures.append(repr(exc))
        finally:
            done.set()

    writer = threading.Thread(target=write_and_reveal)
    writer.start()
    rounds = 0
    try:
        while rounds == 0 or (not done.is_set() and rounds < MAX_ROUNDS):
            for name, probe in probes.items():
                _check(name, probe(), baseline[name])
            rounds += 1
    finally:
        writer.join(60)
    assert not failures, failures

