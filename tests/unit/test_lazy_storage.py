"""Storage pieces built on first use: a model bound to its database when first read, and the API's stores when first
asked for. Late is fine; two of them, or one bound to the wrong database, is not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee
import pytest

from sprongus.adapters.memory_storage import memory_storage
from sprongus.adapters.peewee import models as models_module
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
    peewee_storage(models).api_stores().trusts.add(TRUST)
    assert models.trust.select().count() == 1
    assert other.trust.select().count() == 0  # the other database's binding never saw the row
    assert peewee_storage(other).api_stores().trusts.all() == []
    assert TrustRow._meta.database is None  # the unbound model itself stays unbound


def test_the_api_stores_are_built_once_and_only_when_asked_for(models: BoundModels) -> None:
    storage = peewee_storage(models)
    assert not _bound(models) & {"api_token", "reveal_token", "idempotency", "trust", "jwt_replay"}
    first = storage.api_stores()
    assert storage.api_stores() is first
    first.trusts.add(TRUST)
    assert [t.name for t in storage.api_stores().trusts.all()] == ["ci"]  # the same database behind every call


def test_the_memory_backend_keeps_one_set_of_api_stores() -> None:
    storage = memory_storage()
    assert storage.api_stores() is storage.api_stores()


def test_two_threads_binding_one_model_at_once_both_get_the_one_kept(models: BoundModels,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Both bind before either stores. A thread keeping its own binding broke SQL: a statement that read the model
    twice named two table aliases (`no such column: t2.issuer`)."""
    both_bound = threading.Barrier(2)
    bind = models_module._bind

    def bind_then_wait(model: type[peewee.Model], db: peewee.Database) -> Any:
        bound = bind(model, db)
        both_bound.wait(timeout=10)
        return bound

    monkeypatch.setattr(models_module, "_bind", bind_then_wait)
    with ThreadPoolExecutor(max_workers=2) as pool:
        seen = list(pool.map(lambda _: models.trust, range(2)))
    assert seen[0] is seen[1] is models.trust
    monkeypatch.undo()  # the other models bind one thread at a time from here
    store = peewee_storage(models).api_stores().trusts
    store.add(TRUST)
    assert [t.name for t in store.by_issuer(TRUST.issuer)] == ["ci"]
