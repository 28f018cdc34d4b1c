"""Storage pieces built on first use: a model bound to its database when first read, and the API's credential
stores when first asked for. Late is fine; two of them, or one bound to the wrong database, is not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sprongus.adapters.memory_storage import memory_storage
from sprongus.adapters.peewee.db import open_sqlite
from sprongus.adapters.peewee.migrate import upgrade
from sprongus.adapters.peewee.models import BoundModels, SecretKV, TrustRow
from sprongus.adapters.peewee.storage import peewee_storage
from sprongus.domain.trust import Trust

TRUST = Trust(name="ci", issuer="https://issuer.example", audience="sprongus", scopes=frozenset({"secrets:read"}),
              created_at=datetime(2026, 12, 7, tzinfo=UTC))
MODELS = ("secret", "secret_version", "audit", "audit_checkpoint", "api_token", "reveal_token", "idempotency",
          "vault_key", "trust", "jwt_replay")


def _vault(path: Path) -> Iterator[BoundModels]:
    db = open_sqlite(path)
    try:
        upgrade(db)
        yield BoundModels(db)
    finally:
        db.close()


@pytest.fixture
def models(tmp_path: Path) -> Iterator[BoundModels]:
    yield from _vault(tmp_path / "a.db")


@pytest.fixture
def other(tmp_path: Path) -> Iterator[BoundModels]:
    yield from _vault(tmp_path / "b.db")


def _bound(models: BoundModels) -> set[str]:
    return set(MODELS) & set(vars(models))


def test_a_model_is_bound_on_first_read_once_and_to_its_own_database(models: BoundModels,
                                                                     other: BoundModels) -> None:
    assert _bound(models) == set()
    secret = models.secret
    assert _bound(models) == {"secret"}
    assert models.secret is secret  # the second read finds the same class: one binding per database
    assert issubclass(secret, SecretKV) and secret is not SecretKV
    assert secret._meta.database is models.db and other.secret._meta.database is other.db
    assert other.secret is not secret


def test_every_model_binds_and_the_two_vaults_stay_apart(models: BoundModels, other: BoundModels) -> None:
    for name in MODELS:
        assert getattr(models, name)._meta.database is models.db
    peewee_storage(models).credentials().trusts.add(TRUST)
    assert models.trust.select().count() == 1
    assert other.trust.select().count() == 0  # the other database's binding never saw the row
    assert peewee_storage(other).credentials().trusts.all() == []
    assert TrustRow._meta.database is None  # the unbound model itself stays unbound


def test_the_credential_stores_are_built_once_and_only_when_asked_for(models: BoundModels) -> None:
    storage = peewee_storage(models)
    assert not _bound(models) & {"api_token", "reveal_token", "idempotency", "trust", "jwt_replay"}
    first = storage.credentials()
    assert storage.credentials() is first
    first.trusts.add(TRUST)
    assert [t.name for t in storage.credentials().trusts.all()] == ["ci"]  # the same database behind every call


def test_the_memory_backend_keeps_one_set_of_credential_stores() -> None:
    storage = memory_storage()
    stores = storage.credentials()
    assert storage.credentials() is stores
    assert storage.credentials().api_tokens is stores.api_tokens
