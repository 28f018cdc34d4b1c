"""A reveal grant written straight into the table (as the app role could) opens nothing: the API seals its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from sprongus.domain.api_token import token_hash
from sprongus.ports.tokens import RevealGrant
from tests.e2e.api.conftest import ADMIN, KEY, TENANT_SCOPES, ApiClient
from tests.harness import CANARY


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
def test_a_forged_grant_is_gone_and_a_minted_one_still_works(make_api: Callable[..., ApiClient],
                                                             sqlite: bool) -> None:
    api = make_api(sqlite=sqlite)
    api.seed("user:bob", "bank.password", CANARY)
    api.seed("project:p1", "k", "fine")
    store = api.container.reveal_token_store()
    forged = "sprr_" + "A" * 43
    expires = api.clock.now() + timedelta(seconds=60)
    for seal in ("", "memory:v1|AAAA|AAAA", "garbage"):
        store.add(token_hash(forged), RevealGrant("bob", frozenset(), False, "user", "bob", "bank.password",
                                                   expires, seal))
        response = api.redeem(forged)
        assert response.status_code == 410 and CANARY not in response.get_data(as_text=True)

    minted = api.mint("/v1/secrets/project/p1/k")
    assert api.redeem(minted).get_json()["value"] == "fine"


def test_a_token_does_not_open_a_secret_purged_and_created_again_under_its_name(any_api: ApiClient) -> None:
    """The grant names a scope and a key; the seal also covers the secret's id. Purged and created
    again, the name holds another secret (the credential that replaced a retired one): 410, not its value."""
    any_api.seed("project:p1", "db.password", "retired-" + CANARY)
    token = any_api.mint(KEY)
    admin = any_api.token("alice", (*TENANT_SCOPES, ADMIN))
    assert any_api.call("DELETE", KEY + "?purge=true", admin).status_code == 200  # the same instant: not the point
    assert any_api.put(KEY, "replacement-" + CANARY).status_code == 201
    response = any_api.redeem(token)
    assert response.status_code == 410 and CANARY not in response.get_data(as_text=True)


def test_a_token_still_opens_its_secret_after_an_update_or_a_delete_and_restore(any_api: ApiClient) -> None:
    """Updated, or deleted and restored, it is the same secret (its versions and id are kept): the
    token answers its current value, as documented. While deleted, it answers 410 (and is used up)."""
    any_api.seed("project:p1", "db.password", "old-" + CANARY)
    updated, restored, while_deleted = any_api.mint(KEY), any_api.mint(KEY), any_api.mint(KEY)
    assert any_api.put(KEY, CANARY).status_code == 200
    assert any_api.redeem(updated).get_json()["value"] == CANARY
    assert any_api.call("DELETE", KEY).status_code == 204
    assert any_api.redeem(while_deleted).status_code == 410
    assert any_api.call("POST", KEY + ":restore").status_code == 200
    assert any_api.redeem(restored).get_json()["value"] == CANARY
