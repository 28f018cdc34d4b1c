"""The ApiTokenStore and RevealTokenStore contracts: every adapter in *_STORE_FACTORIES runs the same suite.

A factory takes the backend's BoundModels (None for the in-memory backend) and returns an empty store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.memory_tokens import InMemoryApiTokenStore, InMemoryRevealTokenStore
from sprongus.adapters.peewee.models import BoundModels
from sprongus.adapters.peewee.tokens import PeeweeApiTokenStore, PeeweeRevealTokenStore
from sprongus.domain.api_token import ApiToken, token_hash
from sprongus.domain.principal import Permission
from sprongus.ports.tokens import ApiTokenStore, RevealGrant, RevealTokenStore
from tests.contract.backends import BACKENDS, T0, backend, race


def _peewee(store: Callable[[BoundModels], Any]) -> Callable[[BoundModels | None], Any]:
    def make(models: BoundModels | None) -> Any:
        assert models is not None
        return store(models)

    return make


API_TOKEN_STORE_FACTORIES: dict[str, Callable[[BoundModels | None], ApiTokenStore]] = {
    "memory": lambda _: InMemoryApiTokenStore(),
    "sqlite": _peewee(PeeweeApiTokenStore),
    "postgres": _peewee(PeeweeApiTokenStore),
}
REVEAL_STORE_FACTORIES: dict[str, Callable[[BoundModels | None], RevealTokenStore]] = {
    "memory": lambda _: InMemoryRevealTokenStore(),
    "sqlite": _peewee(PeeweeRevealTokenStore),
    "postgres": _peewee(PeeweeRevealTokenStore),
}
assert list(API_TOKEN_STORE_FACTORIES) == list(REVEAL_STORE_FACTORIES) == BACKENDS


@pytest.fixture(params=list(API_TOKEN_STORE_FACTORIES))
def tokens(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiTokenStore]:
    with backend(request.param, tmp_path) as models:
        yield API_TOKEN_STORE_FACTORIES[request.param](models)


@pytest.fixture(params=list(REVEAL_STORE_FACTORIES))
def reveals(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RevealTokenStore, BoundModels | None]]:
    with backend(request.param, tmp_path) as models:
        yield REVEAL_STORE_FACTORIES[request.param](models), models


# API tokens


def tok(n: int, **changes: Any) -> ApiToken:
    base = ApiToken(id=f"tok-{n}", token_hash=token_hash(f"spr_secret-{n}"), subject="alice",
                    permissions=frozenset({Permission.READ, Permission.WRITE}), projects=frozenset({"p1", "p-2.x"}),
                    created_at=T0 + timedelta(seconds=n, microseconds=n), expires_at=T0 + timedelta(days=30),
                    auth_time=T0 - timedelta(minutes=5, microseconds=1))
    return replace(base, **changes)


VARIED = [
    tok(1),
    tok(2, subject="ci@example.org", permissions=frozenset(Permission), projects=frozenset({"only"})),
    tok(3, subject="bob", permissions=frozenset(), projects=frozenset()),
    tok(4, permissions=frozenset({Permission.REVEAL}), expires_at=T0 + timedelta(days=366, microseconds=999999)),
]


def assert_aware_utc(token: ApiToken) -> None:
    for moment in (token.created_at, token.expires_at, token.auth_time, token.revoked_at):
        assert moment is None or moment.utcoffset() == timedelta(0)


def test_an_empty_store_finds_nothing(tokens: ApiTokenStore) -> None:
    assert tokens.find(token_hash("spr_nope")) is None
    assert tokens.all() == []
    assert tokens.revoke("tok-1", T0) is False


def test_tokens_round_trip_every_field_exactly(tokens: ApiTokenStore) -> None:
    for token in VARIED:
        tokens.add(token)
    for token in VARIED:
        got = tokens.find(token.token_hash)
        assert got == token
        assert got is not None and got.revoked_at is None
        assert type(got.permissions) is frozenset and type(got.projects) is frozenset
        assert all(type(p) is Permission for p in got.permissions)
        assert got.created_at.microsecond == token.created_at.microsecond
        assert_aware_utc(got)
    assert tokens.find(token_hash("spr_secret-99")) is None
    assert tokens.find("spr_secret-1") is None  # looked up by hash only, never by the token itself


def test_all_lists_every_token_oldest_first(tokens: ApiTokenStore) -> None:
    for token in (VARIED[2], VARIED[0], VARIED[3], VARIED[1]):
        tokens.add(token)
    assert tokens.all() == VARIED
    assert tokens.revoke("tok-3", T0 + timedelta(hours=1)) is True
    assert [(t.id, t.revoked_at is not None) for t in tokens.all()] == [
        ("tok-1", False), ("tok-2", False), ("tok-3", True), ("tok-4", False)]


def test_revoke_sets_revoked_at_once_and_reports_whether_it_did(tokens: ApiTokenStore) -> None:
    for token in VARIED[:2]:
        tokens.add(token)
    when = T0.replace(microsecond=123457) + timedelta(days=2)
    assert tokens.revoke("tok-unknown", when) is False
    assert tokens.revoke("tok-1", when) is True
    revoked = tokens.find(VARIED[0].token_hash)
    assert revoked == replace(VARIED[0], revoked_at=when)
    assert revoked is not None and revoked.revoked_at is not None
    assert revoked.revoked_at.microsecond == 123457
    assert_aware_utc(revoked)
    assert tokens.revoke("tok-1", when + timedelta(days=1)) is False  # already revoked: the first time stays
    assert tokens.find(VARIED[0].token_hash) == replace(VARIED[0], revoked_at=when)
    assert tokens.find(VARIED[1].token_hash) == VARIED[1]


# Reveal tokens


def grant(**changes: Any) -> RevealGrant:
    base = RevealGrant(subject="alice", projects=frozenset({"p1", "p2"}), admin=False, owner_type="project",
                       owner_id="p1", key_name="db.password", expires_at=T0 + timedelta(seconds=60, microseconds=7),
                       seal="hmac:c2VhbA==")
    return replace(base, **changes)


GRANTS = [
    grant(),
    grant(subject="root", projects=frozenset(), admin=True, owner_type="system", owner_id=None, key_name="a.b_c-d"),
    grant(owner_type="user", owner_id="alice", projects=frozenset(), seal=""),
]


def test_consume_returns_the_grant_exactly_once(reveals: tuple[RevealTokenStore, Any]) -> None:
    store, _ = reveals
    for i, g in enumerate(GRANTS):
        store.add(token_hash(f"spr_reveal-{i}"), g)
    for i, g in enumerate(GRANTS):
        got = store.consume(token_hash(f"spr_reveal-{i}"), T0)
        assert got == g
        assert got is not None and type(got.projects) is frozenset and type(got.admin) is bool
        assert got.expires_at.utcoffset() == timedelta(0)
        assert store.consume(token_hash(f"spr_reveal-{i}"), T0) is None


def test_an_unknown_hash_is_none_and_leaves_other_grants(reveals: tuple[RevealTokenStore, Any]) -> None:
    store, _ = reveals
    assert store.consume(token_hash("spr_nope"), T0) is None
    store.add(token_hash("spr_kept"), GRANTS[0])
    assert store.consume(token_hash("spr_nope"), T0) is None
    assert store.consume("spr_kept", T0) is None  # by hash only
    assert store.consume(token_hash("spr_kept"), T0) == GRANTS[0]


@pytest.mark.parametrize("late", [timedelta(0), timedelta(microseconds=1), timedelta(days=1)], ids=str)
def test_an_expired_grant_is_never_returned(reveals: tuple[RevealTokenStore, Any], late: timedelta) -> None:
    store, _ = reveals
    expires = GRANTS[0].expires_at
    store.add(token_hash("spr_old"), GRANTS[0])
    assert store.consume(token_hash("spr_old"), expires + late) is None
    assert store.consume(token_hash("spr_old"), expires + late) is None
    store.add(token_hash("spr_fresh"), GRANTS[0])
    assert store.consume(token_hash("spr_fresh"), expires - timedelta(microseconds=1)) == GRANTS[0]


def test_concurrent_consumers_of_one_token_get_it_exactly_once(reveals: tuple[RevealTokenStore, Any]) -> None:
    store, models = reveals
    for round_ in range(3):
        digest = token_hash(f"spr_contested-{round_}")
        store.add(digest, GRANTS[round_])
        got = race(8, lambda _, digest=digest: store.consume(digest, T0), models)
        assert [g for g in got if g is not None] == [GRANTS[round_]]
        assert store.consume(digest, T0) is None
