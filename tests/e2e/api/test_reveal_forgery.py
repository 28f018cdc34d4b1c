"""A reveal grant written straight into the table (as the app role could) opens nothing: the API seals its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from sprongus.domain.api_token import token_hash
from sprongus.ports.tokens import RevealGrant
from tests.e2e.api.conftest import ApiClient
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
